/*
 * dtype.c — element sizes, dtype and device names, and the scalar half-precision conversions
 * every backend's reference and fallback paths share.
 */
#include <string.h>

#include "internal.h"

size_t csa_dtype_size(int dtype) {
  switch (dtype) {
#define CSA__SIZE_CASE(name, val, str, size) \
  case CSA_##name:                           \
    return size;
    CSA_DTYPE_MAP(CSA__SIZE_CASE)
#undef CSA__SIZE_CASE
  default:
    return 0;
  }
}

const char *csa_dtype_name(int dtype) {
  switch (dtype) {
#define CSA__NAME_CASE(name, val, str, size) \
  case CSA_##name:                           \
    return str;
    CSA_DTYPE_MAP(CSA__NAME_CASE)
#undef CSA__NAME_CASE
  default:
    return "unsupported";
  }
}

/* Device names live beside dtype names: both turn a table code into the word
 * a user reads in an error message. */
const char *csa_device_name(int device_type) {
  switch (device_type) {
#define CSA__DEV_CASE(name, val, str) \
  case CSA_DEVICE_##name:             \
    return str;
    CSA_DEVICE_MAP(CSA__DEV_CASE)
#undef CSA__DEV_CASE
  default:
    return "unknown";
  }
}

static uint32_t csa__f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float csa__bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* bf16 is the top half of an IEEE binary32. */
float csa__bf16_to_f32(uint16_t h) { return csa__bits_f32((uint32_t)h << 16); }

/* Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate.
 * NaN must stay NaN (the add could carry it into infinity), so keep a quiet
 * NaN explicitly. */
uint16_t csa__f32_to_bf16(float f) {
  uint32_t u = csa__f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float csa__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) /* inf / NaN */
    return csa__bits_f32(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0)
      return csa__bits_f32(sign);
    /* subnormal: value = man * 2^-24, exact in binary32 */
    float v = (float)man * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return csa__bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t csa__f32_to_f16(float f) {
  uint32_t u = csa__f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) /* NaN */
    return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00u);
  if (a < 0x38800000u) {
    /* Subnormal or zero result: its integer mantissa is round(x / 2^-24).
     * In binary32, 0.5f has ulp 2^-24, so the FPU's own rounding of
     * x + 0.5f (x < 2^-14) lands on exactly that multiple; subtracting the
     * bits of 0.5f leaves the mantissa count. */
    float v = csa__bits_f32(a) + 0.5f;
    return (uint16_t)(sign | (csa__f32_bits(v) - 0x3f000000u));
  }
  /* normal: rebias exponent (127 -> 15), round mantissa 23 -> 10 bits to
   * nearest even. */
  uint32_t r = a + 0xc8000fffu + ((a >> 13) & 1u);
  return (uint16_t)(sign | (r >> 13));
}
