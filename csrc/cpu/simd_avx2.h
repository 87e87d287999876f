/*
 * simd_avx2.h — the SIMD vocabulary (see simd_scalar.h) on AVX2 + FMA + F16C:
 * 8 float lanes, 16 registers.
 */
#ifndef CSA_SIMD_AVX2_H
#define CSA_SIMD_AVX2_H
#include <immintrin.h>

#define CSA_VL 8
/* 2 row vectors x 6 = 12 accumulators + 2 row loads + 1 broadcast of 16. */
#define CSA_RMAX 2
#define CSA_JMAX(r) ((r) == 2 ? 6 : 8)

typedef __m256 csa_v;
#define csa_v_zero() _mm256_setzero_ps()
#define csa_v_set1(x) _mm256_set1_ps(x)
#define csa_v_load(p) _mm256_loadu_ps(p)
#define csa_v_store(p, a) _mm256_storeu_ps((p), (a))
#define csa_v_add(a, b) _mm256_add_ps((a), (b))
#define csa_v_sub(a, b) _mm256_sub_ps((a), (b))
#define csa_v_mul(a, b) _mm256_mul_ps((a), (b))
#define csa_v_max(a, b) _mm256_max_ps((a), (b))
#define csa_v_fma(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define csa_v_shl23(a) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a), 23))
static inline csa_v csa_v_lt_select(csa_v a, csa_v b, csa_v x, csa_v y) {
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline csa_v csa_v_iota(void) { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
static inline csa_v csa_v_load_bf16(const uint16_t *p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline csa_v csa_v_load_f16(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline void csa_v_store_f16(uint16_t *p, csa_v a) {
  _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline void csa_v_store_bf16(uint16_t *p, csa_v a) {
  __m256i u = _mm256_castps_si256(a);
  __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
  /* packus interleaves 128-bit lanes: keep qwords 0 and 2 */
  __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0x08);
  _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(w));
}
/* dst[j][i] = src[i][j] for an 8 x 8 block: 2x2 transposes of floats, of
 * float pairs, then of 128-bit halves. */
static inline void csa_v_transpose(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ss);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps(dst + i * ds, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ds, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}
#endif
