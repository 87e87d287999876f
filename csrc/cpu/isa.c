/*
 * isa.c — which CPU kernel runs: CPUID (x86-64) or the target (AArch64) says
 * what the CPU can do, COMFY_SPARSE_ATTN_CPU_ISA or csa_cpu_isa_force() may
 * pick a lesser one.
 *
 * The choice is the only process-wide state of the CPU backend: one atomic
 * int, computed on first use.  Two threads racing on first use compute the
 * same value and the first store wins, so no lock is needed.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() under a strict -std=c11 */
#endif
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "cpu_attn.h"

#if defined(CSA__CPU_X86) && !defined(_MSC_VER)
#include <cpuid.h>
#elif defined(CSA__CPU_X86)
#include <intrin.h>
#endif
#if defined(CSA__CPU_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define CSA__ISA_UNSET (-1)
#define CSA__ISA_COUNT 5
#define CSA__ISA_ENV "COMFY_SPARSE_ATTN_CPU_ISA"

static csa__atomic_i32 csa__isa_choice = CSA__ISA_UNSET;

static const char *const csa__isa_names[CSA__ISA_COUNT] = {"scalar", "avx2", "avx512",
                                                           "avx512bf16", "neon"};

const char *csa_cpu_isa_name(int isa) {
  return isa >= 0 && isa < CSA__ISA_COUNT ? csa__isa_names[isa] : "unknown";
}

#ifdef CSA__CPU_X86
static void csa__cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int x[4];
  __cpuidex(x, (int)leaf, (int)sub);
  for (int i = 0; i < 4; i++) r[i] = (unsigned)x[i];
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

/* XCR0: which register states the OS saves on a context switch. */
static unsigned long long csa__xcr0(void) {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
#endif
}

#define CSA__BIT(x, n) (((x) >> (n)) & 1u)

/* AMX tiles with bf16 products (CPUID.(7,0):EDX bits 22, 24), usable once
 * Linux grants this process the tile data state (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XTILEDATA, feature 18), after which XCR0 shows
 * bits 17-18.  Other systems: not used.  Cached: asked once per process.
 * COMFY_SPARSE_ATTN_CPU_AMX=0 turns it off (then avx512bf16 uses vdpbf16ps;
 * the tests run that path this way). */
static csa__atomic_i32 csa__amx_state = -1;

static int csa__amx_probe(void) {
#if defined(__linux__)
  const char *env = getenv("COMFY_SPARSE_ATTN_CPU_AMX"); /* "0": keep vdpbf16ps (tests) */
  if (env && strcmp(env, "0") == 0)
    return 0;
  unsigned r[4];
  csa__cpuid(0, 0, r);
  if (r[0] < 7)
    return 0;
  csa__cpuid(7, 0, r);
  if (!CSA__BIT(r[3], 22) || !CSA__BIT(r[3], 24))
    return 0;
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0)
    return 0;
  return (csa__xcr0() & 0x60000) == 0x60000;
#else
  return 0;
#endif
}

int csa__cpu_amx_ready(void) {
  int s = csa__atomic_load_i32(&csa__amx_state);
  if (s < 0) {
    s = csa__amx_probe();
    csa__atomic_store_i32(&csa__amx_state, s);
  }
  return s;
}

/* Whether vdpbf16ps beats float32 FMA per FLOP.  On AMD Zen 4/5 it issues
 * like an FMA and does twice the work.  On Intel Sapphire Rapids it issues
 * at a quarter of the FMA rate, half the FLOPs (peak_cpu.c), and the bf16
 * inputs run faster widened to float32, so Intel CPUs default to the
 * AVX-512 kernel unless they have AMX, which the avx512bf16 kernel then uses
 * for its bf16 products; the environment variable or csa_cpu_isa_force()
 * can still pick either.  Measurements: bench/RESULTS.md. */
static int csa__bf16dot_is_fast(void) {
  unsigned r[4];
  csa__cpuid(0, 0, r);
  return r[1] == 0x68747541u && r[3] == 0x69746e65u && r[2] == 0x444d4163u; /* "AuthenticAMD" */
}

/* Best x86 ISA: AVX2 needs AVX2+FMA+F16C and the OS saving YMM (XCR0 bits
 * 1-2); AVX-512 needs F/DQ/BW/VL and the OS saving opmask and ZMM (bits
 * 5-7); BF16 is CPUID.(7,1):EAX bit 5. */
