/*
 * kernel_scalar.c — the attention kernel in portable C (every build, every
 * CPU; the reference the SIMD variants are tested beside).
 */
#include "cpu_attn.h"
#include "simd_scalar.h"

#define CSA_KNAME(x) x##_scalar
#define CSA_KISA "scalar"
#include "kernel.inc.h"
