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
 *
 * Where the CPU has AMX (and the OS lets us use it) both products run on
 * tiles instead (below): Sapphire Rapids does them several times faster than
 * with vdpbf16ps, which it issues at a quarter of the FMA rate.
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
/* AMX is used on Linux only (the kernel must grant the tile state through
 * arch_prctl, isa.c).  Elsewhere it is not even compiled: mingw-w64's
 * _tile_loadd passes its stride as a 32-bit `long` (LLP64) straight into a
 * 64-bit address operand, which the assembler rejects. */
#if defined(__linux__)
#define CSA_BF16AMX 1
#endif
#define CSA_BF16DOT_AV __m512bh
#define CSA_BF16DOT_BCAST(p) ((__m512bh)_mm512_set1_epi32((int)csa__load_u32(p)))
#define CSA_BF16DOT_BV __m512bh
#define CSA_BF16DOT_BLOAD(p) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
#define CSA_BF16DOT_STEP(acc, x, y) _mm512_dpbf16_ps((acc), (x), (y))

/* Two float32 vectors -> 16 lanes of (bf16 lo, bf16 hi) pairs: one
 * conversion gives [lo0..lo15, hi0..hi15], one word permute interleaves. */
static inline __m512i csa__bf16_pairs(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
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

#ifdef CSA_BF16AMX
/* ---- AMX: the same two bf16 products on tiles (where csa__cpu_amx_ready).
 *
 * Every tile is 16 rows x 64 bytes: tiles 0-3 accumulate C for the item
 * tile's (up to) four row vectors, tile 4 holds A, tile 5 B.  TDPBF16PS
 * computes C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1], so
 *   scores: A = 16 keys x 32 d (bf16 rows), B = 16 d-pairs x 16 query rows
 *           (Q^T as pairs, the layout the dot-product path packs), C = S^T;
 *   output: A = 16 dv x 32 keys (V^T), B = 16 key pairs x 16 rows (P^T as
 *           pairs), C = O^T.
 * Operands are zero-padded to whole tiles, so no tile reads past the data. */
#define CSA__AMX_TILE_K 32 /* bf16 per tile row */

typedef struct csa__tilecfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} csa__tilecfg;

