/*
 * kernel_avx2.c — the attention kernel on AVX2 + FMA (+ F16C for fp16 loads).
 * Compiled with -mavx2 -mfma -mf16c (sources.cmake); run only when CPUID says
 * so (isa.c).
 */
#include "cpu_attn.h"
#include "simd_avx2.h"

#include "kernel_common.inc.h"

#define CSA_K_ISA CSA_ISA_AVX2
#define CSA_K_KERNEL csa__cpu_kernel_avx2
#include "kernel.inc.h"
