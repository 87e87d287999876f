/*
 * test_link_relpath.c — the comfy_relative checker and the path helpers of
 * setup_link: every rule accepts what it should and refuses what it should,
 * with the normalised form and the message checked, plus buffer edges.
 */
#include <string.h>

#include "csa_test.h"
#include "link/link_internal.h"

static void expect_ok(const char *rel, const char *want_posix) {
  char norm[CSA_LINK_PATH_MAX];
  memset(norm, 'X', sizeof norm);
  int st = csa__link_check_relative(rel, norm, sizeof norm);
  CSA_CHECK(st == CSA_OK, "\"%s\" refused: %s", rel, csa_errmsg());
  if (st != CSA_OK)
    return;
  char want[CSA_LINK_PATH_MAX];
  snprintf(want, sizeof want, "%s", want_posix);
  for (char *p = want; *p; p++)
    if (*p == '/')
      *p = CSA__SEP;
  CSA_CHECK(strcmp(norm, want) == 0, "\"%s\" normalised to \"%s\", want \"%s\"", rel, norm, want);
  /* Idempotent: the normalised form is accepted and maps to itself. */
  char again[CSA_LINK_PATH_MAX];
  CSA_CHECK(csa__link_check_relative(norm, again, sizeof again) == CSA_OK &&
                strcmp(again, norm) == 0,
            "normalised \"%s\" is not a fixed point", norm);
}

static void expect_bad(const char *rel, const char *msg_part) {
  char norm[64];
  csa_clear_error();
  int st = csa__link_check_relative(rel, norm, sizeof norm);
  CSA_CHECK(st == CSA_EPATH, "\"%s\" gave %s, want CSA_EPATH", rel ? rel : "(null)",
            csa_status_name(st));
  CSA_CHECK(strstr(csa_errmsg(), msg_part) != NULL, "\"%s\": message \"%s\" lacks \"%s\"",
            rel ? rel : "(null)", csa_errmsg(), msg_part);
  CSA_CHECK(strstr(csa_errmsg(), "comfy_relative") != NULL,
            "message \"%s\" does not name comfy_relative", csa_errmsg());
}

static void test_accepts(void) {
  expect_ok("sparse.py", "sparse.py");
  expect_ok("ldm/sparse.py", "ldm/sparse.py");
  expect_ok("ldm\\sparse.py", "ldm/sparse.py");
  expect_ok("a/b\\c/d.py", "a/b/c/d.py");
  expect_ok(".hidden.py", ".hidden.py");     /* leading dot is a normal name */
  expect_ok("..x", "..x");                   /* starts with dots, is not ".." */
  expect_ok("x..y", "x..y");
  expect_ok("a b.py", "a b.py");              /* inner space */
  expect_ok("con_nection.py", "con_nection.py");
  expect_ok("CONSOLE.py", "CONSOLE.py");      /* not a device: stem is 7 chars */
  expect_ok("COM0.py", "COM0.py");            /* COM0 is not a device */
  expect_ok("LPT10.py", "LPT10.py");
  expect_ok("\xc3\xa9t\xc3\xa9.py", "\xc3\xa9t\xc3\xa9.py"); /* UTF-8 */
  expect_ok("my[x]!#.py", "my[x]!#.py");     /* git's pattern chars are legal names */
}

static void test_refuses(void) {
  expect_bad(NULL, "missing");
  expect_bad("", "empty");
  expect_bad("/etc/passwd", "absolute");
  expect_bad("\\Windows\\x.py", "absolute");
  expect_bad("\\\\server\\share\\x.py", "absolute");
  expect_bad("//server/share", "absolute");
  expect_bad("C:\\x.py", "':'");
  expect_bad("C:x.py", "':'");
  expect_bad("c:/x.py", "':'");
  expect_bad("sparse.py:stream", "':'");
  expect_bad("..", "\"..\"");
  expect_bad("../sparse.py", "\"..\"");
  expect_bad("ldm/../../x.py", "\"..\"");
  expect_bad("ldm/..", "\"..\"");
  expect_bad("..\\x.py", "\"..\"");
  expect_bad(".", "\".\"");
  expect_bad("./sparse.py", "\".\"");
  expect_bad("ldm/./x.py", "\".\"");
  expect_bad("ldm//x.py", "empty component");
  expect_bad("ldm/", "empty component");
  expect_bad("ldm\\", "empty component");
  expect_bad("... ", "ends in");
  expect_bad(".. ", "ends in");
  expect_bad("...", "ends in");
  expect_bad("ldm./x.py", "ends in");
  expect_bad("x.py ", "ends in");
  expect_bad("x.py.", "ends in");
  expect_bad("NUL", "device");
  expect_bad("nul.py", "device");
  expect_bad("ldm/con.txt", "device");
  expect_bad("Aux", "device");
  expect_bad("prn.py", "device");
  expect_bad("COM1.py", "device");
  expect_bad("lpt9", "device");
  expect_bad("NUL .py", "device");
  expect_bad("a\nb.py", "control");
  expect_bad("a\tb.py", "control");
  expect_bad("a\x7f.py", "control");
  expect_bad("a*.py", "'*'");
  expect_bad("a?.py", "'?'");
  expect_bad("ldm/a<b.py", "'<'");
  expect_bad("a>b", "'>'");
  expect_bad("a|b", "'|'");
  expect_bad("\"a\".py", "'\"'");
}

