/*
 * dispatch_binding.h — the backend-selection functions of the extension
 * module (dispatch_binding.c), for module.c's method table.
 */
#ifndef CSA_PYTHON_DISPATCH_BINDING_H
#define CSA_PYTHON_DISPATCH_BINDING_H

#include "errors.h"

PyObject *csa__py_dispatch_backends(PyObject *self, PyObject *noargs);
PyObject *csa__py_dispatch_caps(PyObject *self, PyObject *args);
PyObject *csa__py_dispatch_select(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *csa__py_dispatch_rows(PyObject *self, PyObject *args);
/* Adds BACKEND = {name: id} (the C backend list, in priority-table order). */
int csa__add_backend_enum(PyObject *m);

#endif
