/*
 * posix/fs.c — the file-system primitives of setup_link on Linux, macOS and
 * the BSDs.
 *
 * The one subtle part is the no-replace rename that installs a new link: a
 * plain rename(2) would silently clobber a real comfy/sparse.py that a
 * `git pull` wrote between our check and our rename.  Linux offers
 * renameat2(RENAME_NOREPLACE) (called through syscall(2): manylinux's glibc
 * predates the wrapper); where the kernel, the file system or a container's
 * seccomp filter refuses it we make a hard link to the temporary symlink itself (linkat without
 * AT_SYMLINK_FOLLOW, which fails with EEXIST just the same) and drop the
 * temporary name.  Only where neither exists do we fall back to check-then-
 * rename, whose race window is a few microseconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "../link_internal.h"

/* errno -> status, with a message naming the operation and the path. */
static int csa__fs_fail(int e, const char *what, const char *path) {
  int st;
  switch (e) {
  case ENOENT:
  case ENOTDIR:
    st = CSA_ENOENT;
    break;
  case EACCES:
  case EPERM:
  case EROFS:
#ifdef ENOTSUP
  case ENOTSUP:
#endif
#if defined(EOPNOTSUPP) && (!defined(ENOTSUP) || EOPNOTSUPP != ENOTSUP)
  case EOPNOTSUPP:
#endif
    st = CSA_EPERM;
    break;
  case EEXIST:
    st = CSA_EEXIST;
    break;
  case EISDIR:
    st = CSA_EISDIR;
    break;
  case ENAMETOOLONG:
  case ELOOP:
    st = CSA_EPATH;
    break;
  case ENOMEM:
    st = CSA_ENOMEM;
    break;
  default:
    st = CSA_EIO;
  }
  return csa__error(st, "%s \"%s\": %s (errno %d)", what, path, strerror(e), e);
}

int csa__fs_kind(const char *path, int *kind) {
  struct stat sb;
  if (lstat(path, &sb) != 0) {
    if (errno == ENOENT) {
      *kind = CSA__FS_ABSENT;
      return CSA_OK;
    }
    return csa__fs_fail(errno, "cannot inspect", path);
  }
  if (S_ISLNK(sb.st_mode))
    *kind = CSA__FS_LINK;
  else if (S_ISDIR(sb.st_mode))
    *kind = CSA__FS_DIR;
  else if (S_ISREG(sb.st_mode))
    *kind = CSA__FS_FILE;
  else
    *kind = CSA__FS_OTHER;
  return CSA_OK;
}

int csa__fs_realpath(const char *path, char *out, size_t cap) {
  char *r = realpath(path, NULL);
  if (r == NULL)
    return csa__fs_fail(errno, "cannot resolve", path);
  size_t n = strlen(r);
  if (n + 1 > cap) {
    free(r);
    return csa__error(CSA_EPATH, "resolved path of \"%s\" is longer than %d bytes", path,
                      (int)(cap - 1));
  }
  memcpy(out, r, n + 1);
  free(r);
  return CSA_OK;
}

int csa__fs_readlink(const char *path, char *out, size_t cap) {
  ssize_t n = readlink(path, out, cap);
  if (n < 0)
    return csa__fs_fail(errno, "cannot read link", path);
  if ((size_t)n >= cap)
    return csa__error(CSA_EPATH, "link \"%s\" holds more than %d bytes", path, (int)(cap - 1));
  out[n] = '\0';
  return CSA_OK;
}

int csa__fs_same_file(const char *a, const char *b, int *same) {
  struct stat sa, sb;
  *same = 0;
  if (stat(a, &sa) != 0)
    return CSA_OK; /* dangling or unreadable: not the source */
  if (stat(b, &sb) != 0)
    return csa__fs_fail(errno, "cannot inspect", b);
  *same = sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return CSA_OK;
}

int csa__fs_symlink(const char *target, const char *linkpath) {
  if (symlink(target, linkpath) != 0)
    return csa__fs_fail(errno, "cannot create symlink", linkpath);
  return CSA_OK;
}

int csa__link_test_skip_methods = 0;

