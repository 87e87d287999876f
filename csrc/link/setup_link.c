/*
 * setup_link.c — the case table of csa_setup_link (see csa.h), written once
 * against the primitives of link_internal.h.
 *
 * Order of work, chosen so that a refusal never leaves anything behind:
 *   1. check comfy_relative's form (relpath.c) and resolve the source;
 *   2. resolve comfy_dir and the target's parent directory and require the
 *      parent to lie inside comfy_dir *after* symlinks are resolved (an
 *      "ldm" that links to /etc must not let us write to /etc/sparse.py);
 *   3. look at the target (lstat) and act on what is there;
 *   4. only then touch git's info/exclude.
 *
 * Concurrency.  New links are always made under a temporary name unique to
 * the process and thread, next to the target (same directory, so the rename
 * is atomic), then renamed into place: without replacing when the target was
 * absent, replacing when it was a stale link.  Racing processes therefore
 * each see one of: absent (one wins the no-replace rename, the others get
 * EEXIST, look again and find the winner's link), or a link to the same
 * source (skip).  Every temporary name is removed on every failure path, and
 * ones left by a killed process (older than a minute) are swept on the next
 * call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_internal.h"

/* Rounds of look-then-act before giving up on a target that keeps changing
 * under us (each round is one lstat and at most one rename). */
#define CSA__LINK_ROUNDS 16
/* Temporary names tried before concluding something else is wrong. */
#define CSA__LINK_TMP_TRIES 32

/* Makes a symlink to source under a fresh temporary name in dir.  tmp gets
 * the name.  CSA_EPERM: links are not possible here. */
static int csa__link_make_temp(const char *dir, const char *base, const char *source,
                               char *tmp, size_t cap) {
  int st = CSA_EINTERNAL;
  for (int i = 0; i < CSA__LINK_TMP_TRIES; i++) {
    char uniq[96], name[CSA_LINK_PATH_MAX];
    csa__fs_unique(uniq, sizeof uniq);
    /* A leading dot hides it from Python's import system and from `ls`; the
     * ".csa-tmp" part tells a human who finds a leftover what it is. */
    int n = snprintf(name, sizeof name, ".%s.csa-tmp.%s", base, uniq);
    if (n < 0 || (size_t)n >= sizeof name)
      return csa__error(CSA_EPATH, "temporary name for \"%s\" is too long", base);
    st = csa__path_join(tmp, cap, dir, name);
    if (st != CSA_OK)
      return st;
    st = csa__fs_symlink(source, tmp);
    if (st != CSA_EEXIST)
      return st;
  }
  return st;
}

/* Puts a link to source at target through a temporary name.  replace: see
 * csa__fs_rename.  Returns CSA_OK, CSA_EEXIST (no-replace and the target
 * appeared), CSA_EPERM (not permitted) or another error. */
static int csa__link_install(const char *dir, const char *base, const char *source,
                             const char *target, int replace) {
  char tmp[CSA_LINK_PATH_MAX];
  int st = csa__link_make_temp(dir, base, source, tmp, sizeof tmp);
  if (st != CSA_OK)
    return st;
  st = csa__fs_rename(tmp, target, replace);
  if (st != CSA_OK) {
    /* Keep the rename's message: it is the one the caller needs. */
    char keep[512];
    snprintf(keep, sizeof keep, "%s", csa_errmsg());
    int kind = CSA__FS_ABSENT;
    if (csa__fs_kind(tmp, &kind) == CSA_OK && kind != CSA__FS_ABSENT)
      csa__fs_unlink(tmp);
    csa__error(st, "%s", keep);
  }
  return st;
}

/* Temporary links older than this are leftovers of a process killed
 * between making one and renaming it (a live one lives for microseconds). */
#define CSA__LINK_TMP_STALE_S 60.0

typedef struct csa__sweep {
  const char *dir;
  char prefix[CSA_LINK_PATH_MAX];
  size_t prefix_len;
} csa__sweep;

static void csa__sweep_one(const char *name, void *ctx) {
  csa__sweep *sw = (csa__sweep *)ctx;
  if (strncmp(name, sw->prefix, sw->prefix_len) != 0)
    return;
  char path[CSA_LINK_PATH_MAX];
  int kind;
  double age;
  if (csa__path_join(path, sizeof path, sw->dir, name) == CSA_OK &&
      csa__fs_kind(path, &kind) == CSA_OK && kind == CSA__FS_LINK &&
      csa__fs_age_seconds(path, &age) == CSA_OK && age > CSA__LINK_TMP_STALE_S)
    csa__fs_unlink(path);
}

/* Removes stale ".<base>.csa-tmp.*" links from dir.  Best effort and silent:
 * a leftover is clutter (hidden, never importable), not a fault. */
