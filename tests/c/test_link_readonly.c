/*
 * test_link_readonly.c — links that cannot be made: a read-only install
 * gives CSA_LINK_NOT_PERMITTED (the caller falls back in-process) and leaves
 * everything as it was.
 *
 * We run as root in CI, and chmod does not stop root, so the comfy directory
 * is made read-only with a read-only bind mount inside a private mount
 * namespace of a forked child (Linux; skipped with a reason elsewhere or
 * where unshare(CLONE_NEWNS) is not permitted).  The plain EACCES path (a
 * normal user and a root-owned install) is checked with chmod 0555, as uid
 * 65534 when we are root.
 */
#include "test_link_util.h" /* first: it sets _GNU_SOURCE */

#include <sys/wait.h>

#include "csa_test.h"

#if defined(__linux__)
#include <sched.h>
#include <sys/mount.h>
#endif

static char g_root[PATH_MAX], g_src[PATH_MAX], g_comfy[PATH_MAX], g_target[PATH_MAX];

/* The cases, run where comfy/ is not writable.  Returns failures. */
static int readonly_cases(void) {
  int fails = 0;
  int r = -1;
  /* Absent target. */
  int st = csa_setup_link(g_src, g_comfy, "sparse.py", &r);
  if (st != CSA_OK || r != CSA_LINK_NOT_PERMITTED) {
    fprintf(stderr, "absent: status %s result %d (%s)\n", csa_status_name(st), r, csa_errmsg());
    fails++;
  }
  /* Stale link present (made before the mount went read-only). */
  r = -1;
  st = csa_setup_link(g_src, g_comfy, "stale.py", &r);
  if (st != CSA_OK || r != CSA_LINK_NOT_PERMITTED) {
    fprintf(stderr, "stale: status %s result %d (%s)\n", csa_status_name(st), r, csa_errmsg());
    fails++;
  }
  /* Already linked: reading is enough, so it still says "same". */
  r = -1;
  st = csa_setup_link(g_src, g_comfy, "good.py", &r);
  if (st != CSA_OK || r != CSA_LINK_SKIP_SAME) {
    fprintf(stderr, "good: status %s result %d (%s)\n", csa_status_name(st), r, csa_errmsg());
    fails++;
  }
  /* Native file: untouched, as anywhere. */
  r = -1;
  st = csa_setup_link(g_src, g_comfy, "native.py", &r);
  if (st != CSA_OK || r != CSA_LINK_SKIP_NATIVE) {
    fprintf(stderr, "native: status %s result %d\n", csa_status_name(st), r);
    fails++;
  }
  return fails;
}

static void check_untouched(void) {
  char p[PATH_MAX];
  CSA_CHECK(!tl_exists(g_target), "sparse.py was created");
  tl_path(p, sizeof p, g_comfy, "stale.py");
  CSA_CHECK(strcmp(tl_readlink(p), "/gone/stale.py") == 0, "stale link changed");
  CSA_CHECK(tl_count(g_comfy, ".csa-tmp") == 0, "temporary names left");
  CSA_CHECK(tl_entries(g_comfy) == 3, "comfy has %d entries, want 3", tl_entries(g_comfy));
}

int main(void) {
  tl_comfy_fixture(g_root, g_src, g_comfy, g_target);
  char p[PATH_MAX];
  tl_path(p, sizeof p, g_comfy, "stale.py");
  CSA_CHECK(symlink("/gone/stale.py", p) == 0, "symlink");
  tl_path(p, sizeof p, g_comfy, "good.py");
  CSA_CHECK(symlink(g_src, p) == 0, "symlink");
  tl_path(p, sizeof p, g_comfy, "native.py");
  tl_write(p, "N = 1\n");

  int ran = 0;
#if defined(__linux__)
  pid_t pid = fork();
  if (pid == 0) {
    /* 77: skipped (cannot build the read-only mount here). */
    if (unshare(CLONE_NEWNS) != 0) {
      if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        fprintf(stderr, "skip: unshare: %s\n", strerror(errno));
        _exit(77);
      }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount(g_comfy, g_comfy, NULL, MS_BIND, NULL) != 0 ||
        mount(NULL, g_comfy, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
      fprintf(stderr, "skip: read-only bind mount: %s\n", strerror(errno));
      _exit(77);
    }
    /* Prove the mount is read-only before trusting the result. */
    char probe[PATH_MAX];
    tl_path(probe, sizeof probe, g_comfy, "probe");
    if (mkdir(probe, 0755) == 0 || errno != EROFS) {
      fprintf(stderr, "read-only mount still writable\n");
      _exit(2);
    }
    _exit(readonly_cases() == 0 ? 0 : 1);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 77) {
    printf("test_link_readonly: read-only bind mount not permitted here: skipped that part\n");
  } else {
    CSA_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "read-only cases failed (status %d)", ws);
    ran++;
  }
  check_untouched();
#endif

  /* Plain permissions (EACCES): a read-only site-packages for a normal user.
   * As root, a forked child drops to nobody (65534) first, since root
   * ignores the mode bits. */
  chmod(g_root, 0755); /* mkdtemp made it 0700: let nobody reach the source */
  chmod(g_comfy, 0555);
  if (geteuid() != 0) {
    CSA_CHECK(readonly_cases() == 0, "chmod 0555 cases failed");
    ran++;
  } else {
    pid_t child = fork();
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) {
        fprintf(stderr, "skip: cannot drop to uid 65534: %s\n", strerror(errno));
        _exit(77);
      }
      _exit(readonly_cases() == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(child, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
      printf("test_link_readonly: cannot switch to uid 65534: EACCES part skipped\n");
    } else {
      CSA_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "EACCES cases as uid 65534 failed (%d)",
                st);
      ran++;
    }
  }
  chmod(g_comfy, 0755);
  check_untouched();
  if (ran == 0)
    printf("test_link_readonly: SKIPPED (no mount namespace and no way to drop root)\n");
  tl_rmtree(g_root);
  return csa_test_finish("test_link_readonly");
}