static void test_lengths(void) {
  /* Longest accepted: CSA_LINK_PATH_MAX - 1 bytes, in a buffer that fits. */
  static char big[CSA_LINK_PATH_MAX + 8], norm[CSA_LINK_PATH_MAX];
  memset(big, 'a', CSA_LINK_PATH_MAX - 1);
  big[CSA_LINK_PATH_MAX - 1] = '\0';
  CSA_CHECK_STATUS(csa__link_check_relative(big, norm, sizeof norm), CSA_OK);
  big[CSA_LINK_PATH_MAX - 1] = 'a';
  big[CSA_LINK_PATH_MAX] = '\0';
  CSA_CHECK_STATUS(csa__link_check_relative(big, norm, sizeof norm), CSA_EPATH);

  /* Output buffer edges: "ab/cd" needs 6 bytes. */
  char small[6];
  CSA_CHECK_STATUS(csa__link_check_relative("ab/cd", small, 6), CSA_OK);
  CSA_CHECK(strlen(small) == 5, "got \"%s\"", small);
  CSA_CHECK_STATUS(csa__link_check_relative("ab/cd", small, 5), CSA_EPATH);
  CSA_CHECK_STATUS(csa__link_check_relative("ab", small, 3), CSA_OK);
  CSA_CHECK_STATUS(csa__link_check_relative("ab", small, 2), CSA_EPATH);
  CSA_CHECK_STATUS(csa__link_check_relative("ab", NULL, 0), CSA_EINTERNAL);
}

static void test_helpers(void) {
  char s = CSA__SEP;
  char root[64], p[64], out[16];
  snprintf(root, sizeof root, "%cr%ca", s, s);
  snprintf(p, sizeof p, "%cr%ca%cb", s, s, s);
  CSA_CHECK(csa__path_within(root, p), "%s within %s", p, root);
  CSA_CHECK(csa__path_within(root, root), "root within itself");
  snprintf(p, sizeof p, "%cr%cab", s, s);
  CSA_CHECK(!csa__path_within(root, p), "%s is not within %s (component edge)", p, root);
  snprintf(p, sizeof p, "%cr", s);
  CSA_CHECK(!csa__path_within(root, p), "parent %s is not within %s", p, root);
  snprintf(p, sizeof p, "%cr%ca%c", s, s, s);
  CSA_CHECK(csa__path_within(p, root), "trailing separator on root ignored");
  snprintf(root, sizeof root, "%c", s);
  snprintf(p, sizeof p, "%cx", s);
  CSA_CHECK(csa__path_within(root, p), "everything is within the root directory");

  CSA_CHECK_STATUS(csa__path_join(out, sizeof out, "abc", "de"), CSA_OK);
  char want[16];
  snprintf(want, sizeof want, "abc%cde", s);
  CSA_CHECK(strcmp(out, want) == 0, "join gave %s", out);
  CSA_CHECK_STATUS(csa__path_join(out, sizeof out, "abc", ""), CSA_OK);
  CSA_CHECK(strcmp(out, "abc") == 0, "join with empty gave %s", out);
  snprintf(root, sizeof root, "%c", s);
  CSA_CHECK_STATUS(csa__path_join(out, sizeof out, root, "x"), CSA_OK);
  snprintf(want, sizeof want, "%cx", s);
  CSA_CHECK(strcmp(out, want) == 0, "join on root gave %s", out);
  /* 8 + 1 + 6 + NUL = 16 fits exactly; one more byte does not. */
  CSA_CHECK_STATUS(csa__path_join(out, sizeof out, "12345678", "123456"), CSA_OK);
  CSA_CHECK_STATUS(csa__path_join(out, sizeof out, "12345678", "1234567"), CSA_EPATH);

  CSA_CHECK(csa__path_last_sep("abc") == -1, "no separator");
  snprintf(p, sizeof p, "a%cb%cc", s, s);
  CSA_CHECK(csa__path_last_sep(p) == 3, "last separator at 3");
}

int main(void) {
  test_accepts();
  test_refuses();
  test_lengths();
  test_helpers();
  return csa_test_finish("test_link_relpath");
}
