/*
 * errors.c — one place maps every C status to its Python exception class,
 * generated from the status table in csa.h so the two never drift.
 */
#include "errors.h"

#include "csa/csa.h"

#define CSA__PYEXC_None PyExc_RuntimeError
#define CSA__PYEXC_ValueError PyExc_ValueError
#define CSA__PYEXC_TypeError PyExc_TypeError
#define CSA__PYEXC_MemoryError PyExc_MemoryError
#define CSA__PYEXC_NotImplementedError PyExc_NotImplementedError
#define CSA__PYEXC_RuntimeError PyExc_RuntimeError
#define CSA__PYEXC_OSError PyExc_OSError
#define CSA__PYEXC_FileExistsError PyExc_FileExistsError
#define CSA__PYEXC_FileNotFoundError PyExc_FileNotFoundError
#define CSA__PYEXC_PermissionError PyExc_PermissionError
#define CSA__PYEXC_IsADirectoryError PyExc_IsADirectoryError

static PyObject *csa__exc_for(int st) {
  switch (st) {
#define CSA__EXC_CASE(name, val, pyexc, msg) \
  case CSA_##name:                           \
    return CSA__PYEXC_##pyexc;
    CSA_STATUS_MAP(CSA__EXC_CASE)
#undef CSA__EXC_CASE
  default:
    return PyExc_RuntimeError;
  }
}

PyObject *csa__py_raise(int st) {
  const char *detail = csa_errmsg();
  if (detail == NULL || detail[0] == '\0')
    detail = csa_strerror(st);
  PyErr_Format(csa__exc_for(st), "%s [%s]", detail, csa_status_name(st));
  return NULL;
}
