/*
 * kernel_avx2.c — the attention kernel on AVX2 + FMA (+ F16C for fp16 loads).
 * Compiled with -mavx2 -mfma -mf16c (sources.cmake); run only when CPUID says
 * so (isa.c).
 */
#include "cpu_attn.h"
#include "simd_avx2.h"

#define CSA_KNAME(x) x##_avx2
#define CSA_KISA "avx2"
#include "kernel.inc.h"