static void csa__link_sweep_temps(const char *dir, const char *base) {
  csa__sweep sw;
  sw.dir = dir;
  int n = snprintf(sw.prefix, sizeof sw.prefix, ".%s.csa-tmp.", base);
  if (n < 0 || (size_t)n >= sizeof sw.prefix)
    return;
  sw.prefix_len = (size_t)n;
  char keep[512];
  snprintf(keep, sizeof keep, "%s", csa_errmsg());
  csa__fs_list(dir, csa__sweep_one, &sw);
  csa__error(CSA_OK, "%s", keep); /* a sweep failure is no caller's business */
}

static int csa__link_source(const char *source, char *out, size_t cap) {
  if (source == NULL || source[0] == '\0')
    return csa__error(CSA_EINVAL, "source is missing; expected the path of the file to stage");
  int st = csa__fs_realpath(source, out, cap);
  if (st == CSA_ENOENT)
    return csa__error(CSA_ENOENT, "source \"%s\" does not exist; expected the path of the file "
                                  "to stage (e.g. the sparse.py shipped in your package)",
                      source);
  if (st != CSA_OK)
    return st;
  int kind;
  st = csa__fs_kind(out, &kind);
  if (st != CSA_OK)
    return st;
  if (kind == CSA__FS_DIR)
    return csa__error(CSA_EISDIR, "source \"%s\" is a directory; expected a file", source);
  if (kind != CSA__FS_FILE)
    return csa__error(CSA_EINVAL, "source \"%s\" is not a regular file", source);
  return CSA_OK;
}

/* Resolves comfy_dir and the target's parent; writes the canonical target
 * path and points *base at its last component (inside target). */
static int csa__link_target(const char *comfy_dir, const char *norm_rel, char *target,
                            size_t cap, const char **base) {
  char comfy[CSA_LINK_PATH_MAX], parent[CSA_LINK_PATH_MAX], parent_real[CSA_LINK_PATH_MAX];
  if (comfy_dir[0] == '\0')
    return csa__error(CSA_EINVAL, "comfy_dir is empty; expected the comfy package directory");
  int st = csa__fs_realpath(comfy_dir, comfy, sizeof comfy);
  if (st == CSA_ENOENT)
    return csa__error(CSA_ENOENT, "comfy_dir \"%s\" does not exist", comfy_dir);
  if (st != CSA_OK)
    return st;
  int kind;
  st = csa__fs_kind(comfy, &kind);
  if (st != CSA_OK)
    return st;
  if (kind != CSA__FS_DIR)
    return csa__error(CSA_EINVAL, "comfy_dir \"%s\" is not a directory", comfy_dir);

  /* norm_rel = "<parent_rel><SEP><base>" or just "<base>". */
  long cut = csa__path_last_sep(norm_rel);
  const char *base_rel = norm_rel + cut + 1;
  if (cut >= 0) {
    char parent_rel[CSA_LINK_PATH_MAX];
    memcpy(parent_rel, norm_rel, (size_t)cut);
    parent_rel[cut] = '\0';
    st = csa__path_join(parent, sizeof parent, comfy, parent_rel);
    if (st != CSA_OK)
      return st;
    st = csa__fs_realpath(parent, parent_real, sizeof parent_real);
    if (st == CSA_ENOENT)
      return csa__error(CSA_ENOENT,
                        "the directory \"%s\" for comfy_relative \"%s\" does not exist in "
                        "comfy_dir \"%s\"; setup_link creates no directories (is this the "
                        "ComfyUI version you expect?)",
                        parent_rel, norm_rel, comfy);
    if (st != CSA_OK)
      return st;
    st = csa__fs_kind(parent_real, &kind);
    if (st != CSA_OK)
      return st;
    if (kind != CSA__FS_DIR)
      return csa__error(CSA_ENOENT, "\"%s\" in comfy_dir \"%s\" is not a directory", parent_rel,
                        comfy);
    if (!csa__path_within(comfy, parent_real))
      return csa__error(CSA_EPATH,
                        "comfy_relative \"%s\" escapes comfy_dir \"%s\": its directory \"%s\" "
                        "resolves to \"%s\" through a symlink",
                        norm_rel, comfy, parent_rel, parent_real);
  } else {
    memcpy(parent_real, comfy, strlen(comfy) + 1);
  }
  st = csa__path_join(target, cap, parent_real, base_rel);
  if (st != CSA_OK)
    return st;
  *base = target + strlen(target) - strlen(base_rel);
  return CSA_OK;
}

