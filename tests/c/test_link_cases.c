/*
 * test_link_cases.c — every row of setup_link's case table on a real
 * directory tree: the result code, what ends up on disk, that refusals touch
 * nothing, and that no temporary name is ever left behind.
 */
#include "test_link_util.h" /* first: it sets _GNU_SOURCE */

#include <time.h>

#include "csa_test.h"

static char g_root[PATH_MAX], g_src[PATH_MAX], g_other[PATH_MAX], g_comfy[PATH_MAX],
    g_target[PATH_MAX], g_outside[PATH_MAX];

static void setup(void) {
  tl_mkdtemp(g_root, sizeof g_root);
  char d[PATH_MAX];
  tl_path(d, sizeof d, g_root, "pkg");
  mkdir(d, 0755);
  tl_path(g_src, sizeof g_src, d, "sparse.py");
  tl_write(g_src, "SOURCE = 1\n");
  tl_path(g_other, sizeof g_other, g_root, "other.py");
  tl_write(g_other, "OTHER = 1\n");
  tl_path(g_comfy, sizeof g_comfy, g_root, "comfy");
  mkdir(g_comfy, 0755);
  tl_path(d, sizeof d, g_comfy, "model_management.py");
  tl_write(d, "# comfy\n");
  tl_path(d, sizeof d, g_comfy, "ldm");
  mkdir(d, 0755);
  tl_path(g_outside, sizeof g_outside, g_root, "outside");
  mkdir(g_outside, 0755);
  tl_path(g_target, sizeof g_target, g_comfy, "sparse.py");
}

static void no_temps(const char *dir, const char *when) {
  CSA_CHECK(tl_count(dir, ".csa-tmp") == 0, "%s: temporary names left in %s", when, dir);
}

static int run(const char *rel, csa_link_info *info) {
  memset(info, 0x5a, sizeof *info); /* poison: every field must be written */
  return csa_setup_link_ex(g_src, g_comfy, rel, info);
}

static void test_absent(csa_link_info *info) {
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(tl_is_link(g_target), "target is not a symlink");
  CSA_CHECK(strcmp(tl_readlink(g_target), g_src) == 0, "link holds %s, want %s",
            tl_readlink(g_target), g_src);
  CSA_CHECK(strcmp(tl_read(g_target), "SOURCE = 1\n") == 0, "link does not reach the source");
  CSA_CHECK(strcmp(info->target, g_target) == 0, "info->target %s", info->target);
  CSA_CHECK(strcmp(info->source, g_src) == 0, "info->source %s", info->source);
  CSA_CHECK(info->previous[0] == '\0', "previous %s", info->previous);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_NONE, "git %d outside a repo", info->git_exclude);
  no_temps(g_comfy, "absent");

  /* The plain entry point agrees: now the link is there. */
  int result = -1;
  CSA_CHECK_STATUS(csa_setup_link(g_src, g_comfy, "sparse.py", &result), CSA_OK);
  CSA_CHECK(result == CSA_LINK_SKIP_SAME, "second call result %d", result);
}

static void test_relative_source(csa_link_info *info) {
  /* A relative source is resolved to an absolute link target. */
  unlink(g_target);
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == NULL || chdir(g_root) != 0) {
    CSA_CHECK(0, "chdir failed");
    return;
  }
  memset(info, 0x5a, sizeof *info);
  CSA_CHECK_STATUS(csa_setup_link_ex("pkg/../pkg/sparse.py", "comfy", "sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(strcmp(tl_readlink(g_target), g_src) == 0, "relative source stored as %s",
            tl_readlink(g_target));
  if (chdir(cwd) != 0)
    CSA_CHECK(0, "chdir back failed");
}

static void test_same(csa_link_info *info) {
  /* Same source through another spelling (a relative link) is "same". */
  unlink(g_target);
  CSA_CHECK(symlink("../pkg/sparse.py", g_target) == 0, "symlink");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_SAME, "result %d", info->result);
  CSA_CHECK(strcmp(tl_readlink(g_target), "../pkg/sparse.py") == 0, "link was rewritten");
}

