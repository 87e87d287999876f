/*
 * test_link_portable.c — the parts of setup_link that need no symlink,
 * written against the platform layer only, so the same test runs natively
 * (under ASan/UBSan) and as a Windows executable (cross-compiled by
 * tests/c/cross_windows.sh and run under Wine when it is installed; Wine
 * cannot create symlinks, so the link cases live in test_link_cases.c).
 *
 * Covers: realpath / kind / read / write / exclusive create / rename with and
 * without replace / listing / file age / unique names of the platform layer;
 * the cases of csa_setup_link_ex that touch no link (real file, directory,
 * missing or directory source, bad comfy_dir, missing parent, check-only);
 * and the git exclude step called directly (".git" directory and "gitdir:"
 * file, no duplicates, forward slashes in the line on every platform, a held
 * lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <unistd.h>
#endif

#include "csa_test.h"
#include "link/link_internal.h"

#define PMAX CSA_LINK_PATH_MAX

static char g_root[PMAX];

static void join(char *out, const char *a, const char *b) {
  if (csa__path_join(out, PMAX, a, b) != CSA_OK) {
    fprintf(stderr, "path too long\n");
    exit(2);
  }
}

static void put(const char *path, const char *text) {
  int st = csa__fs_create_excl(path);
  if (st == CSA_OK || st == CSA_EEXIST)
    st = csa__fs_write_file(path, text, strlen(text));
  if (st != CSA_OK) {
    fprintf(stderr, "cannot write %s: %s\n", path, csa_errmsg());
    exit(2);
  }
}

/* Content of path, "" if missing; caller frees. */
static char *get(const char *path) {
  char *data = NULL;
  size_t len = 0;
  if (csa__fs_read_file(path, &data, &len) != CSA_OK) {
    data = (char *)malloc(1);
    data[0] = '\0';
  }
  return data;
}

static void make_root(void) {
  const char *base = getenv("TMPDIR");
#ifdef _WIN32
  if (base == NULL || !*base)
    base = getenv("TEMP");
#endif
  if (base == NULL || !*base)
    base = "/tmp";
  char uniq[96], name[128], path[PMAX];
  csa__fs_unique(uniq, sizeof uniq);
  snprintf(name, sizeof name, "csa_portable_%s", uniq);
  join(path, base, name);
  if (csa__fs_mkdir(path) != CSA_OK || csa__fs_realpath(path, g_root, sizeof g_root) != CSA_OK) {
    fprintf(stderr, "cannot make %s: %s\n", path, csa_errmsg());
    exit(2);
  }
}

static void rm_entry(const char *name, void *ctx);

static void rmtree(const char *dir) {
  csa__fs_list(dir, rm_entry, (void *)dir);
#ifdef _WIN32
  RemoveDirectoryA(dir);
#else
  rmdir(dir);
#endif
}

static void rm_entry(const char *name, void *ctx) {
  char p[PMAX];
  int kind = CSA__FS_ABSENT;
  join(p, (const char *)ctx, name);
  csa__fs_kind(p, &kind);
  if (kind == CSA__FS_DIR)
    rmtree(p);
  else
    csa__fs_unlink(p);
}

static void count_entry(const char *name, void *ctx) {
  if (strcmp(name, "a.txt") == 0 || strcmp(name, "sub") == 0)
    (*(int *)ctx)++;
  else
    (*(int *)ctx) += 100;
}

