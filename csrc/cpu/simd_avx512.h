/*
 * simd_avx512.h — the SIMD vocabulary (see simd_scalar.h for the meaning of
 * each operation) on AVX-512F: 16 float lanes, 32 registers.
 */
#ifndef CSA_SIMD_AVX512_H
#define CSA_SIMD_AVX512_H
#include <immintrin.h>

#define CSA_VL 16
/* Register tile of the micro-kernels: up to 4 row vectors (64 rows) by
 * CSA_JMAX(r) broadcast operands: 4 x 6 = 24 accumulators + 4 row loads. */
#define CSA_RMAX 4
#define CSA_JMAX(r) ((r) == 4 ? 6 : 8)

typedef __m512 csa_v;
#define csa_v_zero() _mm512_setzero_ps()
#define csa_v_set1(x) _mm512_set1_ps(x)
#define csa_v_load(p) _mm512_loadu_ps(p)
#define csa_v_store(p, a) _mm512_storeu_ps((p), (a))
#define csa_v_add(a, b) _mm512_add_ps((a), (b))
#define csa_v_sub(a, b) _mm512_sub_ps((a), (b))
#define csa_v_mul(a, b) _mm512_mul_ps((a), (b))
#define csa_v_max(a, b) _mm512_max_ps((a), (b))
#define csa_v_fma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define csa_v_shl23(a) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(a), 23))
static inline csa_v csa_v_lt_select(csa_v a, csa_v b, csa_v x, csa_v y) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
}
/* 2^x by parts for csa__k_exp2_n, two instructions where the generic
 * version needs six: f = x - floor(x) in [0, 1) in one vreduceps (imm 0x09:
 * keep M = 0 fraction bits, round down, suppress the precision exception),
 * and p * 2^floor(x) in one vscalefps, written as zero where x < lo (the
 * mask also takes x = -inf and NaN, whose f is not a number). */
#define CSA_V_HAS_SCALEF 1
static inline csa_v csa_v_frac_floor(csa_v x) { return _mm512_reduce_ps(x, 0x09); }
static inline csa_v csa_v_scale2_floor(csa_v p, csa_v x, float lo) {
  return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_GE_OQ), p, x);
}
static inline csa_v csa_v_iota(void) {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline csa_v csa_v_load_bf16(const uint16_t *p) {
  __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline csa_v csa_v_load_f16(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline void csa_v_store_f16(uint16_t *p, csa_v a) {
  _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
/* bf16 = top half of float32, rounded to nearest even (as csa__f32_to_bf16) */
static inline void csa_v_store_bf16(uint16_t *p, csa_v a) {
  __m512i u = _mm512_castps_si512(a);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
  _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
}
/* dst[j][i] = src[i][j] for a 16 x 16 block.  Transposing swaps the bits of
 * the row index with those of the lane index; each of the 4 steps swaps one
 * bit b: row i (bit b clear) trades its lanes with bit b set for row i+b's
 * lanes with bit b clear. */
static inline void csa_v_transpose(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds) {
  /* per step (b = 8, 4, 2, 1): lanes of the new row i, then of row i+b */
  static const int32_t idx[4][2][16] = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
       {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
      {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
       {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}},
      {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
       {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
      {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
       {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}}};
  __m512 r[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ss);
  for (int st = 0, b = 8; b >= 1; st++, b >>= 1) {
    const __m512i ilo = _mm512_loadu_si512((const void *)idx[st][0]);
    const __m512i ihi = _mm512_loadu_si512((const void *)idx[st][1]);
    for (int i = 0; i < 16; i++) {
      if (i & b)
        continue;
      __m512 x = _mm512_permutex2var_ps(r[i], ilo, r[i + b]);
      __m512 y = _mm512_permutex2var_ps(r[i], ihi, r[i + b]);
      r[i] = x, r[i + b] = y;
    }
  }
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ds, r[i]);
}
#endif