/* rename without replacing: 0 done, else errno (EEXIST when to exists). */
static int csa__rename_noreplace(const char *from, const char *to) {
#if defined(__linux__) && defined(SYS_renameat2)
  /* RENAME_NOREPLACE = 1 (linux/fs.h); not every libc defines it. */
  if (csa__link_test_skip_methods < 1 &&
      syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1u) == 0)
    return 0;
  /* Only EEXIST is a verdict.  Old kernels say ENOSYS, file systems without
   * the flag EINVAL, and container seccomp profiles that predate renameat2
   * say EPERM: all of those just mean "use the next method". */
  if (csa__link_test_skip_methods < 1 && errno == EEXIST)
    return EEXIST;
#endif
  /* Hard-link the name (the symlink itself, flag 0 = do not follow). */
  if (csa__link_test_skip_methods < 2 && linkat(AT_FDCWD, from, AT_FDCWD, to, 0) == 0) {
    unlink(from);
    return 0;
  }
  if (csa__link_test_skip_methods < 2 && errno == EEXIST)
    return EEXIST;
  /* No hard links here (some FUSE / network file systems): check, then rename. */
  struct stat sb;
  if (lstat(to, &sb) == 0)
    return EEXIST;
  if (rename(from, to) != 0)
    return errno;
  return 0;
}

int csa__fs_rename(const char *from, const char *to, int replace) {
  int e = 0;
  if (replace) {
    if (rename(from, to) != 0)
      e = errno;
  } else {
    e = csa__rename_noreplace(from, to);
  }
  if (e == 0)
    return CSA_OK;
  if (e == EEXIST)
    return csa__error(CSA_EEXIST, "\"%s\" appeared while we were creating it", to);
  return csa__fs_fail(e, "cannot rename into", to);
}

int csa__fs_unlink(const char *path) {
  if (unlink(path) != 0)
    return csa__fs_fail(errno, "cannot remove", path);
  return CSA_OK;
}

int csa__fs_mkdir(const char *path) {
  if (mkdir(path, 0777) == 0)
    return CSA_OK;
  int e = errno;
  struct stat sb;
  if (e == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return CSA_OK;
  return csa__fs_fail(e, "cannot create directory", path);
}

int csa__fs_read_file(const char *path, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return csa__fs_fail(errno, "cannot open", path);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL) {
    close(fd);
    return csa__error(CSA_ENOMEM, "out of memory reading \"%s\"", path);
  }
  for (;;) {
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        close(fd);
        return csa__error(CSA_ENOMEM, "out of memory reading \"%s\"", path);
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return csa__fs_fail(e, "cannot read", path);
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return CSA_OK;
}

int csa__fs_create_excl(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    return csa__fs_fail(errno, "cannot create", path);
  close(fd);
  return CSA_OK;
}

int csa__fs_write_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0)
    return csa__fs_fail(errno, "cannot open for writing", path);
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      return csa__fs_fail(e, "cannot write", path);
    }
    done += (size_t)w;
  }
  /* The file is renamed over the real one next: flush it first so a crash
   * leaves the old or the new content, never an empty file. */
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    int e = errno;
    close(fd);
    return csa__fs_fail(e, "cannot flush", path);
  }
  if (close(fd) != 0)
    return csa__fs_fail(errno, "cannot close", path);
  return CSA_OK;
}

int csa__fs_age_seconds(const char *path, double *age) {
  struct stat sb;
  if (lstat(path, &sb) != 0)
    return csa__fs_fail(errno, "cannot inspect", path);
  *age = difftime(time(NULL), sb.st_mtime);
  return CSA_OK;
}

int csa__fs_list(const char *dir, void (*fn)(const char *name, void *ctx), void *ctx) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return csa__fs_fail(errno, "cannot list", dir);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      fn(e->d_name, ctx);
  }
  closedir(d);
  return CSA_OK;
}

void csa__fs_sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void csa__fs_unique(char *buf, size_t cap) {
  static unsigned long counter;
  /* The address of a thread-local differs between the threads of a process;
   * the counter between calls; the pid between processes; the clock bits
   * guard against pid reuse across pid namespaces sharing one directory. */
  static _Thread_local char tls_marker;
  unsigned long c = __atomic_fetch_add(&counter, 1ul, __ATOMIC_RELAXED);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long tid = (unsigned long)(uintptr_t)&tls_marker;
  tid ^= tid >> 17;
  snprintf(buf, cap, "%ld.%lx.%lu.%lx", (long)getpid(), tid & 0xffffffful, c,
           (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20));
}
