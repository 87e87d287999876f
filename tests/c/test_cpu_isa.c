/*
 * test_cpu_isa.c — choosing the CPU kernel: names, the environment variable,
 * csa_cpu_isa_force() (refusing ISAs the CPU lacks), and a race on first use.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "csa/csa.h"
#include "csa_test.h"

#if defined(_WIN32) /* the CRT's names; an empty value removes the variable */
#define setenv(name, value, overwrite) _putenv_s((name), (value))
#define unsetenv(name) _putenv_s((name), "")
#endif

static void *select_main(void *arg) {
  *(int *)arg = csa_cpu_isa_selected();
  return NULL;
}

int main(void) {
  /* The environment is read on first use: ask for the scalar kernel. */
  setenv("COMFY_SPARSE_ATTN_CPU_ISA", "scalar", 1);
  pthread_t t[4];
  int got[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, select_main, &got[i]);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CSA_CHECK(got[i] == CSA_ISA_SCALAR, "thread %d chose %s under COMFY_SPARSE_ATTN_CPU_ISA=scalar",
              i, csa_cpu_isa_name(got[i]));
  }

  /* Unknown names are ignored: the automatic choice stands. */
  setenv("COMFY_SPARSE_ATTN_CPU_ISA", "sse9", 1);
  CSA_CHECK_STATUS(csa_cpu_isa_force(-1), CSA_OK);
  const int best = csa_cpu_isa_selected();
  unsetenv("COMFY_SPARSE_ATTN_CPU_ISA");
  CSA_CHECK_STATUS(csa_cpu_isa_force(-1), CSA_OK);
  CSA_CHECK(csa_cpu_isa_selected() == best, "unknown env name ignored: %s vs %s",
            csa_cpu_isa_name(csa_cpu_isa_selected()), csa_cpu_isa_name(best));
  printf("best ISA here: %s\n", csa_cpu_isa_name(best));

  static const char *names[] = {"scalar", "avx2", "avx512", "avx512bf16", "neon"};
  for (int isa = 0; isa <= CSA_ISA_NEON; isa++) {
    CSA_CHECK(strcmp(csa_cpu_isa_name(isa), names[isa]) == 0, "name of %d: %s", isa,
              csa_cpu_isa_name(isa));
    int st = csa_cpu_isa_force(isa);
    CSA_CHECK(st == CSA_OK || st == CSA_ENOTSUP, "force(%s): %s", names[isa], csa_status_name(st));
    if (st == CSA_OK)
      CSA_CHECK(csa_cpu_isa_selected() == isa, "forced %s, selected %s", names[isa],
                csa_cpu_isa_name(csa_cpu_isa_selected()));
    else
      CSA_CHECK(strstr(csa_errmsg(), names[isa]) != NULL, "refusal names the ISA: %s",
                csa_errmsg());
  }
  CSA_CHECK_STATUS(csa_cpu_isa_force(CSA_ISA_SCALAR), CSA_OK);
#if defined(__x86_64__)
  CSA_CHECK_STATUS(csa_cpu_isa_force(CSA_ISA_NEON), CSA_ENOTSUP);
  CSA_CHECK(csa_cpu_isa_selected() == CSA_ISA_SCALAR, "a refused force keeps the choice");
#elif defined(__aarch64__)
  CSA_CHECK_STATUS(csa_cpu_isa_force(CSA_ISA_AVX2), CSA_ENOTSUP);
  CSA_CHECK(best == CSA_ISA_NEON, "AArch64 picks NEON, got %s", csa_cpu_isa_name(best));
#endif
  CSA_CHECK_STATUS(csa_cpu_isa_force(99), CSA_EINVAL);
  CSA_CHECK(strcmp(csa_cpu_isa_name(99), "unknown") == 0, "name of 99");
  return csa_test_finish("test_cpu_isa");
}
