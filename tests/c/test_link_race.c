/*
 * test_link_race.c — 12 processes (and, separately, 12 threads) released at
 * once on one target: exactly one creates the link, the others find it; a
 * stale link ends up replaced by one valid link; no temporary names remain.
 * In a git work tree, concurrent calls for different targets each get their
 * line into info/exclude exactly once (the lockfile serialises them).
 */
#include "test_link_util.h" /* first: it sets _GNU_SOURCE */

#include <pthread.h>
#include <sys/wait.h>

#include "csa_test.h"
#include "link/link_internal.h"

#define N_RACERS 12
#define ROUNDS 25

static char g_root[PATH_MAX], g_src[PATH_MAX], g_comfy[PATH_MAX], g_target[PATH_MAX];

/* Children block reading the pipe until the parent closes its write end,
 * which releases all of them in the same instant. */
static int race_processes(const char *rel, int results[N_RACERS]) {
  int gate[2], out[2];
  if (pipe(gate) != 0 || pipe(out) != 0)
    return -1;
  pid_t pids[N_RACERS];
  for (int i = 0; i < N_RACERS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      close(gate[1]);
      close(out[0]);
      char c;
      while (read(gate[0], &c, 1) > 0) {
      }
      int r = 0;
      int st = csa_setup_link(g_src, g_comfy, rel, &r);
      int rec[2] = {st, r};
      if (write(out[1], rec, sizeof rec) != (ssize_t)sizeof rec)
        _exit(3);
      _exit(0);
    }
  }
  close(gate[0]);
  close(out[1]);
  close(gate[1]); /* go */
  for (int i = 0; i < N_RACERS; i++) {
    int rec[2] = {-999, -1};
    if (read(out[0], rec, sizeof rec) != (ssize_t)sizeof rec)
      results[i] = -1000;
    else
      results[i] = rec[0] != CSA_OK ? rec[0] * 100 : rec[1];
  }
  close(out[0]);
  int bad = 0;
  for (int i = 0; i < N_RACERS; i++) {
    int ws;
    waitpid(pids[i], &ws, 0);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
      bad++;
  }
  return bad;
}

static void check_final(const char *target, const char *when) {
  CSA_CHECK(tl_is_link(target) && strcmp(tl_readlink(target), g_src) == 0,
            "%s: target is not one valid link (holds \"%s\")", when, tl_readlink(target));
  CSA_CHECK(tl_count(g_comfy, ".csa-tmp") == 0, "%s: temporary names left", when);
}

/* method: csa__link_test_skip_methods for the racers (0 renameat2, 1 linkat,
 * 2 check-then-rename).  The last has a microsecond window in which two
 * racers can both see "absent" and both rename: still one valid link, but
 * possibly two CREATED answers, so only methods 0 and 1 assert "exactly one". */
static void test_processes_absent(int method) {
  csa__link_test_skip_methods = method; /* inherited by the forked racers */
  for (int round = 0; round < ROUNDS; round++) {
    unlink(g_target);
    int res[N_RACERS];
    CSA_CHECK(race_processes("sparse.py", res) == 0, "a child failed");
    int created = 0, same = 0;
    for (int i = 0; i < N_RACERS; i++) {
      created += res[i] == CSA_LINK_CREATED;
      same += res[i] == CSA_LINK_SKIP_SAME;
    }
    if (method < 2)
      CSA_CHECK(created == 1 && same == N_RACERS - 1,
                "method %d round %d: %d created, %d same (want 1 and %d); first result %d",
                method, round, created, same, N_RACERS - 1, res[0]);
    else
      CSA_CHECK(created >= 1 && created + same == N_RACERS,
                "method %d round %d: %d created, %d same", method, round, created, same);
    check_final(g_target, "processes/absent");
  }
  csa__link_test_skip_methods = 0;
}

static void test_processes_stale(void) {
  for (int round = 0; round < ROUNDS; round++) {
    unlink(g_target);
    CSA_CHECK(symlink("/nonexistent/old/sparse.py", g_target) == 0, "symlink");
    int res[N_RACERS];
    CSA_CHECK(race_processes("sparse.py", res) == 0, "a child failed");
    int replaced = 0;
    for (int i = 0; i < N_RACERS; i++) {
      CSA_CHECK(res[i] == CSA_LINK_REPLACED || res[i] == CSA_LINK_SKIP_SAME,
                "round %d racer %d: result %d", round, i, res[i]);
      replaced += res[i] == CSA_LINK_REPLACED;
    }
    CSA_CHECK(replaced >= 1, "round %d: nobody replaced the stale link", round);
    check_final(g_target, "processes/stale");
  }
}