static void csa__amx_begin(void) {
  csa__tilecfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 6; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

#define CSA__AMX_ROWS_STRIDE (CSA__CPU_ROWS * 4)
/* C tile r (row vector r) += A (tile 4) x B rows at b + r*16 lanes */
#define CSA__AMX_STEP(r, b)                                                    \
  do {                                                                         \
    _tile_loadd(5, (const void *)((b) + (r) * 16), CSA__AMX_ROWS_STRIDE);     \
    _tile_dpbf16ps(r, 4, 5);                                                   \
  } while (0)
#define CSA__AMX_EACH(nrv, MACRO, ...) \
  do {                                 \
    MACRO(0, __VA_ARGS__);             \
    if ((nrv) > 1) MACRO(1, __VA_ARGS__); \
    if ((nrv) > 2) MACRO(2, __VA_ARGS__); \
    if ((nrv) > 3) MACRO(3, __VA_ARGS__); \
  } while (0)
#define CSA__AMX_ZERO(r, unused) _tile_zero(r)
#define CSA__AMX_LOADC(r, c) _tile_loadd(r, (const void *)((c) + (r) * 16), CSA__AMX_ROWS_STRIDE)
#define CSA__AMX_STOREC(r, c) _tile_stored(r, (void *)((c) + (r) * 16), CSA__AMX_ROWS_STRIDE)

/* S^T[key][rows] for keys [0, nkeys16) of kb ([keys][dp32] bf16). */
static void csa__amx_scores(const uint16_t *kb, int64_t dp32, const float *qp, float *s,
                            int64_t nkeys16, int nrv) {
  for (int64_t kg = 0; kg < nkeys16; kg += 16) {
    CSA__AMX_EACH(nrv, CSA__AMX_ZERO, 0);
    for (int64_t k = 0; k < dp32; k += CSA__AMX_TILE_K) {
      _tile_loadd(4, (const void *)(kb + kg * dp32 + k), (int)(dp32 * 2));
      const float *b = qp + (k / 2) * CSA__CPU_ROWS;
      CSA__AMX_EACH(nrv, CSA__AMX_STEP, b);
    }
    float *c = s + kg * CSA__CPU_ROWS;
    CSA__AMX_EACH(nrv, CSA__AMX_STOREC, c);
  }
}

/* O^T[dv][rows] (+)= V^T P^T over keys [0, nkeys32) of vt ([dvp][KEYS] bf16)
 * and pp (P^T pairs); first: O^T starts at zero. */
static void csa__amx_out(const uint16_t *vt, const float *pp, float *ot, int64_t dvp,
                         int64_t nkeys32, int nrv, int first) {
  for (int64_t dg = 0; dg < dvp; dg += 16) {
    float *c = ot + dg * CSA__CPU_ROWS;
    if (first)
      CSA__AMX_EACH(nrv, CSA__AMX_ZERO, 0);
    else
      CSA__AMX_EACH(nrv, CSA__AMX_LOADC, c);
    for (int64_t k = 0; k < nkeys32; k += CSA__AMX_TILE_K) {
      _tile_loadd(4, (const void *)(vt + dg * CSA__CPU_KEYS + k), CSA__CPU_KEYS * 2);
      const float *b = pp + (k / 2) * CSA__CPU_ROWS;
      CSA__AMX_EACH(nrv, CSA__AMX_STEP, b);
    }
    CSA__AMX_EACH(nrv, CSA__AMX_STOREC, c);
  }
}

/* K block rows -> [nkeys16][dp32] bf16, zero beyond d and beyond cn keys. */
static void csa__amx_pack_k(uint16_t *dst, const uint16_t *k, int64_t k_st, int64_t cn,
                            int64_t d, int64_t dp32) {
  const int64_t n16 = (cn + 15) / 16 * 16;
  for (int64_t j = 0; j < n16; j++) {
    uint16_t *row = dst + j * dp32;
    int64_t done = 0;
    if (j < cn) {
      memcpy(row, k + j * k_st, (size_t)d * 2);
      done = d;
    }
    memset(row + done, 0, (size_t)(dp32 - done) * 2);
  }
}

/* V block -> V^T [dvp][KEYS] bf16, keys beyond cn zero.  tmp: [KEYS][dvp32]
 * bf16, the block zero-padded so that whole 32 x 32 blocks move.
 *
 * A 32-bit view makes it two known steps: the rows of 16 keys x 16 dv-pairs
 * transpose as floats (csa_v_transpose), giving per pair p the keys'
 * (V[j][2p], V[j][2p+1]); one word permute of two such rows (keys 0-15,
 * 16-31) then takes the even words (dv = 2p) and another the odd (2p+1). */
static void csa__amx_pack_vt(uint16_t *dst, uint16_t *tmp, const uint16_t *v, int64_t v_st,
                             int64_t cn, int64_t dv, int64_t dvp) {
  const int64_t w = (dv + 31) / 32 * 32; /* tmp row width, bf16 */
  const int64_t n32 = (cn + 31) / 32 * 32;
  for (int64_t j = 0; j < n32; j++) {
    int64_t done = 0;
    if (j < cn) {
      memcpy(tmp + j * w, v + j * v_st, (size_t)dv * 2);
      done = dv;
    }
    memset(tmp + j * w + done, 0, (size_t)(w - done) * 2);
  }
  const __m512i even = _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36,
                                        34, 32, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                        4, 2, 0);
  const __m512i odd = _mm512_add_epi16(even, _mm512_set1_epi16(1));
  float t[2][16 * 16];
  for (int64_t k0 = 0; k0 < n32; k0 += 32)
    for (int64_t x0 = 0; x0 < w; x0 += 32) {
      /* t[h][p][j] = pair p of key k0 + 16h + j, dv x0 + 2p */
      for (int hh = 0; hh < 2; hh++)
        csa_v_transpose((const float *)(tmp + (k0 + 16 * hh) * w + x0), w / 2, t[hh], 16);
      for (int p = 0; p < 16 && x0 + 2 * p < dvp; p++) {
        __m512i a = _mm512_loadu_si512((const void *)(t[0] + p * 16));
        __m512i b = _mm512_loadu_si512((const void *)(t[1] + p * 16));
        _mm512_storeu_si512((void *)(dst + (x0 + 2 * p) * CSA__CPU_KEYS + k0),
                            _mm512_permutex2var_epi16(a, even, b));
        if (x0 + 2 * p + 1 < dvp)
          _mm512_storeu_si512((void *)(dst + (x0 + 2 * p + 1) * CSA__CPU_KEYS + k0),
                              _mm512_permutex2var_epi16(a, odd, b));
      }
    }
  for (int64_t x = 0; x < dvp; x++) /* keys past the block's 32-rounding: 0 */
    memset(dst + x * CSA__CPU_KEYS + n32, 0, (size_t)(CSA__CPU_KEYS - n32) * 2);
}

#endif /* CSA_BF16AMX */

#define CSA_KNAME(x) x##_avx512bf16
#define CSA_KISA "avx512bf16"
#include "kernel.inc.h"
