/*
 * test_cpu_attn_dot.c — test_cpu_attn's cases on the avx512bf16 kernel with
 * AMX turned off (COMFY_SPARSE_ATTN_CPU_AMX=0), so its vdpbf16ps path is
 * tested on CPUs that have AMX as well.  Passes trivially without
 * AVX512-BF16.
 */
#define CSA_TEST_NO_AMX 1
#define CSA_TEST_NAME "test_cpu_attn_dot"
#include "test_cpu_attn.c"
