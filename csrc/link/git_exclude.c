/*
 * git_exclude.c — keep a staged link from blocking ComfyUI's `git pull`.
 *
 * Why: when upstream later adds the real comfy/sparse.py, `git pull` refuses
 * to overwrite an *untracked* file in the way ("would be overwritten by
 * merge"), but silently replaces an *ignored* one.  Listing the link in the
 * repository's info/exclude (local, never committed) makes it ignored.
 *
 * Where: walk up from the target's directory to the first ".git" entry.  A
 * directory is the git dir; a file holding "gitdir: <path>" (linked
 * worktrees, submodules) points at it, relative paths being relative to the
 * file's directory.  A worktree's git dir has a "commondir" file naming the
 * shared repository, and info/exclude lives there (git reads
 * $GIT_COMMON_DIR/info/exclude), so follow it when present.
 *
 * How: git's lockfile protocol, so concurrent setup_link calls (and any tool
 * that follows the same convention) serialise on one lock: create
 * "exclude.lock" exclusively, re-read exclude, write old content + our line
 * into the lock, rename it over exclude.  A held lock is waited on briefly
 * (the critical section takes milliseconds).  git itself never writes
 * info/exclude, so a lock older than CSA__GIT_LOCK_STALE_S seconds is the
 * leftover of a crashed process: it is removed, else every later start-up
 * would fail to add its line.
 *
 * The line is "/<repo-relative path>" with git's glob characters escaped:
 * anchored at the work-tree root so it matches this path and nothing else.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_internal.h"

/* Waiting for a busy exclude.lock: 200 x 10 ms. */
#define CSA__GIT_LOCK_TRIES 200
#define CSA__GIT_LOCK_SLEEP_MS 10
/* A lock this old is a crashed writer's leftover. */
#define CSA__GIT_LOCK_STALE_S 30.0

/* Records a failure of the exclude step; notes are cut to fit git_note. */
static void csa__git_note(csa_link_info *info, const char *fmt, ...) CSA__PRINTF(2, 3);
static void csa__git_note(csa_link_info *info, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(info->git_note, sizeof info->git_note, fmt, ap);
  va_end(ap);
  info->git_exclude = CSA_LINK_GIT_FAILED;
}

static void csa__git_fail(csa_link_info *info, const char *what) {
  csa__git_note(info, "%s: %s", what, csa_errmsg());
}

static void csa__trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = '\0';
}

/* Reads a one-line pointer file ("gitdir: X" or a commondir's "X") and
 * resolves X against dir.  prefix may be "" for commondir. */
static int csa__git_pointer(const char *file, const char *dir, const char *prefix, char *out,
                            size_t cap) {
  char *data;
  size_t len;
  int st = csa__fs_read_file(file, &data, &len);
  if (st != CSA_OK)
    return st;
  char *nl = strchr(data, '\n');
  if (nl != NULL)
    *nl = '\0';
  csa__trim(data);
  size_t pl = strlen(prefix);
  if (strncmp(data, prefix, pl) != 0) {
    free(data);
    return csa__error(CSA_EIO, "\"%s\" does not start with \"%s\"", file, prefix);
  }
  const char *p = data + pl;
  while (*p == ' ' || *p == '\t')
    p++;
  int absolute = p[0] == '/' || p[0] == '\\' ||
                 (((p[0] | 0x20) >= 'a' && (p[0] | 0x20) <= 'z') && p[1] == ':');
  char joined[CSA_LINK_PATH_MAX];
  if (absolute)
    st = snprintf(joined, sizeof joined, "%s", p) < (int)sizeof joined
             ? CSA_OK
             : csa__error(CSA_EPATH, "path in \"%s\" is too long", file);
  else
    st = csa__path_join(joined, sizeof joined, dir, p);
  free(data);
  if (st != CSA_OK)
    return st;
  return csa__fs_realpath(joined, out, cap);
}

/* Finds the work-tree root above start and the directory holding
 * info/exclude; *found = 0 (and CSA_OK) when start is in no work tree. */
