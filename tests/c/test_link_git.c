/*
 * test_link_git.c — the info/exclude step on hand-built git layouts (no git
 * binary needed; tests/test_setup_link.py does the real `git pull`):
 * a .git directory, a linked worktree ("gitdir:" file + commondir), a
 * submodule (absolute "gitdir:"), pattern escaping, no duplicate lines, a
 * missing final newline, a held lock, a stale lock, a broken pointer, and
 * no line for a native file.
 */
#include "test_link_util.h" /* first: it sets _GNU_SOURCE */

#include <time.h>

#include "csa_test.h"

static char g_root[PATH_MAX], g_src[PATH_MAX];

static void mkdirs(const char *base, const char *rel) {
  char p[PATH_MAX], cur[PATH_MAX];
  snprintf(p, sizeof p, "%s", rel);
  snprintf(cur, sizeof cur, "%s", base);
  for (char *tok = strtok(p, "/"); tok; tok = strtok(NULL, "/")) {
    size_t n = strlen(cur);
    snprintf(cur + n, sizeof cur - n, "/%s", tok);
    mkdir(cur, 0755);
  }
}

static int link_in(const char *comfy, const char *rel, csa_link_info *info) {
  memset(info, 0x5a, sizeof *info);
  int st = csa_setup_link_ex(g_src, comfy, rel, info);
  if (st != CSA_OK)
    fprintf(stderr, "setup_link(%s, %s): %s\n", comfy, rel, csa_errmsg());
  return st;
}

static void test_plain_repo(csa_link_info *info) {
  char repo[PATH_MAX], comfy[PATH_MAX], exclude[PATH_MAX];
  tl_path(repo, sizeof repo, g_root, "plain");
  mkdirs(g_root, "plain/.git");
  mkdirs(g_root, "plain/ComfyUI/comfy/ldm");
  tl_path(comfy, sizeof comfy, repo, "ComfyUI/comfy");
  tl_path(exclude, sizeof exclude, repo, ".git/info/exclude");

  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED, "result %d", info->result);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_ADDED, "git %d (%s)", info->git_exclude,
            info->git_note);
  CSA_CHECK(strcmp(info->git_path, exclude) == 0, "git_path %s", info->git_path);
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/ComfyUI/comfy/sparse.py") == 1, "exclude:\n%s",
            tl_read(exclude));

  /* Again (link already there): present, not duplicated. */
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_SAME && info->git_exclude == CSA_LINK_GIT_PRESENT,
            "result %d git %d", info->result, info->git_exclude);
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/ComfyUI/comfy/sparse.py") == 1, "duplicated");

  /* An exclude file without a final newline keeps its last line intact. */
  tl_write(exclude, "*.log");
  CSA_CHECK_STATUS(link_in(comfy, "ldm/sparse.py", info), CSA_OK);
  const char *text = tl_read(exclude);
  CSA_CHECK(tl_count_lines(text, "*.log") == 1 &&
                tl_count_lines(text, "/ComfyUI/comfy/ldm/sparse.py") == 1,
            "exclude:\n%s", text);
  /* The link's own line was lost with the rewrite above; SKIP_SAME restores it. */
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_ADDED, "git %d", info->git_exclude);
  /* CRLF lines (edited on Windows) count as present. */
  tl_write(exclude, "/ComfyUI/comfy/sparse.py\r\n");
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_PRESENT, "CRLF: git %d", info->git_exclude);

  /* Glob characters are escaped so the line matches only this name. */
  CSA_CHECK_STATUS(link_in(comfy, "my[x] !#.py", info), CSA_OK);
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/ComfyUI/comfy/my\\[x] !#.py") == 1,
            "escaped line missing:\n%s", tl_read(exclude));

  /* A native file gets no line. */
  char native[PATH_MAX];
  tl_path(native, sizeof native, comfy, "native.py");
  tl_write(native, "N = 1\n");
  CSA_CHECK_STATUS(link_in(comfy, "native.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_SKIP_NATIVE && info->git_exclude == CSA_LINK_GIT_NONE,
            "result %d git %d", info->result, info->git_exclude);
  CSA_CHECK(strstr(tl_read(exclude), "native") == NULL, "native file excluded");

  /* A held lock: the link is still made, the exclude step reports why not,
   * and someone else's lock is left alone. */
  char lock[PATH_MAX];
  tl_path(lock, sizeof lock, repo, ".git/info/exclude.lock");
  tl_write(lock, "");
  CSA_CHECK_STATUS(link_in(comfy, "locked.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED && info->git_exclude == CSA_LINK_GIT_FAILED,
            "result %d git %d", info->result, info->git_exclude);
  CSA_CHECK(strstr(info->git_note, "exclude.lock") != NULL, "note: %s", info->git_note);
  CSA_CHECK(tl_exists(lock), "live lock removed");
  /* A lock left by a crashed process (old mtime) is broken. */
  struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
  CSA_CHECK(utimensat(AT_FDCWD, lock, old, 0) == 0, "utimensat");
  CSA_CHECK_STATUS(link_in(comfy, "locked2.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_ADDED, "stale lock: git %d (%s)",
            info->git_exclude, info->git_note);
  CSA_CHECK(!tl_exists(lock), "stale lock left");
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/ComfyUI/comfy/locked2.py") == 1, "exclude:\n%s",
            tl_read(exclude));
  CSA_CHECK(tl_count(comfy, ".csa-tmp") == 0, "temporary names left");
}

static void test_worktree(csa_link_info *info) {
  /* main.git is the common dir; wt/.git -> main.git/worktrees/wt, whose
   * commondir says "../..".  git reads info/exclude from the common dir. */
  char wt[PATH_MAX], comfy[PATH_MAX], p[PATH_MAX], exclude[PATH_MAX];
  mkdirs(g_root, "worktree/main.git/worktrees/wt");
  mkdirs(g_root, "worktree/wt/comfy");
  tl_path(wt, sizeof wt, g_root, "worktree/wt");
  tl_path(p, sizeof p, wt, ".git");
  tl_write(p, "gitdir: ../main.git/worktrees/wt\n");
  tl_path(p, sizeof p, g_root, "worktree/main.git/worktrees/wt/commondir");
  tl_write(p, "../..\n");
  tl_path(comfy, sizeof comfy, wt, "comfy");
  tl_path(exclude, sizeof exclude, g_root, "worktree/main.git/info/exclude");
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_ADDED, "git %d (%s)", info->git_exclude,
            info->git_note);
  CSA_CHECK(strcmp(info->git_path, exclude) == 0, "git_path %s, want %s", info->git_path,
            exclude);
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/comfy/sparse.py") == 1, "exclude:\n%s",
            tl_read(exclude));
}

