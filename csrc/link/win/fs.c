/*
 * win/fs.c — the file-system primitives of setup_link on Windows.
 *
 * Paths arrive as UTF-8 and are converted to UTF-16 for the W functions, so
 * non-ASCII user names in C:\Users\<name>\ComfyUI work whatever the ANSI code
 * page is.
 *
 * Symlinks: CreateSymbolicLinkW needs SeCreateSymbolicLinkPrivilege unless
 * Developer Mode is on *and* the caller passes
 * SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE; Windows before 10 (1703)
 * rejects that flag with ERROR_INVALID_PARAMETER, so we retry without it
 * (libuv's fs__symlink does the same).  ERROR_PRIVILEGE_NOT_HELD (1314),
 * access denied, write-protected media and file systems without links (FAT,
 * some network shares) all mean "links are not possible here": CSA_EPERM,
 * which setup_link turns into CSA_LINK_NOT_PERMITTED.
 *
 * Renames: MoveFileExW without MOVEFILE_REPLACE_EXISTING fails with
 * ERROR_ALREADY_EXISTS instead of replacing — the no-clobber install — and
 * with it replaces an existing link atomically (one NTFS rename).
 */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600
#endif
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <winioctl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "../link_internal.h"

#ifndef SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE
#define SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE 0x2
#endif
#ifndef IO_REPARSE_TAG_SYMLINK
#define IO_REPARSE_TAG_SYMLINK 0xA000000CL
#endif
#ifndef MAXIMUM_REPARSE_DATA_BUFFER_SIZE
#define MAXIMUM_REPARSE_DATA_BUFFER_SIZE (16 * 1024)
#endif

/* The symbolic-link arm of REPARSE_DATA_BUFFER (ntifs.h, which user-mode
 * MinGW and MSVC headers do not ship).  Offsets and lengths are in bytes
 * into PathBuffer. */
typedef struct csa__reparse_symlink {
  ULONG tag;
  USHORT data_length;
  USHORT reserved;
  USHORT subst_offset;
  USHORT subst_length;
  USHORT print_offset;
  USHORT print_length;
  ULONG flags;
  WCHAR path[1];
} csa__reparse_symlink;

/* ---- strings ------------------------------------------------------------- */

/* UTF-8 -> malloc'd UTF-16, '/' turned into '\\' (the W functions accept
 * both, but GetFinalPathNameByHandle and link texts use '\\'). */
static int csa__wide(const char *s, wchar_t **out) {
  *out = NULL;
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0)
    return csa__error(CSA_EPATH, "path \"%s\" is not valid UTF-8", s);
  wchar_t *w = (wchar_t *)malloc((size_t)n * sizeof(wchar_t));
  if (w == NULL)
    return csa__error(CSA_ENOMEM, "out of memory converting \"%s\"", s);
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  for (int i = 0; i < n; i++)
    if (w[i] == L'/')
      w[i] = L'\\';
  *out = w;
  return CSA_OK;
}

/* UTF-16 (n chars, or -1 for NUL-terminated) -> UTF-8 in out. */
static int csa__narrow(const wchar_t *w, int n, char *out, size_t cap, const char *what) {
  int need = WideCharToMultiByte(CP_UTF8, 0, w, n, NULL, 0, NULL, NULL);
  if (need <= 0 || (size_t)need + 1 > cap || cap > 0x7fffffff)
    return csa__error(CSA_EPATH, "%s is longer than %d bytes", what, (int)(cap - 1));
  int got = WideCharToMultiByte(CP_UTF8, 0, w, n, out, (int)cap, NULL, NULL);
  if (got <= 0)
    return csa__error(CSA_EPATH, "%s cannot be converted to UTF-8", what);
  if (n >= 0)
    out[got] = '\0';
  return CSA_OK;
}

/* ---- errors -------------------------------------------------------------- */

