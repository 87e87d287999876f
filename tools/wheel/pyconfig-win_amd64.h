/* pyconfig.h for building a limited-API (abi3) extension for 64-bit Windows
 * with a GCC/Clang-style compiler (zig cc, mingw-w64) on a non-Windows host.
 *
 * tools/build-wheels copies the building interpreter's Include/ directory
 * (CPython >= 3.10; only the limited API is used, which is the same on every
 * platform) and puts this file in place of its pyconfig.h, which describes
 * the host (Linux) instead of the target.  It defines only what the headers
 * consult under Py_LIMITED_API:
 *   - that this is Windows (MS_WINDOWS), so the headers take their Windows
 *     branches (wide-char path helpers, PyErr_SetFromWindowsErr, ...);
 *   - that Python lives in a DLL (Py_ENABLE_SHARED + HAVE_DECLSPEC_DLL), so
 *     every API function and object is declared __declspec(dllimport): the
 *     extension then reaches it through __imp_<name>, which the import library
 *     of python3.dll provides;
 *   - the sizes of the LLP64 data model (long is 32 bits on Windows).
 */
#ifndef CSA_PYCONFIG_WIN_AMD64_H
#define CSA_PYCONFIG_WIN_AMD64_H

#if !defined(_WIN64)
#error "pyconfig-win_amd64.h is for 64-bit Windows targets"
#endif

#define MS_WIN32
#define MS_WIN64
#define MS_WINDOWS
#define NT_THREADS
#define WITH_THREAD
#define WITH_DOC_STRINGS 1

#define Py_ENABLE_SHARED 1
#define HAVE_DECLSPEC_DLL

#define SIZEOF_SHORT 2
#define SIZEOF_INT 4
#define SIZEOF_LONG 4
#define SIZEOF_LONG_LONG 8
#define SIZEOF_VOID_P 8
#define SIZEOF_SIZE_T 8
#define SIZEOF_TIME_T 8
#define SIZEOF_OFF_T 4
#define SIZEOF_FPOS_T 8
#define SIZEOF_WCHAR_T 2
#define SIZEOF_FLOAT 4
#define SIZEOF_DOUBLE 8
#define SIZEOF__BOOL 1
#define SIZEOF_HKEY 8

/* Py_ssize_t is 64 bits; pyport.h derives it from intptr_t when
 * SIZEOF_VOID_P == SIZEOF_SIZE_T and neither HAVE_SSIZE_T nor HAVE_PY_SSIZE_T
 * is defined. */
#define HAVE_STDDEF_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_LONG_LONG 1
#define HAVE_WCHAR_H 1

#endif
