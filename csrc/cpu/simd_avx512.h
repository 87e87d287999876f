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
#define csa_v_round(a) _mm512_roundscale_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline csa_v csa_v_pow2i(csa_v n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline csa_v csa_v_lt_select(csa_v a, csa_v b, csa_v x, csa_v y) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
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
#endif