static void test_platform_layer(void) {
  char dir[PMAX], a[PMAX], b[PMAX], dotted[PMAX], out[PMAX];
  join(dir, g_root, "layer");
  CSA_CHECK_STATUS(csa__fs_mkdir(dir), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_mkdir(dir), CSA_OK); /* already there: fine */
  join(a, dir, "a.txt");
  join(b, dir, "b.txt");
  int kind = -1;
  CSA_CHECK_STATUS(csa__fs_kind(a, &kind), CSA_OK);
  CSA_CHECK(kind == CSA__FS_ABSENT, "kind %d", kind);
  CSA_CHECK_STATUS(csa__fs_create_excl(a), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_create_excl(a), CSA_EEXIST);
  CSA_CHECK_STATUS(csa__fs_kind(a, &kind), CSA_OK);
  CSA_CHECK(kind == CSA__FS_FILE, "kind %d", kind);
  CSA_CHECK_STATUS(csa__fs_kind(dir, &kind), CSA_OK);
  CSA_CHECK(kind == CSA__FS_DIR, "kind %d", kind);
  CSA_CHECK_STATUS(csa__fs_write_file(a, "alpha\n", 6), CSA_OK);
  char *t = get(a);
  CSA_CHECK(strcmp(t, "alpha\n") == 0, "read back \"%s\"", t);
  free(t);
  CSA_CHECK_STATUS(csa__fs_write_file(a, "x", 1), CSA_OK); /* truncates */
  t = get(a);
  CSA_CHECK(strcmp(t, "x") == 0, "truncate: \"%s\"", t);
  free(t);
  char *none = NULL;
  size_t nlen = 7;
  CSA_CHECK_STATUS(csa__fs_read_file(b, &none, &nlen), CSA_ENOENT);
  CSA_CHECK(none == NULL && nlen == 0, "outputs not reset");
  CSA_CHECK(strstr(csa_errmsg(), "b.txt") != NULL, "message: %s", csa_errmsg());

  /* Rename: without replace refuses an existing name; with replace swaps. */
  put(b, "bravo");
  CSA_CHECK_STATUS(csa__fs_rename(a, b, 0), CSA_EEXIST);
  t = get(b);
  CSA_CHECK(strcmp(t, "bravo") == 0, "no-replace rename clobbered: \"%s\"", t);
  free(t);
  CSA_CHECK_STATUS(csa__fs_rename(a, b, 1), CSA_OK);
  t = get(b);
  CSA_CHECK(strcmp(t, "x") == 0, "replace rename: \"%s\"", t);
  free(t);
  CSA_CHECK_STATUS(csa__fs_kind(a, &kind), CSA_OK);
  CSA_CHECK(kind == CSA__FS_ABSENT, "source of rename still there");
  CSA_CHECK_STATUS(csa__fs_rename(b, a, 0), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_unlink(b), CSA_ENOENT);

  /* realpath undoes "sub/.." and fails cleanly on a missing path. */
  char sub[PMAX];
  join(sub, dir, "sub");
  CSA_CHECK_STATUS(csa__fs_mkdir(sub), CSA_OK);
  join(dotted, sub, "..");
  CSA_CHECK_STATUS(csa__fs_realpath(dotted, out, sizeof out), CSA_OK);
  CSA_CHECK(strcmp(out, dir) == 0, "realpath %s, want %s", out, dir);
  CSA_CHECK_STATUS(csa__fs_realpath(b, out, sizeof out), CSA_ENOENT);
  CSA_CHECK_STATUS(csa__fs_realpath(dir, out, 4), CSA_EPATH);

  int n = 0;
  CSA_CHECK_STATUS(csa__fs_list(dir, count_entry, &n), CSA_OK);
  CSA_CHECK(n == 2, "listing gave %d (want a.txt and sub only)", n);
  double age = -1;
  CSA_CHECK_STATUS(csa__fs_age_seconds(a, &age), CSA_OK);
  CSA_CHECK(age > -5 && age < 60, "fresh file is %g s old", age);

  char u1[96], u2[96];
  csa__fs_unique(u1, sizeof u1);
  csa__fs_unique(u2, sizeof u2);
  CSA_CHECK(strcmp(u1, u2) != 0 && strlen(u1) > 4, "unique names %s %s", u1, u2);
}

static void test_cases_without_links(void) {
  static csa_link_info info;
  char comfy[PMAX], src[PMAX], p[PMAX], q[PMAX];
  join(comfy, g_root, "comfy");
  CSA_CHECK_STATUS(csa__fs_mkdir(comfy), CSA_OK);
  join(p, comfy, "ldm");
  CSA_CHECK_STATUS(csa__fs_mkdir(p), CSA_OK);
  join(src, g_root, "src.py");
  put(src, "X = 1\n");

  join(p, comfy, "native.py");
  put(p, "N = 1\n");
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "native.py", &info), CSA_OK);
  CSA_CHECK(info.result == CSA_LINK_SKIP_NATIVE && strcmp(info.target, p) == 0,
            "result %d target %s", info.result, info.target);
  CSA_CHECK(strcmp(info.source, src) == 0, "source %s", info.source);
  char *t = get(p);
  CSA_CHECK(strcmp(t, "N = 1\n") == 0, "native touched");
  free(t);
  /* The same through '/' and '\\' separators. */
  join(q, comfy, "ldm");
  join(p, q, "native.py");
  put(p, "N = 2\n");
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "ldm/native.py", &info), CSA_OK);
  CSA_CHECK(info.result == CSA_LINK_SKIP_NATIVE && strcmp(info.target, p) == 0,
            "result %d target %s", info.result, info.target);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "ldm\\native.py", &info), CSA_OK);
  CSA_CHECK(info.result == CSA_LINK_SKIP_NATIVE, "backslash: result %d", info.result);

  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "ldm", &info), CSA_OK);
  CSA_CHECK(info.result == CSA_LINK_SKIP_DIR, "result %d", info.result);

  join(p, g_root, "missing.py");
  CSA_CHECK_STATUS(csa_setup_link_ex(p, comfy, "x.py", &info), CSA_ENOENT);
  CSA_CHECK(strstr(csa_errmsg(), "missing.py") != NULL, "message %s", csa_errmsg());
  CSA_CHECK_STATUS(csa_setup_link_ex(comfy, comfy, "x.py", &info), CSA_EISDIR);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, p, "x.py", &info), CSA_ENOENT);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, src, "x.py", &info), CSA_EINVAL);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "nodir/x.py", &info), CSA_ENOENT);
  CSA_CHECK(strstr(csa_errmsg(), "creates no") != NULL, "message %s", csa_errmsg());
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "..\\x.py", &info), CSA_EPATH);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, comfy, "C:\\x.py", &info), CSA_EPATH);
  CSA_CHECK_STATUS(csa_setup_link_ex(src, NULL, "x.py", &info), CSA_OK);
  CSA_CHECK(info.result == 0 && strcmp(info.source, src) == 0, "check-only %d", info.result);
  join(p, comfy, "x.py");
  int kind = -1;
  csa__fs_kind(p, &kind);
  CSA_CHECK(kind == CSA__FS_ABSENT, "a refused call created x.py");
}