static int csa__isa_top_x86(void) {
  unsigned r[4];
  csa__cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  if (max_leaf < 7)
    return CSA_ISA_SCALAR;
  csa__cpuid(1, 0, r);
  const unsigned ecx1 = r[2];
  if (!CSA__BIT(ecx1, 27) || !CSA__BIT(ecx1, 28)) /* OSXSAVE, AVX */
    return CSA_ISA_SCALAR;
  const unsigned long long xcr0 = csa__xcr0();
  if ((xcr0 & 0x6) != 0x6)
    return CSA_ISA_SCALAR;
  csa__cpuid(7, 0, r);
  const unsigned ebx7 = r[1], max_sub7 = r[0];
  if (!CSA__BIT(ebx7, 5) || !CSA__BIT(ecx1, 12) || !CSA__BIT(ecx1, 29)) /* AVX2, FMA, F16C */
    return CSA_ISA_SCALAR;
  const int avx512 = CSA__BIT(ebx7, 16) && CSA__BIT(ebx7, 17) && CSA__BIT(ebx7, 30) &&
                     CSA__BIT(ebx7, 31) && (xcr0 & 0xe6) == 0xe6;
  if (!avx512)
    return CSA_ISA_AVX2;
  if (max_sub7 >= 1) {
    csa__cpuid(7, 1, r);
    if (CSA__BIT(r[0], 5))
      return CSA_ISA_AVX512BF16;
  }
  return CSA_ISA_AVX512;
}
#endif

/* The most capable ISA the CPU (and OS) can run. */
static int csa__isa_top(void) {
#if defined(CSA__CPU_X86)
  return csa__isa_top_x86();
#elif defined(CSA__CPU_ARM64)
  return CSA_ISA_NEON;
#else
  return CSA_ISA_SCALAR;
#endif
}

/* The default: the top ISA, except AVX512-BF16 where neither fast
 * vdpbf16ps nor AMX makes its bf16 path pay. */
static int csa__isa_best(void) {
#if defined(CSA__CPU_X86)
  const int top = csa__isa_top_x86();
  if (top == CSA_ISA_AVX512BF16 && !csa__bf16dot_is_fast() && !csa__cpu_amx_ready())
    return CSA_ISA_AVX512;
  return top;
#elif defined(CSA__CPU_ARM64)
  return CSA_ISA_NEON;
#else
  return CSA_ISA_SCALAR;
#endif
}

/* x86 ISAs are nested (each needs the one below), so "supported" means "at
 * most the top one"; NEON is the whole story on AArch64. */
static int csa__isa_supported(int isa) {
  if (isa == CSA_ISA_SCALAR)
    return 1;
  const int top = csa__isa_top();
#if defined(CSA__CPU_X86)
  return isa >= CSA_ISA_AVX2 && isa <= CSA_ISA_AVX512BF16 && isa <= top;
#else
  return isa == top;
#endif
}
#if defined(CSA__CPU_X86)
int csa__cpu_bf16dot_fast(void) { return csa__bf16dot_is_fast(); }
#else
int csa__cpu_amx_ready(void) { return 0; }
int csa__cpu_bf16dot_fast(void) { return 0; }
#endif

const csa__cpu_kernel *csa__cpu_kernel_get(int isa) {
  switch (isa) {
  case CSA_ISA_SCALAR: return &csa__cpu_kernel_scalar;
#if defined(CSA__CPU_X86)
  case CSA_ISA_AVX2: return &csa__cpu_kernel_avx2;
  case CSA_ISA_AVX512: return &csa__cpu_kernel_avx512;
  case CSA_ISA_AVX512BF16: return &csa__cpu_kernel_avx512bf16;
#endif
#if defined(CSA__CPU_ARM64)
  case CSA_ISA_NEON: return &csa__cpu_kernel_neon;
#endif
  default: return NULL;
  }
}

/* The environment may ask for any ISA the CPU has; anything else (unknown
 * name, ISA the CPU lacks) is ignored and the best one is used. */
static int csa__isa_from_env(int best) {
  const char *env = getenv(CSA__ISA_ENV);
  if (env == NULL || *env == '\0')
    return best;
  for (int i = 0; i < CSA__ISA_COUNT; i++)
    if (strcmp(env, csa__isa_names[i]) == 0 && csa__isa_supported(i))
      return i;
  return best;
}

int csa_cpu_isa_selected(void) {
  int isa = csa__atomic_load_i32(&csa__isa_choice);
  if (isa != CSA__ISA_UNSET)
    return isa;
  int want = csa__isa_from_env(csa__isa_best());
  int32_t expected = CSA__ISA_UNSET;
  if (csa__atomic_cas_i32(&csa__isa_choice, &expected, want))
    return want;
  return expected; /* another thread chose (or forced) first */
}

/* isa < 0 returns to the automatic choice (CPUID + environment). */
int csa_cpu_isa_force(int isa) {
  if (isa < 0) {
    csa__atomic_store_i32(&csa__isa_choice, CSA__ISA_UNSET);
    return CSA_OK;
  }
  if (isa >= CSA__ISA_COUNT)
    return csa__error(CSA_EINVAL, "unknown CPU ISA %d; expected 0..%d (scalar, avx2, avx512, "
                      "avx512bf16, neon)", isa, CSA__ISA_COUNT - 1);
  if (!csa__isa_supported(isa) || csa__cpu_kernel_get(isa) == NULL)
    return csa__error(CSA_ENOTSUP, "this CPU or build cannot run the %s kernel (best here: %s)",
                      csa_cpu_isa_name(isa), csa_cpu_isa_name(csa__isa_top()));
  csa__atomic_store_i32(&csa__isa_choice, isa);
  return CSA_OK;
}
