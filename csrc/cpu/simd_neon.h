/*
 * simd_neon.h — the SIMD vocabulary (see simd_scalar.h) on AArch64 NEON:
 * 4 float lanes, 32 registers.
 */
#ifndef CSA_SIMD_NEON_H
#define CSA_SIMD_NEON_H
#include <arm_neon.h>

#define CSA_VL 4
/* 4 row vectors x 6 = 24 accumulators + 4 row loads. */
#define CSA_RMAX 4
#define CSA_JMAX(r) ((r) == 4 ? 6 : 8)

typedef float32x4_t csa_v;
#define csa_v_zero() vdupq_n_f32(0.0f)
#define csa_v_set1(x) vdupq_n_f32(x)
#define csa_v_load(p) vld1q_f32(p)
#define csa_v_store(p, a) vst1q_f32((p), (a))
#define csa_v_add(a, b) vaddq_f32((a), (b))
#define csa_v_sub(a, b) vsubq_f32((a), (b))
#define csa_v_mul(a, b) vmulq_f32((a), (b))
#define csa_v_max(a, b) vmaxq_f32((a), (b))
#define csa_v_fma(a, b, c) vfmaq_f32((c), (a), (b))
#define csa_v_shl23(a) vreinterpretq_f32_u32(vshlq_n_u32(vreinterpretq_u32_f32(a), 23))
static inline csa_v csa_v_lt_select(csa_v a, csa_v b, csa_v x, csa_v y) {
  return vbslq_f32(vcltq_f32(a, b), x, y);
}
static inline csa_v csa_v_iota(void) {
  static const float i[4] = {0, 1, 2, 3};
  return vld1q_f32(i);
}
static inline csa_v csa_v_load_bf16(const uint16_t *p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
static inline csa_v csa_v_load_f16(const uint16_t *p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
static inline void csa_v_store_f16(uint16_t *p, csa_v a) {
  vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(a)));
}
static inline void csa_v_store_bf16(uint16_t *p, csa_v a) {
  uint32x4_t u = vreinterpretq_u32_f32(a);
  uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
  vst1_u16(p, vshrn_n_u32(vaddq_u32(u, vaddq_u32(odd, vdupq_n_u32(0x7fff))), 16));
}
/* dst[j][i] = src[i][j] for a 4 x 4 block. */
static inline void csa_v_transpose(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds) {
  float32x4x2_t a = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + ss));
  float32x4x2_t b = vtrnq_f32(vld1q_f32(src + 2 * ss), vld1q_f32(src + 3 * ss));
  vst1q_f32(dst, vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0])));
  vst1q_f32(dst + ds, vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1])));
  vst1q_f32(dst + 2 * ds, vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0])));
  vst1q_f32(dst + 3 * ds, vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1])));
}
#endif
