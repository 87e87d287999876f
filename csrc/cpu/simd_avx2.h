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
#define csa_v_round(a) _mm256_round_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline csa_v csa_v_pow2i(csa_v n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
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
#endif
