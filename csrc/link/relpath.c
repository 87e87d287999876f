/*
 * relpath.c — is comfy_relative a path that names something *inside* the
 * comfy package, on every platform we run on?
 *
 * The rule is a whitelist of form, not a resolution: we never ask the file
 * system here, so the answer is the same on Linux, macOS and Windows and the
 * checker can be fuzzed as a pure function.  Both '/' and '\\' separate
 * components (a Windows user writes "ldm\\sparse.py"; on POSIX a backslash in
 * a module file name is never intended), and everything Windows would
 * silently reinterpret is refused rather than normalised:
 *   - "C:x", "C:\\x", "\\\\server\\share", "\\\\?\\..." are rooted or
 *     drive-relative; ':' anywhere also opens NTFS alternate data streams;
 *   - Win32 strips trailing dots and spaces from a component, so ".. " and
 *     "..." could become ".." after our check: a component may not end in
 *     '.' or ' ' at all (which also covers "." and "..");
 *   - CON, PRN, AUX, NUL, COM1-9, LPT1-9 (with any extension) name devices;
 *   - < > " | ? * are not allowed in Windows file names at all.
 * Escapes through symlinked parent directories are a property of the file
 * system, checked separately by setup_link.c after resolving the parent.
 */
#include <string.h>

#include "link_internal.h"

static int csa__is_sep(char c) { return c == '/' || c == '\\'; }

static char csa__upper(char c) { return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c; }

/* Device names Win32 resolves in every directory, with or without an
 * extension ("nul.py" is the NUL device too). */
static int csa__is_device_name(const char *c, size_t n) {
  static const char *const plain[] = {"CON", "PRN", "AUX", "NUL"};
  size_t stem = 0;
  while (stem < n && c[stem] != '.')
    stem++;
  /* Trailing spaces before the dot are ignored by Win32 too ("NUL .py"). */
  while (stem > 0 && c[stem - 1] == ' ')
    stem--;
  if (stem == 3) {
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
      if (csa__upper(c[0]) == plain[i][0] && csa__upper(c[1]) == plain[i][1] &&
          csa__upper(c[2]) == plain[i][2])
        return 1;
    }
  }
  if (stem == 4 && c[3] >= '1' && c[3] <= '9') {
    char a = csa__upper(c[0]), b = csa__upper(c[1]), d = csa__upper(c[2]);
    if ((a == 'C' && b == 'O' && d == 'M') || (a == 'L' && b == 'P' && d == 'T'))
      return 1;
  }
  return 0;
}

/* Checks on the whole string, before it is split into components. */
static int csa__check_whole(const char *rel, size_t len, const char *norm, size_t cap) {
  if (len == 0)
    return csa__error(CSA_EPATH, "comfy_relative is empty; expected a relative path such as "
                                 "\"sparse.py\"");
  if (len >= CSA_LINK_PATH_MAX)
    return csa__error(CSA_EPATH, "comfy_relative is %d bytes long; at most %d are accepted",
                      (int)CSA_MIN(len, 0x7fffffff), CSA_LINK_PATH_MAX - 1);
  if (csa__is_sep(rel[0]))
    return csa__error(CSA_EPATH,
                      "comfy_relative \"%s\" is absolute; expected a path relative to the "
                      "comfy package directory, such as \"sparse.py\"",
                      rel);
  if (norm == NULL || cap == 0)
    return csa__error(CSA_EINTERNAL, "csa__link_check_relative: no output buffer");
  return CSA_OK;
}

/* Byte-level checks on component c (n bytes) of rel: no control
 * characters, no ':' and none of the characters Windows forbids. */
static int csa__check_component_bytes(const char *rel, const char *c, size_t n) {
  for (size_t k = 0; k < n; k++) {
    unsigned char ch = (unsigned char)c[k];
    if (ch < 0x20 || ch == 0x7f)
      return csa__error(CSA_EPATH, "comfy_relative contains a control character (byte 0x%02x)",
                        ch);
    if (ch == ':')
      return csa__error(CSA_EPATH,
                        "comfy_relative \"%s\" contains ':' (a drive letter or an NTFS "
                        "stream); expected a plain relative path",
                        rel);
    if (ch == '<' || ch == '>' || ch == '"' || ch == '|' || ch == '?' || ch == '*')
      return csa__error(CSA_EPATH,
                        "comfy_relative \"%s\" contains '%c', which Windows does not allow "
                        "in file names",
                        rel, ch);
  }
  return CSA_OK;
}

/* All checks on component c (n bytes) of rel, in the order callers see
 * them: empty, bytes, "."/"..", trailing '.'/' ', device name. */
static int csa__check_component(const char *rel, const char *c, size_t n) {
  if (n == 0)
    return csa__error(CSA_EPATH,
                      "comfy_relative \"%s\" has an empty component (doubled or trailing "
                      "separator); expected a path such as \"ldm/sparse.py\"",
                      rel);
  int st = csa__check_component_bytes(rel, c, n);
  if (st != CSA_OK)
    return st;
  if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
    return csa__error(CSA_EPATH,
                      "comfy_relative \"%s\" contains a \"%.*s\" component; expected a path "
                      "that stays inside the comfy package, without \".\" or \"..\"",
                      rel, (int)n, c);
  if (c[n - 1] == '.' || c[n - 1] == ' ')
    return csa__error(CSA_EPATH,
                      "comfy_relative \"%s\": component \"%.*s\" ends in '%c', which Windows "
                      "strips (it could turn into \"..\"); expected a plain file or "
                      "directory name",
                      rel, (int)n, c, c[n - 1]);
  if (csa__is_device_name(c, n))
    return csa__error(CSA_EPATH,
                      "comfy_relative \"%s\": component \"%.*s\" is a Windows device name; "
                      "choose another name",
                      rel, (int)n, c);
  return CSA_OK;
}

int csa__link_check_relative(const char *rel, char *norm, size_t cap) {
  if (rel == NULL)
    return csa__error(CSA_EPATH, "comfy_relative is missing; expected a relative path such "
                                 "as \"sparse.py\"");
  size_t len = strlen(rel);
  int st = csa__check_whole(rel, len, norm, cap);
  if (st != CSA_OK)
    return st;

  size_t out = 0;
  size_t i = 0;
  while (i <= len) {
    size_t start = i;
    while (i < len && !csa__is_sep(rel[i]))
      i++;
    size_t n = i - start;
    const char *c = rel + start;
    st = csa__check_component(rel, c, n);
    if (st != CSA_OK)
      return st;
    /* One separator plus the component plus the final NUL must fit. */
    if (out + (out ? 1 : 0) + n + 1 > cap)
      return csa__error(CSA_EPATH, "comfy_relative \"%s\" is too long", rel);
    if (out)
      norm[out++] = CSA__SEP;
    memcpy(norm + out, c, n);
    out += n;
    i++; /* past the separator (or the terminating NUL: ends the loop) */
  }
  norm[out] = '\0';
  return CSA_OK;
}