static pthread_barrier_t g_barrier;
static int g_thread_results[N_RACERS];

static void *racer_thread(void *arg) {
  int i = (int)(intptr_t)arg;
  pthread_barrier_wait(&g_barrier);
  int r = 0;
  int st = csa_setup_link(g_src, g_comfy, "sparse.py", &r);
  g_thread_results[i] = st != CSA_OK ? st * 100 : r;
  return NULL;
}

static void test_threads(void) {
  for (int round = 0; round < ROUNDS; round++) {
    unlink(g_target);
    if (round % 2)
      CSA_CHECK(symlink("elsewhere.py", g_target) == 0, "symlink");
    pthread_t th[N_RACERS];
    pthread_barrier_init(&g_barrier, NULL, N_RACERS);
    for (int i = 0; i < N_RACERS; i++)
      pthread_create(&th[i], NULL, racer_thread, (void *)(intptr_t)i);
    for (int i = 0; i < N_RACERS; i++)
      pthread_join(th[i], NULL);
    pthread_barrier_destroy(&g_barrier);
    int made = 0;
    for (int i = 0; i < N_RACERS; i++) {
      int r = g_thread_results[i];
      CSA_CHECK(r == CSA_LINK_CREATED || r == CSA_LINK_REPLACED || r == CSA_LINK_SKIP_SAME,
                "round %d thread %d: result %d (%s)", round, i, r, csa_errmsg());
      made += r == CSA_LINK_CREATED;
    }
    if (round % 2 == 0)
      CSA_CHECK(made == 1, "round %d: %d threads created the link", round, made);
    check_final(g_target, "threads");
  }
}

static void test_git_exclude_race(void) {
  /* A bare-bones .git directory is all the exclude step looks at. */
  char git[PATH_MAX], exclude[PATH_MAX];
  tl_path(git, sizeof git, g_root, ".git");
  mkdir(git, 0755);
  tl_path(exclude, sizeof exclude, git, "info/exclude");
  int gate[2];
  if (pipe(gate) != 0)
    return;
  pid_t pids[N_RACERS];
  for (int i = 0; i < N_RACERS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      close(gate[1]);
      char c;
      while (read(gate[0], &c, 1) > 0) {
      }
      char rel[32];
      snprintf(rel, sizeof rel, "mod_%02d.py", i);
      int r = 0;
      /* Each twice: the second finds its line and adds no duplicate. */
      int st = csa_setup_link(g_src, g_comfy, rel, &r);
      int st2 = csa_setup_link(g_src, g_comfy, "shared.py", &r);
      _exit(st == CSA_OK && st2 == CSA_OK ? 0 : 1);
    }
  }
  close(gate[0]);
  close(gate[1]);
  int bad = 0;
  for (int i = 0; i < N_RACERS; i++) {
    int ws;
    waitpid(pids[i], &ws, 0);
    bad += !WIFEXITED(ws) || WEXITSTATUS(ws) != 0;
  }
  CSA_CHECK(bad == 0, "%d children failed", bad);
  const char *text = tl_read(exclude);
  for (int i = 0; i < N_RACERS; i++) {
    char line[64];
    snprintf(line, sizeof line, "/comfy/mod_%02d.py", i);
    CSA_CHECK(tl_count_lines(text, line) == 1, "%s appears %d times in exclude:\n%s", line,
              tl_count_lines(text, line), text);
  }
  CSA_CHECK(tl_count_lines(text, "/comfy/shared.py") == 1, "shared line count %d",
            tl_count_lines(text, "/comfy/shared.py"));
  char lock[PATH_MAX];
  tl_path(lock, sizeof lock, git, "info/exclude.lock");
  CSA_CHECK(!tl_exists(lock), "exclude.lock left behind");
}

int main(void) {
  tl_comfy_fixture(g_root, g_src, g_comfy, g_target);
  test_processes_absent(0);
  test_processes_absent(1);
  test_processes_absent(2);
  test_processes_stale();
  test_threads();
  test_git_exclude_race();
  tl_rmtree(g_root);
  return csa_test_finish("test_link_race");
}