static void test_dangling(csa_link_info *info) {
  unlink(g_target);
  char gone[PATH_MAX];
  tl_path(gone, sizeof gone, g_root, "old-venv/sparse.py");
  CSA_CHECK(symlink(gone, g_target) == 0, "symlink");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_REPLACED, "result %d", info->result);
  CSA_CHECK(strcmp(info->previous, gone) == 0, "previous %s, want %s", info->previous, gone);
  CSA_CHECK(strcmp(tl_readlink(g_target), g_src) == 0, "link holds %s", tl_readlink(g_target));
  no_temps(g_comfy, "dangling");
}

static void test_elsewhere(csa_link_info *info) {
  unlink(g_target);
  CSA_CHECK(symlink(g_other, g_target) == 0, "symlink");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_REPLACED, "result %d", info->result);
  CSA_CHECK(strcmp(info->previous, g_other) == 0, "previous %s", info->previous);
  CSA_CHECK(strcmp(tl_readlink(g_target), g_src) == 0, "link holds %s", tl_readlink(g_target));
  CSA_CHECK(strcmp(tl_read(g_other), "OTHER = 1\n") == 0, "the old link's file was touched");
  no_temps(g_comfy, "elsewhere");

  /* A link to a directory is also "elsewhere". */
  unlink(g_target);
  CSA_CHECK(symlink(g_outside, g_target) == 0, "symlink");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_REPLACED, "dir link: result %d", info->result);
  CSA_CHECK(tl_is_link(g_target) && strcmp(tl_readlink(g_target), g_src) == 0, "dir link kept");
  CSA_CHECK(tl_entries(g_outside) == 0, "wrote into the linked directory");

  /* A link to itself (ELOOP on resolution) is stale too. */
  unlink(g_target);
  CSA_CHECK(symlink("sparse.py", g_target) == 0, "symlink");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_REPLACED, "loop: result %d", info->result);
  CSA_CHECK(strcmp(info->previous, "sparse.py") == 0, "previous %s", info->previous);
}

static void test_native(csa_link_info *info) {
  unlink(g_target);
  tl_write(g_target, "NATIVE = 1\n");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_NATIVE, "result %d", info->result);
  CSA_CHECK(!tl_is_link(g_target) && strcmp(tl_read(g_target), "NATIVE = 1\n") == 0,
            "native file touched");
  /* A hard link to the source is still a real file there: leave it. */
  unlink(g_target);
  CSA_CHECK(link(g_src, g_target) == 0, "link");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_NATIVE, "hard link: result %d", info->result);
  unlink(g_target);
}