static void test_git_exclude_direct(void) {
  static csa_link_info info;
  char repo[PMAX], git[PMAX], comfy[PMAX], target[PMAX], exclude[PMAX], p[PMAX];
  join(repo, g_root, "repo");
  join(git, repo, ".git");
  join(comfy, repo, "comfy");
  CSA_CHECK_STATUS(csa__fs_mkdir(repo), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_mkdir(git), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_mkdir(comfy), CSA_OK);
  join(target, comfy, "sparse.py");
  join(p, git, "info");
  join(exclude, p, "exclude");

  memset(&info, 0, sizeof info);
  csa__link_git_exclude(target, &info);
  CSA_CHECK(info.git_exclude == CSA_LINK_GIT_ADDED && strcmp(info.git_path, exclude) == 0,
            "git %d path %s note %s", info.git_exclude, info.git_path, info.git_note);
  char *t = get(exclude);
  /* Forward slashes whatever the platform: git's pattern syntax. */
  CSA_CHECK(strstr(t, "\n/comfy/sparse.py\n") != NULL, "exclude:\n%s", t);
  free(t);
  memset(&info, 0, sizeof info);
  csa__link_git_exclude(target, &info);
  CSA_CHECK(info.git_exclude == CSA_LINK_GIT_PRESENT, "git %d", info.git_exclude);

  /* Held lock: reported, left alone. */
  char lock[PMAX];
  if (snprintf(lock, sizeof lock, "%s.lock", exclude) >= (int)sizeof lock)
    return;
  put(lock, "");
  join(p, comfy, "other.py");
  memset(&info, 0, sizeof info);
  csa__link_git_exclude(p, &info);
  CSA_CHECK(info.git_exclude == CSA_LINK_GIT_FAILED && strstr(info.git_note, "lock") != NULL,
            "git %d note %s", info.git_exclude, info.git_note);
  int kind = -1;
  csa__fs_kind(lock, &kind);
  CSA_CHECK(kind == CSA__FS_FILE, "live lock removed");
  csa__fs_unlink(lock);

  /* A "gitdir:" file with a relative path (a submodule's layout). */
  char wt[PMAX], mod[PMAX], wcomfy[PMAX];
  join(wt, g_root, "wt");
  join(p, git, "modules");
  CSA_CHECK_STATUS(csa__fs_mkdir(p), CSA_OK);
  join(mod, p, "wt");
  CSA_CHECK_STATUS(csa__fs_mkdir(mod), CSA_OK);
  CSA_CHECK_STATUS(csa__fs_mkdir(wt), CSA_OK);
  join(wcomfy, wt, "comfy");
  CSA_CHECK_STATUS(csa__fs_mkdir(wcomfy), CSA_OK);
  join(p, wt, ".git");
  put(p, "gitdir: ../repo/.git/modules/wt\r\n"); /* relative to wt; CRLF line end */
  join(target, wcomfy, "sparse.py");
  memset(&info, 0, sizeof info);
  csa__link_git_exclude(target, &info);
  char want[PMAX];
  join(p, mod, "info");
  join(want, p, "exclude");
  CSA_CHECK(info.git_exclude == CSA_LINK_GIT_ADDED && strcmp(info.git_path, want) == 0,
            "git %d path %s (want %s) note %s", info.git_exclude, info.git_path, want,
            info.git_note);
  t = get(want);
  CSA_CHECK(strstr(t, "\n/comfy/sparse.py\n") != NULL, "submodule exclude:\n%s", t);
  free(t);
}

int main(void) {
  make_root();
  test_platform_layer();
  test_cases_without_links();
  test_git_exclude_direct();
  rmtree(g_root);
  return csa_test_finish("test_link_portable");
}