static int csa__status_of(DWORD e) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_BAD_NETPATH:
  case ERROR_BAD_NET_NAME:
  case ERROR_INVALID_DRIVE:
  case ERROR_DIRECTORY:
  case ERROR_NOT_READY:
    return CSA_ENOENT;
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD: /* 1314: no SeCreateSymbolicLinkPrivilege */
  case ERROR_WRITE_PROTECT:
  case ERROR_NOT_SUPPORTED:
  case ERROR_INVALID_FUNCTION: /* file systems without reparse points */
  case ERROR_CANT_RESOLVE_FILENAME:
    return CSA_EPERM;
  case ERROR_ALREADY_EXISTS:
  case ERROR_FILE_EXISTS:
    return CSA_EEXIST;
  case ERROR_FILENAME_EXCED_RANGE:
  case ERROR_INVALID_NAME:
  case ERROR_CANT_ACCESS_FILE:
    return CSA_EPATH;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    return CSA_ENOMEM;
  default:
    return CSA_EIO;
  }
}

static int csa__fs_fail(DWORD e, const char *what, const char *path) {
  wchar_t wmsg[256];
  char msg[512];
  DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                           0, wmsg, (DWORD)(sizeof wmsg / sizeof wmsg[0]), NULL);
  while (n > 0 && (wmsg[n - 1] == L'\r' || wmsg[n - 1] == L'\n' || wmsg[n - 1] == L'.'))
    n--;
  wmsg[n] = L'\0';
  if (n == 0 || csa__narrow(wmsg, -1, msg, sizeof msg, "message") != CSA_OK)
    snprintf(msg, sizeof msg, "system error");
  return csa__error(csa__status_of(e), "%s \"%s\": %s (WinError %lu)", what, path, msg,
                    (unsigned long)e);
}

/* Opens path for attribute queries.  follow = 0 opens a link itself. */
static HANDLE csa__open_meta(const wchar_t *w, int follow) {
  DWORD flags = FILE_FLAG_BACKUP_SEMANTICS; /* needed to open directories */
  if (!follow)
    flags |= FILE_FLAG_OPEN_REPARSE_POINT;
  return CreateFileW(w, FILE_READ_ATTRIBUTES,
                     FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                     OPEN_EXISTING, flags, NULL);
}

/* ---- primitives ---------------------------------------------------------- */

int csa__fs_kind(const char *path, int *kind) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  DWORD attr = GetFileAttributesW(w);
  if (attr == INVALID_FILE_ATTRIBUTES) {
    DWORD e = GetLastError();
    free(w);
    if (csa__status_of(e) == CSA_ENOENT) {
      *kind = CSA__FS_ABSENT;
      return CSA_OK;
    }
    return csa__fs_fail(e, "cannot inspect", path);
  }
  if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
    /* Only true symlinks count as links; junctions are directories to us,
     * and other reparse points (dedup, cloud placeholders, WSL links) are
     * whatever their attributes say. */
    HANDLE h = csa__open_meta(w, 0);
    FILE_ATTRIBUTE_TAG_INFO tag;
    int is_link = 0;
    if (h != INVALID_HANDLE_VALUE) {
      if (GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof tag))
        is_link = tag.ReparseTag == IO_REPARSE_TAG_SYMLINK;
      CloseHandle(h);
    }
    if (is_link) {
      free(w);
      *kind = CSA__FS_LINK;
      return CSA_OK;
    }
  }
  free(w);
  *kind = (attr & FILE_ATTRIBUTE_DIRECTORY) ? CSA__FS_DIR
          : (attr & FILE_ATTRIBUTE_DEVICE)  ? CSA__FS_OTHER
                                            : CSA__FS_FILE;
  return CSA_OK;
}

