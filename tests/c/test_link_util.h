/*
 * test_link_util.h — scratch directories and file helpers shared by the
 * setup_link tests (POSIX only: the Windows layer is cross-compiled, not run).
 */
#ifndef CSA_TEST_LINK_UTIL_H
#define CSA_TEST_LINK_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csa/csa.h"

/* A fresh directory under $TMPDIR (or /tmp), canonical (realpath'd). */
static inline void tl_mkdtemp(char *out, size_t cap) {
  const char *base = getenv("TMPDIR");
  char tmpl[PATH_MAX];
  snprintf(tmpl, sizeof tmpl, "%s/csa_link_XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(tmpl) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
  char *r = realpath(tmpl, NULL);
  snprintf(out, cap, "%s", r);
  free(r);
}

static inline int tl_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static inline void tl_rmtree(const char *dir) { nftw(dir, tl_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static inline void tl_path(char *out, size_t cap, const char *a, const char *b) {
  int n = snprintf(out, cap, "%s/%s", a, b);
  if (n < 0 || (size_t)n >= cap) {
    fprintf(stderr, "test path too long: %s/%s\n", a, b);
    exit(2);
  }
}

static inline void tl_write(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    perror(path);
    exit(2);
  }
  fputs(text, f);
  fclose(f);
}

/* Content of a file ("" if missing), static buffer. */
static inline const char *tl_read(const char *path) {
  static char buf[8192];
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return buf;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* What a symlink holds ("" if not a symlink), static buffer. */
static inline const char *tl_readlink(const char *path) {
  static char buf[PATH_MAX];
  ssize_t n = readlink(path, buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = '\0';
  return buf;
}

static inline int tl_is_link(const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode);
}

static inline int tl_exists(const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0;
}

/* Entries of dir whose name contains needle; with needle NULL, every entry
 * other than . and .. (-1 when dir cannot be opened). */
static inline int tl_count_entries(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (needle != NULL ? strstr(e->d_name, needle) != NULL
                       : strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  }
  closedir(d);
  return n;
}

/* Entries of dir whose name contains needle. */
static inline int tl_count(const char *dir, const char *needle) {
  return tl_count_entries(dir, needle);
}

/* Entries of dir other than . and .. */
static inline int tl_entries(const char *dir) { return tl_count_entries(dir, NULL); }

/* The layout most link tests start from: a fresh root holding src.py
 * ("X = 1") and an empty comfy/ directory, with target naming
 * comfy/sparse.py (not created).  Every buffer holds PATH_MAX bytes. */
static inline void tl_comfy_fixture(char *root, char *src, char *comfy, char *target) {
  tl_mkdtemp(root, PATH_MAX);
  tl_path(src, PATH_MAX, root, "src.py");
  tl_write(src, "X = 1\n");
  tl_path(comfy, PATH_MAX, root, "comfy");
  mkdir(comfy, 0755);
  tl_path(target, PATH_MAX, comfy, "sparse.py");
}

/* Number of lines of text equal to line. */
static inline int tl_count_lines(const char *text, const char *line) {
  int n = 0;
  size_t ll = strlen(line);
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == ll && memcmp(p, line, ll) == 0)
      n++;
    if (!e)
      break;
    p = e + 1;
  }
  return n;
}

#endif /* CSA_TEST_LINK_UTIL_H */
