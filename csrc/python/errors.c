/*
 * errors.c — one place maps every C status to its Python exception class.
 *
 * The public header speaks C only (csa.h: name, value, message); which
 * Python class a status becomes is a fact about this binding, so the table
 * lives here.  A status missing from it is RuntimeError, and a test walks
 * every code of csa.h's table through it.
 */
#include "errors.h"

#include "csa/csa.h"

/* status -> exception class; the rest are RuntimeError. */
static PyObject *csa__exc_for(int st) {
  switch (st) {
  case CSA_EINVAL:
  case CSA_ESHAPE:
  case CSA_EDEVICE:
  case CSA_ESTRIDE:
  case CSA_ECUSEQ:
  case CSA_EPATH:
    return PyExc_ValueError;
  case CSA_EDTYPE:
    return PyExc_TypeError;
  case CSA_ENOMEM:
    return PyExc_MemoryError;
  case CSA_ENOTSUP:
    return PyExc_NotImplementedError;
  case CSA_EIO:
    return PyExc_OSError;
  case CSA_EEXIST:
    return PyExc_FileExistsError;
  case CSA_ENOENT:
    return PyExc_FileNotFoundError;
  case CSA_EPERM:
    return PyExc_PermissionError;
  case CSA_EISDIR:
    return PyExc_IsADirectoryError;
  default: /* CSA_ECUDA, CSA_EINTERNAL, unknown codes */
    return PyExc_RuntimeError;
  }
}

PyObject *csa__py_exception_for(int st) { return csa__exc_for(st); }

PyObject *csa__py_raise(int st) {
  const char *detail = csa_errmsg();
  if (detail == NULL || detail[0] == '\0')
    detail = csa_strerror(st);
  PyErr_Format(csa__exc_for(st), "%s [%s]", detail, csa_status_name(st));
  return NULL;
}