static void test_directory(csa_link_info *info) {
  char d[PATH_MAX], inner[PATH_MAX];
  tl_path(d, sizeof d, g_comfy, "sparse");
  mkdir(d, 0755);
  tl_path(inner, sizeof inner, d, "__init__.py");
  tl_write(inner, "PKG = 1\n");
  CSA_CHECK_STATUS(run("sparse", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_DIR, "result %d", info->result);
  CSA_CHECK(strcmp(tl_read(inner), "PKG = 1\n") == 0 && tl_entries(d) == 1, "directory touched");
}

static void test_other_kind(csa_link_info *info) {
  char fifo[PATH_MAX];
  tl_path(fifo, sizeof fifo, g_comfy, "fifo.py");
  CSA_CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
  CSA_CHECK_STATUS(run("fifo.py", info), CSA_EEXIST);
  CSA_CHECK(strstr(csa_errmsg(), fifo) != NULL, "message %s does not name the target",
            csa_errmsg());
  unlink(fifo);
}

static void test_nested(csa_link_info *info) {
  char t[PATH_MAX];
  tl_path(t, sizeof t, g_comfy, "ldm/sparse.py");
  CSA_CHECK_STATUS(run("ldm/sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(strcmp(tl_readlink(t), g_src) == 0, "nested link holds %s", tl_readlink(t));
  CSA_CHECK_STATUS(run("ldm\\sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_SAME, "backslash form: result %d", info->result);
  no_temps(g_comfy, "nested");

  /* A missing parent is an error and is not created. */
  int before = tl_entries(g_comfy);
  CSA_CHECK_STATUS(run("newdir/sparse.py", info), CSA_ENOENT);
  CSA_CHECK(strstr(csa_errmsg(), "newdir") != NULL && strstr(csa_errmsg(), "creates no") != NULL,
            "message: %s", csa_errmsg());
  CSA_CHECK(tl_entries(g_comfy) == before, "something was created");
  /* A parent that is a file. */
  CSA_CHECK_STATUS(run("model_management.py/x.py", info), CSA_ENOENT);
  CSA_CHECK(tl_entries(g_comfy) == before, "something was created");
}

static void test_symlinked_parent(csa_link_info *info) {
  /* comfy/evil -> ../outside: writing comfy/evil/x.py would escape. */
  char evil[PATH_MAX], inside[PATH_MAX], t[PATH_MAX];
  tl_path(evil, sizeof evil, g_comfy, "evil");
  CSA_CHECK(symlink(g_outside, evil) == 0, "symlink");
  CSA_CHECK_STATUS(run("evil/sparse.py", info), CSA_EPATH);
  CSA_CHECK(strstr(csa_errmsg(), "escapes") != NULL && strstr(csa_errmsg(), g_outside) != NULL,
            "message: %s", csa_errmsg());
  CSA_CHECK(tl_entries(g_outside) == 0, "wrote outside comfy");
  /* Relative symlink escaping by "..": same. */
  unlink(evil);
  CSA_CHECK(symlink("..", evil) == 0, "symlink");
  CSA_CHECK_STATUS(run("evil/sparse.py", info), CSA_EPATH);
  char escaped[PATH_MAX];
  tl_path(escaped, sizeof escaped, g_root, "sparse.py");
  CSA_CHECK(!tl_exists(escaped), "wrote %s", escaped);
  unlink(evil);
  /* A symlinked parent that stays inside comfy is fine: the link goes to
   * the resolved place. */
  tl_path(inside, sizeof inside, g_comfy, "ldm_alias");
  CSA_CHECK(symlink("ldm", inside) == 0, "symlink");
  tl_path(t, sizeof t, g_comfy, "ldm/other.py");
  CSA_CHECK_STATUS(run("ldm_alias/other.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(strcmp(info->target, t) == 0, "target %s, want %s", info->target, t);
  CSA_CHECK(tl_is_link(t), "no link at %s", t);
  unlink(t);
  unlink(inside);
  /* comfy_dir itself reached through a symlink is resolved first. */
  char alias[PATH_MAX];
  tl_path(alias, sizeof alias, g_root, "comfy_alias");
  CSA_CHECK(symlink(g_comfy, alias) == 0, "symlink");
  unlink(g_target);
  memset(info, 0, sizeof *info);
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, alias, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED && strcmp(info->target, g_target) == 0,
            "via alias: result %d target %s", info->result, info->target);
  unlink(alias);
}

static void test_errors(csa_link_info *info) {
  int before = tl_entries(g_comfy);
  char missing[PATH_MAX];
  tl_path(missing, sizeof missing, g_root, "nope/sparse.py");
  memset(info, 0x5a, sizeof *info);
  CSA_CHECK_STATUS(csa_setup_link_ex(missing, g_comfy, "new.py", info), CSA_ENOENT);
  CSA_CHECK(strstr(csa_errmsg(), missing) != NULL && strstr(csa_errmsg(), "source") != NULL,
            "message: %s", csa_errmsg());
  CSA_CHECK(info->result == 0, "result %d on failure", info->result);
  char pkg[PATH_MAX];
  tl_path(pkg, sizeof pkg, g_root, "pkg");
  CSA_CHECK_STATUS(csa_setup_link_ex(pkg, g_comfy, "new.py", info), CSA_EISDIR);
  CSA_CHECK(strstr(csa_errmsg(), "directory") != NULL, "message: %s", csa_errmsg());
  CSA_CHECK_STATUS(csa_setup_link_ex("", g_comfy, "new.py", info), CSA_EINVAL);
  CSA_CHECK_STATUS(csa_setup_link_ex(NULL, g_comfy, "new.py", info), CSA_EINVAL);
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, missing, "new.py", info), CSA_ENOENT);
  CSA_CHECK(strstr(csa_errmsg(), "comfy_dir") != NULL, "message: %s", csa_errmsg());
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, g_src, "new.py", info), CSA_EINVAL);
  CSA_CHECK(strstr(csa_errmsg(), "not a directory") != NULL, "message: %s", csa_errmsg());
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, "", "new.py", info), CSA_EINVAL);
  const char *bad[] = {"/abs.py", "../x.py", "a/../../x.py", "", "C:\\x.py", "a//b", "x.py "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CSA_CHECK_STATUS(run(bad[i], info), CSA_EPATH);
    CSA_CHECK_STATUS(csa_setup_link_ex(g_src, NULL, bad[i], info), CSA_EPATH);
  }
  CSA_CHECK_STATUS(run(NULL, info), CSA_EPATH);
  CSA_CHECK(tl_entries(g_comfy) == before, "a refused call created something");
  CSA_CHECK(tl_entries(g_root) == 4, "something created next to comfy (%d entries)",
            tl_entries(g_root));

  /* comfy_dir = NULL: argument check only. */
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, NULL, "x.py", info), CSA_OK);
  CSA_CHECK(info->result == 0 && strcmp(info->source, g_src) == 0, "check-only result %d",
            info->result);
  CSA_CHECK_STATUS(csa_setup_link_ex(missing, NULL, "x.py", info), CSA_ENOENT);
  /* csa_setup_link needs comfy_dir and result. */
  int r;
  CSA_CHECK_STATUS(csa_setup_link(g_src, NULL, "x.py", &r), CSA_EINVAL);
  CSA_CHECK_STATUS(csa_setup_link(g_src, g_comfy, "x.py", NULL), CSA_EINVAL);
  CSA_CHECK(tl_entries(g_comfy) == before, "a refused call created something");
  /* info may be NULL. */
  CSA_CHECK_STATUS(csa_setup_link_ex(g_src, g_comfy, "x.py", NULL), CSA_OK);
  char x[PATH_MAX];
  tl_path(x, sizeof x, g_comfy, "x.py");
  CSA_CHECK(tl_is_link(x), "no link with info == NULL");
  unlink(x);
}