static void test_submodule(csa_link_info *info) {
  /* super/.git/modules/ComfyUI is the git dir; super/ComfyUI/.git names it
   * by absolute path.  The line is relative to the submodule's work tree. */
  char sub[PATH_MAX], comfy[PATH_MAX], p[PATH_MAX], gitdir[PATH_MAX], exclude[PATH_MAX];
  mkdirs(g_root, "super/.git/modules/ComfyUI");
  mkdirs(g_root, "super/ComfyUI/comfy");
  tl_path(sub, sizeof sub, g_root, "super/ComfyUI");
  tl_path(gitdir, sizeof gitdir, g_root, "super/.git/modules/ComfyUI");
  tl_path(p, sizeof p, sub, ".git");
  char text[PATH_MAX + 16];
  snprintf(text, sizeof text, "gitdir: %s\n", gitdir);
  tl_write(p, text);
  tl_path(comfy, sizeof comfy, sub, "comfy");
  tl_path(exclude, sizeof exclude, gitdir, "info/exclude");
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_ADDED && strcmp(info->git_path, exclude) == 0,
            "git %d path %s (%s)", info->git_exclude, info->git_path, info->git_note);
  CSA_CHECK(tl_count_lines(tl_read(exclude), "/comfy/sparse.py") == 1, "exclude:\n%s",
            tl_read(exclude));
  char super_exclude[PATH_MAX];
  tl_path(super_exclude, sizeof super_exclude, g_root, "super/.git/info/exclude");
  CSA_CHECK(!tl_exists(super_exclude), "the superproject's exclude was written");
}

static void test_broken(csa_link_info *info) {
  char comfy[PATH_MAX], p[PATH_MAX];
  mkdirs(g_root, "broken/comfy");
  tl_path(p, sizeof p, g_root, "broken/.git");
  tl_write(p, "gitdir: /nonexistent/modules/x\n");
  tl_path(comfy, sizeof comfy, g_root, "broken/comfy");
  CSA_CHECK_STATUS(link_in(comfy, "sparse.py", info), CSA_OK);
  CSA_CHECK(info->result == CSA_LINK_CREATED && info->git_exclude == CSA_LINK_GIT_FAILED,
            "result %d git %d", info->result, info->git_exclude);
  CSA_CHECK(strstr(info->git_note, "nonexistent") != NULL, "note: %s", info->git_note);
  tl_write(p, "garbage\n");
  CSA_CHECK_STATUS(link_in(comfy, "other.py", info), CSA_OK);
  CSA_CHECK(info->git_exclude == CSA_LINK_GIT_FAILED && strstr(info->git_note, "gitdir") != NULL,
            "git %d note %s", info->git_exclude, info->git_note);
}

int main(void) {
  static csa_link_info info;
  tl_mkdtemp(g_root, sizeof g_root);
  tl_path(g_src, sizeof g_src, g_root, "src.py");
  tl_write(g_src, "X = 1\n");
  test_plain_repo(&info);
  test_worktree(&info);
  test_submodule(&info);
  test_broken(&info);
  tl_rmtree(g_root);
  return csa_test_finish("test_link_git");
}
