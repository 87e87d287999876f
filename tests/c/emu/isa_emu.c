/*
 * isa_emu.c — isa.c's interface for the emulated build (emu_avx512_amx.h):
 * every x86 kernel up to avx512bf16 runs, AMX tiles unless
 * COMFY_SPARSE_ATTN_CPU_AMX=0; csa_cpu_isa_force() picks (default
 * avx512bf16).  CPUID is not asked: the host has no AVX-512.
 */
#include <stdlib.h>
#include <string.h>
#include "cpu/cpu_attn.h"
static int choice = CSA_ISA_AVX512BF16;
static const char *const names[5] = {"scalar", "avx2", "avx512", "avx512bf16", "neon"};
const char *csa_cpu_isa_name(int isa) { return isa >= 0 && isa < 5 ? names[isa] : "unknown"; }
int csa__cpu_amx_ready(void) { const char *e = getenv("COMFY_SPARSE_ATTN_CPU_AMX"); return !(e && strcmp(e, "0") == 0); }
/* as on the Intel CPUs that have AMX: vdpbf16ps is not the fast bf16 path */
int csa__cpu_bf16dot_fast(void) { return 0; }
const csa__cpu_kernel *csa__cpu_kernel_get(int isa) {
  switch (isa) {
  case CSA_ISA_SCALAR: return &csa__cpu_kernel_scalar;
  case CSA_ISA_AVX2: return &csa__cpu_kernel_avx2;
  case CSA_ISA_AVX512: return &csa__cpu_kernel_avx512;
  case CSA_ISA_AVX512BF16: return &csa__cpu_kernel_avx512bf16;
  default: return NULL;
  }
}
int csa_cpu_isa_selected(void) { return choice; }
int csa_cpu_isa_force(int isa) {
  if (isa < 0) { choice = CSA_ISA_AVX512BF16; return CSA_OK; }
  if (isa > CSA_ISA_AVX512BF16) return csa__error(CSA_ENOTSUP, "emulated build: no %s", csa_cpu_isa_name(isa));
  choice = isa; return CSA_OK;
}
