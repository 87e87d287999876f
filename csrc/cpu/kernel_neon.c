/*
 * kernel_neon.c — the attention kernel on AArch64 Advanced SIMD (always
 * present on AArch64, so no run-time check is needed).
 */
#include "cpu_attn.h"
#include "simd_neon.h"

#define CSA_KNAME(x) x##_neon
#define CSA_KISA "neon"
#include "kernel.inc.h"