static void test_temp_collision(csa_link_info *info) {
  /* Leftovers of a crashed run with other names do not disturb a new one. */
  char junk[PATH_MAX];
  tl_path(junk, sizeof junk, g_comfy, ".sparse.py.csa-tmp.1.2.3.4");
  CSA_CHECK(symlink("/nonexistent", junk) == 0, "symlink");
  unlink(g_target);
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(tl_count(g_comfy, ".csa-tmp") == 1, "our temp left or fresh junk removed");
  /* Once older than a minute it is a crashed run's leftover: swept.  Other
   * names (another base, a real file with the pattern) are never touched. */
  char other_base[PATH_MAX], real_file[PATH_MAX];
  tl_path(other_base, sizeof other_base, g_comfy, ".other.py.csa-tmp.1.2.3.4");
  CSA_CHECK(symlink("/nonexistent", other_base) == 0, "symlink");
  tl_path(real_file, sizeof real_file, g_comfy, ".sparse.py.csa-tmp.real");
  tl_write(real_file, "not ours");
  struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
  const char *aged[] = {junk, other_base, real_file};
  for (int i = 0; i < 3; i++)
    CSA_CHECK(utimensat(AT_FDCWD, aged[i], old, AT_SYMLINK_NOFOLLOW) == 0, "utimensat");
  CSA_CHECK_STATUS(run("sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_SAME, "result %d", info->result);
  CSA_CHECK(!tl_exists(junk), "stale temp of ours not swept");
  CSA_CHECK(tl_exists(other_base) && tl_exists(real_file), "swept what is not ours");
  unlink(other_base);
  unlink(real_file);
}

int main(void) {
  static csa_link_info info;
  setup();
  test_absent(&info);
  test_relative_source(&info);
  test_same(&info);
  test_dangling(&info);
  test_elsewhere(&info);
  test_native(&info);
  test_directory(&info);
  test_other_kind(&info);
  test_nested(&info);
  test_symlinked_parent(&info);
  test_errors(&info);
  test_temp_collision(&info);
  no_temps(g_comfy, "end");
  tl_rmtree(g_root);
  return csa_test_finish("test_link_cases");
}
