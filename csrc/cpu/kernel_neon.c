/*
 * kernel_neon.c — the attention kernel on AArch64 Advanced SIMD (always
 * present on AArch64, so no run-time check is needed).
 */
#include "cpu_attn.h"
#include "simd_neon.h"

#include "kernel_common.inc.h"

#define CSA_K_ISA CSA_ISA_NEON
#define CSA_K_KERNEL csa__cpu_kernel_neon
#include "kernel.inc.h"