static int csa__git_find(const char *start, char *root, char *common, size_t cap, int *found) {
  char dir[CSA_LINK_PATH_MAX], dotgit[CSA_LINK_PATH_MAX], gitdir[CSA_LINK_PATH_MAX];
  *found = 0;
  snprintf(dir, sizeof dir, "%s", start);
  for (;;) {
    int st = csa__path_join(dotgit, sizeof dotgit, dir, ".git");
    if (st != CSA_OK)
      return st;
    int kind;
    st = csa__fs_kind(dotgit, &kind);
    if (st != CSA_OK)
      return st;
    if (kind == CSA__FS_LINK) {
      /* A symlinked .git: judge by what it points to. */
      st = csa__fs_realpath(dotgit, gitdir, sizeof gitdir);
      if (st == CSA_OK)
        st = csa__fs_kind(gitdir, &kind);
      if (st == CSA_OK)
        memcpy(dotgit, gitdir, strlen(gitdir) + 1);
      else
        kind = CSA__FS_ABSENT;
    }
    if (kind == CSA__FS_DIR) {
      st = csa__fs_realpath(dotgit, gitdir, sizeof gitdir);
      if (st != CSA_OK)
        return st;
      break;
    }
    if (kind == CSA__FS_FILE) {
      st = csa__git_pointer(dotgit, dir, "gitdir:", gitdir, sizeof gitdir);
      if (st != CSA_OK)
        return st;
      break;
    }
    long cut = csa__path_last_sep(dir);
    if (cut < 0)
      return CSA_OK;
    /* Keep the root's own separator ("/" or "C:\\"). */
    size_t keep = (cut == 0 || (cut == 2 && dir[1] == ':')) ? (size_t)cut + 1 : (size_t)cut;
    if (keep == strlen(dir))
      return CSA_OK; /* already at the root */
    dir[keep] = '\0';
  }
  if (strlen(dir) + 1 > cap)
    return csa__error(CSA_EPATH, "path too long");
  memcpy(root, dir, strlen(dir) + 1);
  *found = 1;

  char commondir_file[CSA_LINK_PATH_MAX];
  int st = csa__path_join(commondir_file, sizeof commondir_file, gitdir, "commondir");
  if (st != CSA_OK)
    return st;
  int kind;
  st = csa__fs_kind(commondir_file, &kind);
  if (st != CSA_OK)
    return st;
  if (kind == CSA__FS_FILE)
    return csa__git_pointer(commondir_file, gitdir, "", common, cap);
  if (strlen(gitdir) + 1 > cap)
    return csa__error(CSA_EPATH, "path too long");
  memcpy(common, gitdir, strlen(gitdir) + 1);
  return CSA_OK;
}

/* "/" + rel with '\\' turned into '/' and git's pattern characters escaped;
 * trailing spaces escaped too (git drops unescaped ones). */
static int csa__git_pattern(const char *rel, char *out, size_t cap) {
  size_t o = 0, n = strlen(rel);
  size_t last_nonspace = n;
  while (last_nonspace > 0 && rel[last_nonspace - 1] == ' ')
    last_nonspace--;
  if (cap < 2)
    return csa__error(CSA_EPATH, "pattern buffer too small");
  out[o++] = '/';
  for (size_t i = 0; i < n; i++) {
    char c = rel[i];
#ifdef _WIN32
    if (c == '\\')
      c = '/'; /* a separator there; git wants '/' */
#endif
    /* '!' and '#' are special only first, and our line starts with '/'. */
    int esc = c == '*' || c == '?' || c == '[' || c == '\\' || i >= last_nonspace;
    if (o + (size_t)esc + 2 > cap)
      return csa__error(CSA_EPATH, "path \"%s\" is too long for an exclude line", rel);
    if (esc)
      out[o++] = '\\';
    out[o++] = c;
  }
  out[o] = '\0';
  return CSA_OK;
}

/* 1 if text has a line equal to line (ignoring a CR before the LF). */
static int csa__has_line(const char *text, const char *line) {
  size_t ll = strlen(line);
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    size_t m = n;
    if (m > 0 && p[m - 1] == '\r')
      m--;
    if (m == ll && memcmp(p, line, ll) == 0)
      return 1;
    if (e == NULL)
      break;
    p = e + 1;
  }
  return 0;
}

/* Locates the work tree holding target and forms its exclude line; common
 * receives the directory holding info/exclude.  Returns 1 to go on, 0 when
 * there is nothing to do (no work tree) or a failure was noted in info. */
static int csa__git_exclude_line(const char *target, csa_link_info *info, char *common,
                                 char *line, size_t line_cap) {
  char root[CSA_LINK_PATH_MAX], start[CSA_LINK_PATH_MAX];
  long cut = csa__path_last_sep(target);
  if (cut <= 0)
    return 0;
  memcpy(start, target, (size_t)cut);
  start[cut] = '\0';
  int found = 0;
  int st = csa__git_find(start, root, common, sizeof root, &found);
  if (st != CSA_OK) {
    csa__git_fail(info, "cannot locate the git directory");
    return 0;
  }
  if (!found)
    return 0;
  if (!csa__path_within(root, target)) {
    csa__git_note(info, "target \"%s\" is not below the work tree \"%s\"", target, root);
    return 0;
  }
  size_t rl = strlen(root);
  const char *rel = target + rl;
  while (*rel == '/' || *rel == '\\')
    rel++;
  if (csa__git_pattern(rel, line, line_cap) != CSA_OK) {
    csa__git_fail(info, "cannot form the exclude line");
    return 0;
  }
  return 1;
}

/* Cheap check without the lock: the common case on every start-up after
 * the first is "already there", which needs no write at all.  Returns 1 when
 * the line must still be added (info/ exists then), 0 when it is present or
 * a failure was noted. */
