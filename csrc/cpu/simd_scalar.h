/*
 * simd_scalar.h — the SIMD vocabulary in portable C, and its definition.
 *
 * The kernels (kernel.inc.h, gemmt.inc.h) are written once against these
 * operations; each ISA header maps them to its intrinsics.  A "vector" holds
 * CSA_VL floats, one per query row (the kernels vectorise over rows):
 *
 *   csa_v_zero/set1/load/store      all lanes 0 / x / from memory / to memory
 *   add, sub, mul, max, fma(a,b,c)  lane-wise; fma = a*b + c
 *   shl23(a)                        a's bits shifted left by 23, as a float
 *                                   (low bits of an integer into the exponent)
 *   lt_select(a, b, x, y)           a < b ? x : y
 *   iota()                          lanes 0, 1, 2, ...
 *   load_bf16 / load_f16            CSA_VL half-precision values, widened
 *   store_bf16 / store_f16          narrowed (round to nearest even) and stored
 *   transpose(src, ss, dst, ds)     dst[j*ds + i] = src[i*ss + j], a
 *                                   CSA_VL x CSA_VL block
 *
 * CSA_RMAX and CSA_JMAX(r) size the register tile of the micro-kernels.
 * Here the "vector" is a small array the compiler may vectorise itself.
 */
#ifndef CSA_SIMD_SCALAR_H
#define CSA_SIMD_SCALAR_H
#include <math.h>
#include <string.h>

#define CSA_VL 4
/* A small register tile: this variant's job is to be right everywhere, and
 * a larger one only multiplies the code the compiler must unroll. */
#define CSA_RMAX 1
#define CSA_JMAX(r) 4

typedef struct csa_v {
  float x[CSA_VL];
} csa_v;

#define CSA__SV_MAP(expr) \
  csa_v r_;               \
  for (int i = 0; i < CSA_VL; i++) r_.x[i] = (expr); \
  return r_

static inline csa_v csa_v_set1(float s) { CSA__SV_MAP(s); }
static inline csa_v csa_v_zero(void) { return csa_v_set1(0.0f); }
static inline csa_v csa_v_load(const float *p) { CSA__SV_MAP(p[i]); }
static inline void csa_v_store(float *p, csa_v a) { memcpy(p, a.x, sizeof a.x); }
static inline csa_v csa_v_add(csa_v a, csa_v b) { CSA__SV_MAP(a.x[i] + b.x[i]); }
static inline csa_v csa_v_sub(csa_v a, csa_v b) { CSA__SV_MAP(a.x[i] - b.x[i]); }
static inline csa_v csa_v_mul(csa_v a, csa_v b) { CSA__SV_MAP(a.x[i] * b.x[i]); }
static inline csa_v csa_v_max(csa_v a, csa_v b) { CSA__SV_MAP(a.x[i] > b.x[i] ? a.x[i] : b.x[i]); }
static inline csa_v csa_v_fma(csa_v a, csa_v b, csa_v c) { CSA__SV_MAP(a.x[i] * b.x[i] + c.x[i]); }
static inline csa_v csa_v_shl23(csa_v a) {
  csa_v r_;
  for (int i = 0; i < CSA_VL; i++) {
    uint32_t bits;
    memcpy(&bits, &a.x[i], 4);
    bits <<= 23;
    memcpy(&r_.x[i], &bits, 4);
  }
  return r_;
}
static inline csa_v csa_v_lt_select(csa_v a, csa_v b, csa_v x, csa_v y) {
  CSA__SV_MAP(a.x[i] < b.x[i] ? x.x[i] : y.x[i]);
}
static inline csa_v csa_v_iota(void) { CSA__SV_MAP((float)i); }
static inline csa_v csa_v_load_bf16(const uint16_t *p) { CSA__SV_MAP(csa__bf16_to_f32(p[i])); }
static inline csa_v csa_v_load_f16(const uint16_t *p) { CSA__SV_MAP(csa__f16_to_f32(p[i])); }
static inline void csa_v_store_f16(uint16_t *p, csa_v a) {
  for (int i = 0; i < CSA_VL; i++) p[i] = csa__f32_to_f16(a.x[i]);
}
static inline void csa_v_store_bf16(uint16_t *p, csa_v a) {
  for (int i = 0; i < CSA_VL; i++) p[i] = csa__f32_to_bf16(a.x[i]);
}
static inline void csa_v_transpose(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds) {
  for (int i = 0; i < CSA_VL; i++)
    for (int j = 0; j < CSA_VL; j++) dst[j * ds + i] = src[i * ss + j];
}
#endif
