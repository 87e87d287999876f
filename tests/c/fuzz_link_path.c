/*
 * fuzz_link_path.c — libFuzzer target for the comfy_relative checker.
 *
 *   cmake -S tests/c -B build/fuzz -DCSA_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   cmake --build build/fuzz --target fuzz_link_path
 *   build/fuzz/fuzz_link_path -max_total_time=60
 *
 * Properties checked on every input (beyond ASan/UBSan's own):
 *   - accepted paths normalise to a fixed point;
 *   - the normal form is relative, has no empty, "." or ".." component, no
 *     ':', < > " | ? * or control byte, and no component ending in '.' or ' ';
 *   - stripping separators from input and normal form gives the same bytes
 *     (normalising only re-spells separators);
 *   - refusals are CSA_EPATH with a non-empty message;
 *   - a too-small output buffer is refused, never overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link/link_internal.h"

static void csa__fuzz_assert(int cond) {
  if (!cond)
    abort();
}

static int csa__fuzz_sep(char c) { return c == '/' || c == '\\'; }

static void csa__fuzz_check_norm(const char *norm) {
  size_t n = strlen(norm);
  csa__fuzz_assert(n > 0 && !csa__fuzz_sep(norm[0]) && !csa__fuzz_sep(norm[n - 1]));
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && norm[i] == (CSA__SEP == '/' ? '\\' : '/'))
      abort(); /* only the platform separator remains */
    if (i == n || norm[i] == CSA__SEP) {
      size_t len = i - start;
      const char *c = norm + start;
      csa__fuzz_assert(len > 0);
      csa__fuzz_assert(!(len == 1 && c[0] == '.'));
      csa__fuzz_assert(!(len == 2 && c[0] == '.' && c[1] == '.'));
      csa__fuzz_assert(c[len - 1] != '.' && c[len - 1] != ' ');
      start = i + 1;
    } else {
      unsigned char ch = (unsigned char)norm[i];
      csa__fuzz_assert(ch >= 0x20 && ch != 0x7f && strchr(":<>\"|?*", ch) == NULL);
    }
  }
}

static size_t csa__fuzz_strip(const char *s, char *out) {
  size_t o = 0;
  for (; *s; s++)
    if (!csa__fuzz_sep(*s))
      out[o++] = *s;
  out[o] = '\0';
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2 * CSA_LINK_PATH_MAX)
    return 0;
  /* The first byte picks the output buffer size: small ones probe the
   * truncation path. */
  size_t cap = size ? (size_t)data[0] + 1 : 1;
  if (size && data[0] == 0xff)
    cap = CSA_LINK_PATH_MAX;
  char *rel = (char *)malloc(size + 1);
  char *norm = (char *)malloc(cap);
  char *again = (char *)malloc(CSA_LINK_PATH_MAX);
  char *a = (char *)malloc(size + 1), *b = (char *)malloc(size + 1);
  if (!rel || !norm || !again || !a || !b)
    abort();
  if (size)
    memcpy(rel, data + 1, size - 1);
  rel[size ? size - 1 : 0] = '\0'; /* stops at the first NUL, like C callers */

  csa_clear_error();
  int st = csa__link_check_relative(rel, norm, cap);
  if (st == CSA_OK) {
    csa__fuzz_assert(strlen(norm) < cap);
    csa__fuzz_check_norm(norm);
    csa__fuzz_assert(csa__link_check_relative(norm, again, CSA_LINK_PATH_MAX) == CSA_OK);
    csa__fuzz_assert(strcmp(again, norm) == 0);
    csa__fuzz_strip(rel, a);
    csa__fuzz_strip(norm, b);
    csa__fuzz_assert(strcmp(a, b) == 0);
  } else {
    csa__fuzz_assert(st == CSA_EPATH);
    csa__fuzz_assert(csa_errmsg()[0] != '\0');
  }
  free(rel);
  free(norm);
  free(again);
  free(a);
  free(b);
  return 0;
}