int csa__fs_realpath(const char *path, char *out, size_t cap) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  HANDLE h = csa__open_meta(w, 1);
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return csa__fs_fail(GetLastError(), "cannot resolve", path);
  DWORD n = GetFinalPathNameByHandleW(h, NULL, 0, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
  wchar_t *buf = n ? (wchar_t *)malloc(((size_t)n + 1) * sizeof(wchar_t)) : NULL;
  if (buf == NULL) {
    DWORD e = GetLastError();
    CloseHandle(h);
    return n ? csa__error(CSA_ENOMEM, "out of memory") : csa__fs_fail(e, "cannot resolve", path);
  }
  DWORD got = GetFinalPathNameByHandleW(h, buf, n + 1, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
  DWORD e = GetLastError();
  CloseHandle(h);
  if (got == 0 || got > n) {
    free(buf);
    return csa__fs_fail(e, "cannot resolve", path);
  }
  /* "\\?\C:\x" -> "C:\x";  "\\?\UNC\server\share" -> "\\server\share". */
  wchar_t *p = buf;
  if (wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0) {
    p += 6;
    p[0] = L'\\';
  } else if (wcsncmp(p, L"\\\\?\\", 4) == 0) {
    p += 4;
  }
  st = csa__narrow(p, -1, out, cap, "resolved path");
  free(buf);
  return st;
}

int csa__fs_readlink(const char *path, char *out, size_t cap) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  HANDLE h = csa__open_meta(w, 0);
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return csa__fs_fail(GetLastError(), "cannot read link", path);
  union {
    csa__reparse_symlink rp;
    unsigned char raw[MAXIMUM_REPARSE_DATA_BUFFER_SIZE];
  } *buf = malloc(sizeof *buf);
  if (buf == NULL) {
    CloseHandle(h);
    return csa__error(CSA_ENOMEM, "out of memory");
  }
  DWORD got = 0;
  BOOL ok = DeviceIoControl(h, FSCTL_GET_REPARSE_POINT, NULL, 0, buf, sizeof *buf, &got, NULL);
  DWORD e = GetLastError();
  CloseHandle(h);
  if (!ok) {
    free(buf);
    return csa__fs_fail(e, "cannot read link", path);
  }
  const csa__reparse_symlink *rp = &buf->rp;
  size_t header = offsetof(csa__reparse_symlink, path);
  if (got < header || rp->tag != IO_REPARSE_TAG_SYMLINK) {
    free(buf);
    return csa__error(CSA_EIO, "\"%s\" is not a symbolic link", path);
  }
  /* The print name is what the user wrote; the substitute name is the NT
   * form ("\??\C:\..."), used when there is no print name. */
  USHORT off = rp->print_offset, len = rp->print_length;
  if (len == 0) {
    off = rp->subst_offset;
    len = rp->subst_length;
  }
  if (header + (size_t)off + len > got) {
    free(buf);
    return csa__error(CSA_EIO, "link \"%s\" has malformed reparse data", path);
  }
  const wchar_t *name = (const wchar_t *)((const unsigned char *)rp->path + off);
  int nchars = len / (int)sizeof(wchar_t);
  if (nchars >= 4 && wcsncmp(name, L"\\??\\", 4) == 0) {
    name += 4;
    nchars -= 4;
  }
  if (nchars == 0) {
    out[0] = '\0';
    st = CSA_OK;
  } else {
    st = csa__narrow(name, nchars, out, cap, "link text");
  }
  free(buf);
  return st;
}

static int csa__file_id(const char *path, BY_HANDLE_FILE_INFORMATION *info) {
  wchar_t *w;
  if (csa__wide(path, &w) != CSA_OK)
    return 0;
  HANDLE h = csa__open_meta(w, 1);
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return 0;
  BOOL ok = GetFileInformationByHandle(h, info);
  CloseHandle(h);
  return ok != 0;
}

int csa__fs_same_file(const char *a, const char *b, int *same) {
  BY_HANDLE_FILE_INFORMATION ia, ib;
  *same = 0;
  if (!csa__file_id(a, &ia))
    return CSA_OK; /* dangling or unreadable: not the source */
  if (!csa__file_id(b, &ib))
    return csa__fs_fail(GetLastError(), "cannot inspect", b);
  *same = ia.dwVolumeSerialNumber == ib.dwVolumeSerialNumber &&
          ia.nFileIndexHigh == ib.nFileIndexHigh && ia.nFileIndexLow == ib.nFileIndexLow;
  return CSA_OK;
}

