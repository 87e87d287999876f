/*
 * link_binding.h — setup_link_ex of the extension module (link_binding.c),
 * for module.c's method table.
 */
#ifndef CSA_PYTHON_LINK_BINDING_H
#define CSA_PYTHON_LINK_BINDING_H

#include "errors.h"

/* setup_link_ex(source, comfy_dir or None, comfy_relative) -> dict */
PyObject *csa__py_setup_link_ex(PyObject *self, PyObject *args, PyObject *kwargs);

#endif
