/*
 * link_internal.h — what the portable half of setup_link (path checks, the
 * case table, git exclude) needs from a platform: a handful of file-system
 * primitives, implemented once in posix/fs.c and once in win/fs.c.
 *
 * Every path here is UTF-8.  Every function returns CSA_OK or a CSA_E* code
 * and, on failure, has already set csa_errmsg() to a sentence naming the path
 * and the operating system's reason.
 */
#ifndef CSA_LINK_INTERNAL_H
#define CSA_LINK_INTERNAL_H

#include <stddef.h>

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef _WIN32
#define CSA__SEP '\\'
#else
#define CSA__SEP '/'
#endif

/* What a directory entry is, links NOT followed (lstat). */
enum csa__fs_kind {
  CSA__FS_ABSENT = 0,
  CSA__FS_FILE = 1,  /* regular file (on Windows: any non-directory that is not a symlink) */
  CSA__FS_DIR = 2,
  CSA__FS_LINK = 3,  /* symbolic link, dangling or not */
  CSA__FS_OTHER = 4  /* FIFO, socket, device */
};

/* ---- relpath.c: the comfy_relative checker (pure, fuzzed) ---------------- */

/* Checks that rel is a plain relative path that stays below its root: not
 * empty, not absolute or drive/UNC rooted, components separated by '/' or
 * '\\', none empty, ".", "..", containing ':', < > " | ? * or bytes < 0x20,
 * ending in '.' or ' ', or naming a Windows device (CON, NUL, COM1, ...).  On success writes
 * the components joined by CSA__SEP to norm (cap bytes) and returns CSA_OK;
 * else CSA_EPATH with a message saying which rule it broke. */
int csa__link_check_relative(const char *rel, char *norm, size_t cap);

/* ---- path.c: string helpers ---------------------------------------------- */

/* out = a + SEP + b (b may be empty: out = a).  CSA_EPATH if it does not fit. */
int csa__path_join(char *out, size_t cap, const char *a, const char *b);
/* 1 if p is root itself or lies below it, comparing whole components
 * (ASCII case-insensitively on Windows).  Both must be canonical. */
int csa__path_within(const char *root, const char *p);
/* Index of the last separator in p, or -1. */
long csa__path_last_sep(const char *p);

/* ---- platform primitives (posix/fs.c, win/fs.c) --------------------------- */

int csa__fs_kind(const char *path, int *kind);
/* Absolute canonical path with every symlink resolved; CSA_ENOENT if missing. */
int csa__fs_realpath(const char *path, char *out, size_t cap);
/* Text a symlink holds. */
int csa__fs_readlink(const char *path, char *out, size_t cap);
/* *same = 1 if a and b (links followed) are one file; a that cannot be
 * resolved (dangling) gives *same = 0 and CSA_OK. */
int csa__fs_same_file(const char *a, const char *b, int *same);
/* Creates a symlink at linkpath holding target (a file link).  CSA_EEXIST if
 * linkpath exists; CSA_EPERM if this file system / user cannot make links
 * here (read-only, no permission, no symlink support). */
int csa__fs_symlink(const char *target, const char *linkpath);
/* Tests only (POSIX): 1 skips renameat2, 2 also skips linkat, so the
 * fallbacks of the no-replace rename get exercised.  0 in normal use. */
#ifndef _WIN32
extern int csa__link_test_skip_methods;
#endif
/* Renames from -> to.  replace = 0: fails with CSA_EEXIST rather than
 * replace an existing to (atomically where the OS can).  replace = 1: an
 * existing to is replaced atomically. */
int csa__fs_rename(const char *from, const char *to, int replace);
int csa__fs_unlink(const char *path);
/* Creates a directory; CSA_OK if it already is one. */
int csa__fs_mkdir(const char *path);
/* Whole file into a malloc'd NUL-terminated buffer (caller frees). */
int csa__fs_read_file(const char *path, char **data, size_t *len);
/* Creates path exclusively (CSA_EEXIST if it exists), empty. */
int csa__fs_create_excl(const char *path);
/* Truncates and writes path, flushed to disk before returning. */
int csa__fs_write_file(const char *path, const char *data, size_t len);
/* Calls fn(name, ctx) for each entry of dir (not "." or ".."); best effort. */
int csa__fs_list(const char *dir, void (*fn)(const char *name, void *ctx), void *ctx);
void csa__fs_sleep_ms(int ms);
/* Seconds since path was last modified (links not followed). */
int csa__fs_age_seconds(const char *path, double *age);
/* A string unique to this call among all threads and processes on the
 * machine: pid, thread, a process-wide counter and clock bits. */
void csa__fs_unique(char *buf, size_t cap);

/* ---- git_exclude.c ------------------------------------------------------ */

/* If target (canonical, absolute) lies in a git work tree, makes sure its
 * repo-relative path is a line of the repository's info/exclude.  Records the
 * outcome in info->git_exclude / git_path / git_note; never fails the call. */
void csa__link_git_exclude(const char *target, csa_link_info *info);

#ifdef __cplusplus
}
#endif
#endif /* CSA_LINK_INTERNAL_H */
