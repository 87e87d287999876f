/*
 * csa_test.h — the tiny assertion vocabulary of the C unit tests.
 * A failed CSA_CHECK prints where and why, counts, and the test goes on, so
 * one run reports every failure; main returns csa_test_finish().
 */
#ifndef CSA_TEST_H
#define CSA_TEST_H

#include <stdio.h>
#include <string.h>

#include "csa/csa.h"

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

/* A zeroed CPU tensor of ndim dimensions over data; shapes and strides
 * are the caller's to fill. */
static inline csa_tensor csa_test_view_base(void *data, int dtype, int ndim) {
  csa_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device_type = CSA_DEVICE_CPU;
  t.ndim = ndim;
  return t;
}

/* A CPU view [n0, n1, n2] with row strides s0, s1 (unit last stride). */
static inline csa_tensor csa_test_view3(void *data, int dtype, int64_t n0, int64_t n1, int64_t n2,
                                        int64_t s0, int64_t s1) {
  csa_tensor t = csa_test_view_base(data, dtype, 3);
  t.shape[0] = n0, t.shape[1] = n1, t.shape[2] = n2;
  t.strides[0] = s0, t.strides[1] = s1, t.strides[2] = 1;
  return t;
}

/* A contiguous CPU int32 vector of n elements (cu_seqlens). */
static inline csa_tensor csa_test_view1_i32(int32_t *data, int64_t n) {
  csa_tensor t = csa_test_view_base(data, CSA_INT32, 1);
  t.shape[0] = n;
  t.strides[0] = 1;
  return t;
}

static int csa_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, csa_test_checks, csa_test_failures);
  return csa_test_failures ? 1 : 0;
}

#endif /* CSA_TEST_H */