static int csa__link_run(const char *source, const char *comfy_dir, const char *comfy_relative,
                         csa_link_info *info) {
  char norm[CSA_LINK_PATH_MAX];
  int st = csa__link_check_relative(comfy_relative, norm, sizeof norm);
  if (st != CSA_OK)
    return st;
  st = csa__link_source(source, info->source, sizeof info->source);
  if (st != CSA_OK)
    return st;
  if (comfy_dir == NULL)
    return CSA_OK; /* argument check only */

  const char *base = NULL;
  st = csa__link_target(comfy_dir, norm, info->target, sizeof info->target, &base);
  if (st != CSA_OK)
    return st;
  char dir[CSA_LINK_PATH_MAX];
  size_t dlen = (size_t)(base - info->target);
  memcpy(dir, info->target, dlen);
  dir[dlen] = '\0';

  csa__link_sweep_temps(dir, base);

  for (int round = 0; round < CSA__LINK_ROUNDS; round++) {
    int kind;
    st = csa__fs_kind(info->target, &kind);
    if (st != CSA_OK)
      return st;
    switch (kind) {
    case CSA__FS_FILE:
      info->result = CSA_LINK_SKIP_NATIVE;
      return CSA_OK;
    case CSA__FS_DIR:
      info->result = CSA_LINK_SKIP_DIR;
      return CSA_OK;
    case CSA__FS_OTHER:
      return csa__error(CSA_EEXIST,
                        "target \"%s\" exists and is not a file, directory or symlink; remove "
                        "it or choose another comfy_relative",
                        info->target);
    case CSA__FS_ABSENT:
      st = csa__link_install(dir, base, info->source, info->target, 0);
      if (st == CSA_OK) {
        info->result = CSA_LINK_CREATED;
        info->previous[0] = '\0';
        return CSA_OK;
      }
      break;
    case CSA__FS_LINK: {
      int same = 0;
      st = csa__fs_same_file(info->target, info->source, &same);
      if (st != CSA_OK)
        return st;
      if (same) {
        info->result = CSA_LINK_SKIP_SAME;
        return CSA_OK;
      }
      st = csa__fs_readlink(info->target, info->previous, sizeof info->previous);
      if (st == CSA_ENOENT)
        continue; /* removed under us: look again */
      if (st != CSA_OK)
        return st;
      st = csa__link_install(dir, base, info->source, info->target, 1);
      if (st == CSA_OK) {
        info->result = CSA_LINK_REPLACED;
        return CSA_OK;
      }
      break;
    }
    default:
      return csa__error(CSA_EINTERNAL, "unknown file kind %d for \"%s\"", kind, info->target);
    }
    /* The install failed. */
    if (st == CSA_EPERM) {
      info->result = CSA_LINK_NOT_PERMITTED;
      info->previous[0] = '\0';
      return CSA_OK;
    }
    /* EEXIST: another process got there first; look at what it left.
     * ENOENT: our temporary name vanished before the rename (a sweeper on a
     * file system whose clock runs far behind ours): just try again. */
    if (st != CSA_EEXIST && st != CSA_ENOENT)
      return st;
  }
  char last[512];
  snprintf(last, sizeof last, "%s", csa_errmsg());
  return csa__error(CSA_EIO, "target \"%s\" kept changing while we tried to link it (last: %s)",
                    info->target, last);
}

int csa_setup_link_ex(const char *source, const char *comfy_dir, const char *comfy_relative,
                      csa_link_info *info) {
  csa_link_info *own = NULL;
  if (info == NULL) {
    own = (csa_link_info *)malloc(sizeof *own);
    if (own == NULL)
      return csa__error(CSA_ENOMEM, "out of memory");
    info = own;
  }
  memset(info, 0, sizeof *info);
  int st = csa__link_run(source, comfy_dir, comfy_relative, info);
  if (st == CSA_OK && (info->result == CSA_LINK_CREATED || info->result == CSA_LINK_REPLACED ||
                       info->result == CSA_LINK_SKIP_SAME))
    csa__link_git_exclude(info->target, info);
  if (st != CSA_OK)
    info->result = 0;
  free(own);
  return st;
}

int csa_setup_link(const char *source, const char *comfy_dir, const char *comfy_relative,
                   int *result) {
  if (result == NULL)
    return csa__error(CSA_EINVAL, "result is NULL; expected a pointer to an int");
  *result = 0;
  if (comfy_dir == NULL)
    return csa__error(CSA_EINVAL, "comfy_dir is missing; expected the comfy package directory");
  csa_link_info *info = (csa_link_info *)malloc(sizeof *info);
  if (info == NULL)
    return csa__error(CSA_ENOMEM, "out of memory");
  int st = csa_setup_link_ex(source, comfy_dir, comfy_relative, info);
  if (st == CSA_OK)
    *result = info->result;
  free(info);
  return st;
}