int csa__fs_symlink(const char *target, const char *linkpath) {
  wchar_t *wt, *wl;
  int st = csa__wide(target, &wt);
  if (st != CSA_OK)
    return st;
  st = csa__wide(linkpath, &wl);
  if (st != CSA_OK) {
    free(wt);
    return st;
  }
  BOOLEAN ok = CreateSymbolicLinkW(wl, wt, SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE);
  DWORD e = ok ? 0 : GetLastError();
  if (!ok && e == ERROR_INVALID_PARAMETER) {
    /* Before Windows 10 1703 the unprivileged flag is unknown. */
    ok = CreateSymbolicLinkW(wl, wt, 0);
    e = ok ? 0 : GetLastError();
  }
  free(wt);
  free(wl);
  if (!ok)
    return csa__fs_fail(e, "cannot create symlink", linkpath);
  return CSA_OK;
}

int csa__fs_rename(const char *from, const char *to, int replace) {
  wchar_t *wf, *wt;
  int st = csa__wide(from, &wf);
  if (st != CSA_OK)
    return st;
  st = csa__wide(to, &wt);
  if (st != CSA_OK) {
    free(wf);
    return st;
  }
  BOOL ok = MoveFileExW(wf, wt, replace ? MOVEFILE_REPLACE_EXISTING : 0);
  DWORD e = ok ? 0 : GetLastError();
  if (!ok && replace && e == ERROR_ACCESS_DENIED) {
    /* MoveFileEx cannot replace a *directory* symlink (one made with
     * SYMBOLIC_LINK_FLAG_DIRECTORY) by a file: remove the link (not what it
     * points to) and move in without replacing.  Not atomic, but only for
     * this odd leftover; a real directory is never removed (RemoveDirectory
     * fails on a non-empty one, and the caller never gets here for one). */
    DWORD attr = GetFileAttributesW(wt);
    if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY) &&
        (attr & FILE_ATTRIBUTE_REPARSE_POINT) && RemoveDirectoryW(wt)) {
      ok = MoveFileExW(wf, wt, 0);
      e = ok ? 0 : GetLastError();
    }
  }
  free(wf);
  free(wt);
  if (ok)
    return CSA_OK;
  if (!replace && csa__status_of(e) == CSA_EEXIST)
    return csa__error(CSA_EEXIST, "\"%s\" appeared while we were creating it", to);
  return csa__fs_fail(e, "cannot rename into", to);
}

int csa__fs_unlink(const char *path) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  BOOL ok = DeleteFileW(w);
  DWORD e = ok ? 0 : GetLastError();
  free(w);
  return ok ? CSA_OK : csa__fs_fail(e, "cannot remove", path);
}

int csa__fs_mkdir(const char *path) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  BOOL ok = CreateDirectoryW(w, NULL);
  DWORD e = ok ? 0 : GetLastError();
  DWORD attr = ok ? 0 : GetFileAttributesW(w);
  free(w);
  if (ok || (e == ERROR_ALREADY_EXISTS && attr != INVALID_FILE_ATTRIBUTES &&
             (attr & FILE_ATTRIBUTE_DIRECTORY)))
    return CSA_OK;
  return csa__fs_fail(e, "cannot create directory", path);
}

int csa__fs_read_file(const char *path, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return csa__fs_fail(GetLastError(), "cannot open", path);
  size_t cap = 4096, n = 0;
  char *buf = (char *)malloc(cap);
  for (;;) {
    if (buf == NULL) {
      CloseHandle(h);
      return csa__error(CSA_ENOMEM, "out of memory reading \"%s\"", path);
    }
    if (n + 1 >= cap) {
      char *nb = (char *)realloc(buf, cap * 2);
      if (nb == NULL)
        free(buf);
      buf = nb;
      cap *= 2;
      continue;
    }
    DWORD want = (DWORD)CSA_MIN(cap - n - 1, (size_t)1 << 20), got = 0;
    if (!ReadFile(h, buf + n, want, &got, NULL)) {
      DWORD e = GetLastError();
      free(buf);
      CloseHandle(h);
      return csa__fs_fail(e, "cannot read", path);
    }
    if (got == 0)
      break;
    n += got;
  }
  CloseHandle(h);
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return CSA_OK;
}

