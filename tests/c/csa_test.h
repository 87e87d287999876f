/*
 * csa_test.h — the tiny assertion vocabulary of the C unit tests.
 * A failed CSA_CHECK prints where and why, counts, and the test goes on, so
 * one run reports every failure; main returns csa_test_finish().
 */
#ifndef CSA_TEST_H
#define CSA_TEST_H

#include <stdio.h>

static int csa_test_failures = 0;
static int csa_test_checks = 0;

#define CSA_CHECK(cond, ...)                                              \
  do {                                                                    \
    csa_test_checks++;                                                    \
    if (!(cond)) {                                                        \
      csa_test_failures++;                                                \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                       \
      fprintf(stderr, "\n");                                              \
    }                                                                     \
  } while (0)

#define CSA_CHECK_STATUS(expr, want)                                      \
  do {                                                                    \
    int csa__got = (expr);                                                \
    CSA_CHECK(csa__got == (want), "%s returned %s (%s), want %s", #expr,  \
              csa_status_name(csa__got), csa_errmsg(), csa_status_name(want)); \
  } while (0)

static int csa_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, csa_test_checks, csa_test_failures);
  return csa_test_failures ? 1 : 0;
}

#endif /* CSA_TEST_H */
