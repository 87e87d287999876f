/*
 * kernel_scalar.c — the attention kernel in portable C (every build, every
 * CPU; the reference the SIMD variants are tested beside).
 */
#include "cpu_attn.h"
#include "simd_scalar.h"

#include "kernel_common.inc.h"

#define CSA_K_ISA CSA_ISA_SCALAR
#define CSA_K_KERNEL csa__cpu_kernel_scalar
#include "kernel.inc.h"