int csa__fs_create_excl(const char *path) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  HANDLE h = CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return csa__fs_fail(e, "cannot create", path);
  CloseHandle(h);
  return CSA_OK;
}

int csa__fs_write_file(const char *path, const char *data, size_t len) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  HANDLE h = CreateFileW(w, GENERIC_WRITE, 0, NULL, TRUNCATE_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return csa__fs_fail(e, "cannot open for writing", path);
  size_t done = 0;
  while (done < len) {
    DWORD chunk = (DWORD)CSA_MIN(len - done, (size_t)1 << 20), wrote = 0;
    if (!WriteFile(h, data + done, chunk, &wrote, NULL)) {
      e = GetLastError();
      CloseHandle(h);
      return csa__fs_fail(e, "cannot write", path);
    }
    done += wrote;
  }
  /* Renamed over the real file next: make the content durable first. */
  if (!FlushFileBuffers(h)) {
    e = GetLastError();
    CloseHandle(h);
    return csa__fs_fail(e, "cannot flush", path);
  }
  CloseHandle(h);
  return CSA_OK;
}

int csa__fs_list(const char *dir, void (*fn)(const char *name, void *ctx), void *ctx) {
  char pattern[CSA_LINK_PATH_MAX];
  int st = csa__path_join(pattern, sizeof pattern, dir, "*");
  if (st != CSA_OK)
    return st;
  wchar_t *w;
  st = csa__wide(pattern, &w);
  if (st != CSA_OK)
    return st;
  WIN32_FIND_DATAW fd;
  HANDLE h = FindFirstFileW(w, &fd);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return e == ERROR_FILE_NOT_FOUND ? CSA_OK : csa__fs_fail(e, "cannot list", dir);
  do {
    char name[CSA_LINK_PATH_MAX];
    if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
      continue;
    if (csa__narrow(fd.cFileName, -1, name, sizeof name, "file name") == CSA_OK)
      fn(name, ctx);
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  return CSA_OK;
}

void csa__fs_sleep_ms(int ms) { Sleep((DWORD)ms); }

int csa__fs_age_seconds(const char *path, double *age) {
  wchar_t *w;
  int st = csa__wide(path, &w);
  if (st != CSA_OK)
    return st;
  WIN32_FILE_ATTRIBUTE_DATA fa;
  BOOL ok = GetFileAttributesExW(w, GetFileExInfoStandard, &fa);
  DWORD e = ok ? 0 : GetLastError();
  free(w);
  if (!ok)
    return csa__fs_fail(e, "cannot inspect", path);
  FILETIME now;
  GetSystemTimeAsFileTime(&now);
  ULARGE_INTEGER a, b;
  a.LowPart = fa.ftLastWriteTime.dwLowDateTime;
  a.HighPart = fa.ftLastWriteTime.dwHighDateTime;
  b.LowPart = now.dwLowDateTime;
  b.HighPart = now.dwHighDateTime;
  /* FILETIME counts 100 ns ticks. */
  *age = ((double)b.QuadPart - (double)a.QuadPart) / 1e7;
  return CSA_OK;
}

void csa__fs_unique(char *buf, size_t cap) {
  static volatile LONG counter;
  LONG c = InterlockedIncrement(&counter);
  LARGE_INTEGER t;
  QueryPerformanceCounter(&t);
  snprintf(buf, cap, "%lu.%lu.%ld.%llx", (unsigned long)GetCurrentProcessId(),
           (unsigned long)GetCurrentThreadId(), (long)c,
           (unsigned long long)(t.QuadPart & 0xffffffffffULL));
}
