/*
 * kernel_avx512.c — the attention kernel on AVX-512 F/BW/VL/DQ, float32
 * products for every input dtype.  Compiled with AVX-512 flags
 * (sources.cmake); run only when CPUID says so (isa.c).
 */
#include "cpu_attn.h"
#include "simd_avx512.h"

#include "kernel_common.inc.h"

#define CSA_K_ISA CSA_ISA_AVX512
#define CSA_K_KERNEL csa__cpu_kernel_avx512
#include "kernel.inc.h"
