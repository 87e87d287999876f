/*
 * errors.h — status code -> Python exception, shared by every binding.
 */
#ifndef CSA_PYTHON_ERRORS_H
#define CSA_PYTHON_ERRORS_H

/* Py_LIMITED_API comes from the build (python_add_library USE_SABI 3.10). */
#include <Python.h>

/* Sets the Python exception the status table names for st, with the
 * thread's csa_errmsg() detail (or the generic message) as its text; returns
 * NULL so bindings can `return csa__py_raise(st);`. */
PyObject *csa__py_raise(int st);

/* The exception class (borrowed reference) a status maps to. */
PyObject *csa__py_exception_for(int st);

#endif