static int csa__git_needs_line(csa_link_info *info, const char *info_dir, const char *line) {
  char *old = NULL;
  size_t old_len = 0;
  int st = csa__fs_read_file(info->git_path, &old, &old_len);
  if (st == CSA_OK && csa__has_line(old, line)) {
    free(old);
    info->git_exclude = CSA_LINK_GIT_PRESENT;
    return 0;
  }
  free(old);
  if (st != CSA_OK && st != CSA_ENOENT) {
    csa__git_fail(info, "cannot read the exclude file");
    return 0;
  }
  if (csa__fs_mkdir(info_dir) != CSA_OK) {
    csa__git_fail(info, "cannot create the info directory");
    return 0;
  }
  return 1;
}

/* Takes exclude.lock, waiting briefly for a live holder and breaking a stale
 * one.  Returns 1 when held, 0 when a failure was noted. */
static int csa__git_take_lock(csa_link_info *info, const char *lock) {
  int tries = 0;
  for (;;) {
    int st = csa__fs_create_excl(lock);
    if (st == CSA_OK)
      return 1;
    double age = 0.0;
    if (st == CSA_EEXIST && csa__fs_age_seconds(lock, &age) == CSA_OK &&
        age > CSA__GIT_LOCK_STALE_S) {
      csa__fs_unlink(lock); /* racing breakers: one wins, the other's unlink fails */
      continue;
    }
    if (st != CSA_EEXIST || ++tries >= CSA__GIT_LOCK_TRIES) {
      csa__git_fail(info, st == CSA_EEXIST ? "exclude.lock stays held by another process"
                                           : "cannot take exclude.lock");
      return 0;
    }
    csa__fs_sleep_ms(CSA__GIT_LOCK_SLEEP_MS);
  }
}

/* old (old_len bytes, may be NULL) + a newline if it lacks a final one +
 * our header unless already there + line + "\n"; *n receives the length.
 * NULL when out of memory. */
static char *csa__git_new_content(const char *old, size_t old_len, const char *line, size_t *n) {
  size_t ll = strlen(line);
  int need_nl = old_len > 0 && old[old_len - 1] != '\n';
  static const char header[] = "# added by comfy-sparse-attn setup_link (staged link, "
                               "replaced when ComfyUI ships the file)\n";
  int add_header = old == NULL || strstr(old, header) == NULL;
  size_t hl = add_header ? sizeof header - 1 : 0;
  size_t nlen = old_len + (size_t)need_nl + hl + ll + 1;
  char *buf = (char *)malloc(nlen + 1);
  if (buf == NULL)
    return NULL;
  size_t o = 0;
  if (old_len) {
    memcpy(buf, old, old_len);
    o = old_len;
  }
  if (need_nl)
    buf[o++] = '\n';
  memcpy(buf + o, header, hl);
  o += hl;
  memcpy(buf + o, line, ll);
  o += ll;
  buf[o++] = '\n';
  buf[o] = '\0';
  *n = o;
  return buf;
}

/* With the lock held: adds line to the exclude file through the lock file
 * and records the outcome in info; the lock is gone afterwards. */
static void csa__git_add_locked(csa_link_info *info, const char *lock, const char *line) {
  char *old = NULL;
  size_t old_len = 0;
  /* Locked: read again, since another writer may have added our line. */
  int st = csa__fs_read_file(info->git_path, &old, &old_len);
  if (st == CSA_ENOENT) {
    old = NULL;
    old_len = 0;
  } else if (st != CSA_OK) {
    csa__git_fail(info, "cannot read the exclude file");
    csa__fs_unlink(lock);
    return;
  }
  if (old != NULL && csa__has_line(old, line)) {
    free(old);
    csa__fs_unlink(lock);
    info->git_exclude = CSA_LINK_GIT_PRESENT;
    return;
  }
  size_t o = 0;
  char *buf = csa__git_new_content(old, old_len, line, &o);
  free(old);
  if (buf == NULL) {
    csa__fs_unlink(lock);
    csa__git_note(info, "out of memory");
    return;
  }
  st = csa__fs_write_file(lock, buf, o);
  free(buf);
  if (st == CSA_OK)
    st = csa__fs_rename(lock, info->git_path, 1);
  if (st != CSA_OK) {
    csa__git_fail(info, "cannot write the exclude file");
    csa__fs_unlink(lock);
    return;
  }
  info->git_exclude = CSA_LINK_GIT_ADDED;
}

void csa__link_git_exclude(const char *target, csa_link_info *info) {
  char common[CSA_LINK_PATH_MAX];
  char line[CSA_LINK_PATH_MAX + 64];
  if (!csa__git_exclude_line(target, info, common, line, sizeof line))
    return;

  char info_dir[CSA_LINK_PATH_MAX], lock[CSA_LINK_PATH_MAX + 8];
  if (csa__path_join(info_dir, sizeof info_dir, common, "info") != CSA_OK ||
      csa__path_join(info->git_path, sizeof info->git_path, info_dir, "exclude") != CSA_OK) {
    csa__git_fail(info, "path too long");
    return;
  }
  snprintf(lock, sizeof lock, "%s.lock", info->git_path);

  if (!csa__git_needs_line(info, info_dir, line))
    return;
  if (!csa__git_take_lock(info, lock))
    return;
  csa__git_add_locked(info, lock, line);
}
