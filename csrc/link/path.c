/*
 * path.c — the few string operations on paths setup_link needs (joining,
 * "is this below that", splitting off the last component).  Paths reaching
 * here are canonical (from csa__fs_realpath) or already checked.
 */
#include <string.h>

#include "link_internal.h"

static int csa__is_sep_char(char c) {
#ifdef _WIN32
  return c == '\\' || c == '/';
#else
  return c == '/';
#endif
}

int csa__path_join(char *out, size_t cap, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  /* A root such as "/" or "C:\\" already ends in a separator. */
  int need_sep = lb > 0 && la > 0 && !csa__is_sep_char(a[la - 1]);
  if (la + (size_t)need_sep + lb + 1 > cap)
    return csa__error(CSA_EPATH, "path \"%s\" + \"%s\" is longer than %d bytes", a, b, (int)(cap - 1));
  memmove(out, a, la);
  if (need_sep)
    out[la++] = CSA__SEP;
  memcpy(out + la, b, lb);
  out[la + lb] = '\0';
  return CSA_OK;
}

static int csa__char_eq(char x, char y) {
#ifdef _WIN32
  if (x >= 'A' && x <= 'Z')
    x = (char)(x - 'A' + 'a');
  if (y >= 'A' && y <= 'Z')
    y = (char)(y - 'A' + 'a');
  if (csa__is_sep_char(x) && csa__is_sep_char(y))
    return 1;
#endif
  return x == y;
}

int csa__path_within(const char *root, const char *p) {
  size_t lr = strlen(root);
  while (lr > 1 && csa__is_sep_char(root[lr - 1]))
    lr--; /* "/a/b/" == "/a/b"; but keep "/" itself */
  for (size_t i = 0; i < lr; i++) {
    if (p[i] == '\0' || !csa__char_eq(root[i], p[i]))
      return 0;
  }
  /* "/a/bc" is not below "/a/b": the match must end at a component edge. */
  return p[lr] == '\0' || csa__is_sep_char(p[lr]) || csa__is_sep_char(root[lr - 1]);
}

long csa__path_last_sep(const char *p) {
  long last = -1;
  for (long i = 0; p[i] != '\0'; i++) {
    if (csa__is_sep_char(p[i]))
      last = i;
  }
  return last;
}
