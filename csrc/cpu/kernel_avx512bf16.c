/*
 * kernel_avx512bf16.c — the AVX-512 kernel plus bf16 pair dot products
 * (vdpbf16ps: 32 bf16 multiply-adds into 16 float32 lanes per instruction,
 * twice the float32 FMA rate) for bf16 inputs.
 *
 * Scores: lane r of S^T[key] += K[key][2p..2p+1] . Q[r][2p..2p+1], with K's
 * pair broadcast straight from the input and Q^T packed as pairs.
 * Output: P^T is rounded to bf16 (as FlashAttention does for its second
 * product; P is in [0, 1], so the relative error per weight is <= 2^-9) and
 * paired over consecutive keys, and so is each value column; the running sum
 * l keeps the float32 P.  Accumulation stays float32.
 */
#include <string.h>

#include "cpu_attn.h"
#include "simd_avx512.h"

static inline uint32_t csa__load_u32(const uint16_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

#define CSA_BF16DOT 1
#define CSA_BF16DOT_AV __m512bh
#define CSA_BF16DOT_BCAST(p) ((__m512bh)_mm512_set1_epi32((int)csa__load_u32(p)))
#define CSA_BF16DOT_BV __m512bh
#define CSA_BF16DOT_BLOAD(p) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
#define CSA_BF16DOT_STEP(acc, x, y) _mm512_dpbf16_ps((acc), (x), (y))

/* Two float32 vectors -> 16 lanes of (bf16 lo, bf16 hi) pairs. */
static inline __m512i csa__bf16_pairs(__m512 lo, __m512 hi) {
  __m512i a = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
  __m512i b = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
  return _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
}

/* P^T rows 2i and 2i+1 (float32) -> row i of bf16 pairs, in place: row i is
 * written only after rows 2i, 2i+1 are read, and rows < 2i are consumed. */
static void csa__pack_p_pairs(float *s, int64_t cn, int nrv) {
  for (int64_t i = 0; 2 * i < cn; i++) {
    const float *lo = s + 2 * i * CSA__CPU_ROWS;
    for (int rv = 0; rv < nrv; rv++) {
      __m512 a = _mm512_loadu_ps(lo + rv * 16);
      __m512 b = 2 * i + 1 < cn ? _mm512_loadu_ps(lo + CSA__CPU_ROWS + rv * 16) : _mm512_setzero_ps();
      _mm512_storeu_si512((void *)(s + i * CSA__CPU_ROWS + rv * 16), csa__bf16_pairs(a, b));
    }
  }
}

/* Value rows 2i, 2i+1 -> dst[i][dv] = (v[2i][dv], v[2i+1][dv]); an odd last
 * key pairs with zero. */
static void csa__pack_v_pairs(uint32_t *dst, const uint16_t *v, int64_t v_st, int64_t cn,
                              int64_t dv) {
  for (int64_t i = 0; 2 * i < cn; i++) {
    const uint16_t *a = v + 2 * i * v_st;
    const uint16_t *b = 2 * i + 1 < cn ? a + v_st : NULL;
    uint32_t *out = dst + i * dv;
    int64_t j = 0;
    for (; j + 16 <= dv; j += 16) {
      __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + j)));
      __m512i hi = b ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + j)))
                     : _mm512_setzero_si512();
      _mm512_storeu_si512((void *)(out + j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
    for (; j < dv; j++) out[j] = (uint32_t)a[j] | (b ? (uint32_t)b[j] << 16 : 0u);
  }
}

#define CSA_KNAME(x) x##_avx512bf16
#define CSA_KISA "avx512bf16"
#include "kernel.inc.h"
