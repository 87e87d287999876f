/*
 * dispatch_binding.c — Python face of the backend selection in
 * csrc/core/dispatch.c.
 *
 * The facts arrive as keyword arguments named like the fields of
 * csa__dispatch_facts (Python has already read them off the tensors and the
 * environment); the Python side caches the answer per input signature.
 */
#include <string.h>

#include "dispatch_binding.h"

#include "core/dispatch.h"

/* dispatch_backends() -> tuple of backend names, indexed by backend id. */
PyObject *csa__py_dispatch_backends(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  PyObject *t = PyTuple_New(CSA_BACKEND_COUNT);
  if (t == NULL)
    return NULL;
  for (int b = 0; b < CSA_BACKEND_COUNT; b++) {
    PyObject *s = PyUnicode_FromString(csa__backend_caps_get(b)->name);
    if (s == NULL || PyTuple_SetItem(t, b, s) < 0) {
      Py_DECREF(t);
      return NULL;
    }
  }
  return t;
}

int csa__add_backend_enum(PyObject *m) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return -1;
  for (int b = 0; b < CSA_BACKEND_COUNT; b++) {
    PyObject *x = PyLong_FromLong(b);
    if (x == NULL || PyDict_SetItemString(d, csa__backend_caps_get(b)->name, x) < 0) {
      Py_XDECREF(x);
      Py_DECREF(d);
      return -1;
    }
    Py_DECREF(x);
  }
  if (PyModule_AddObject(m, "BACKEND", d) < 0) {
    Py_DECREF(d);
    return -1;
  }
  return 0;
}

static PyObject *csa__dtype_list(unsigned mask) {
  static const int order[] = {CSA_FLOAT32, CSA_FLOAT16, CSA_BFLOAT16}; /* the float dtypes */
  PyObject *l = PyList_New(0);
  for (int i = 0; l != NULL && i < 3; i++) {
    if (!(mask & (1u << order[i])))
      continue;
    PyObject *s = PyUnicode_FromString(csa_dtype_name(order[i]));
    if (s == NULL || PyList_Append(l, s) < 0) {
      Py_XDECREF(s);
      Py_DECREF(l);
      return NULL;
    }
    Py_DECREF(s);
  }
  return l;
}

/* dispatch_caps(b) -> dict: the constraint row of backend b, for
 * list_backends() and the command line. */
PyObject *csa__py_dispatch_caps(PyObject *self, PyObject *args) {
  (void)self;
  int b;
  if (!PyArg_ParseTuple(args, "i:dispatch_caps", &b))
    return NULL;
  const csa__backend_caps *c = csa__backend_caps_get(b);
  if (c == NULL) {
    PyErr_Format(PyExc_ValueError, "backend id must be in [0, %d), got %d", CSA_BACKEND_COUNT, b);
    return NULL;
  }
  PyObject *devices = PyList_New(0);
  if (devices == NULL)
    return NULL;
  static const int devs[] = {
#define CSA__DEV_VAL(n, val, str) val,
      CSA_DEVICE_MAP(CSA__DEV_VAL)
#undef CSA__DEV_VAL
  };
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
    if (!(c->devices & (1u << devs[i])))
      continue;
    PyObject *s = PyUnicode_FromString(csa_device_name(devs[i]));
    if (s == NULL || PyList_Append(devices, s) < 0) {
      Py_XDECREF(s);
      Py_DECREF(devices);
      return NULL;
    }
    Py_DECREF(s);
  }
  PyObject *dtypes = csa__dtype_list(c->dtypes);
  PyObject *cast = csa__dtype_list(c->dtypes_cast);
  PyObject *dims = PyList_New(0);
  for (const int *d = c->head_dims; dims != NULL && d != NULL && *d; d++) {
    PyObject *x = PyLong_FromLong(*d);
    if (x == NULL || PyList_Append(dims, x) < 0) {
      Py_XDECREF(x);
      Py_CLEAR(dims);
    }
    Py_XDECREF(x);
  }
  const char *causal = c->causal == CSA_CAUSAL_BOTTOM_RIGHT ? "bottom-right"
                       : c->causal == CSA_CAUSAL_TOP_LEFT   ? "top-left (L_q == L_kv only)"
                                                            : "no";
  PyObject *d = NULL;
  if (dtypes != NULL && cast != NULL && dims != NULL)
    d = Py_BuildValue("{s:s,s:O,s:i,s:O,s:O,s:i,s:O,s:i,s:i,s:O,s:O,s:s,s:O,s:O,s:O,s:s}",
                      "name", c->name, "devices", devices, "min_sm", c->min_sm, "dtypes", dtypes,
                      "dtypes_cast_bf16", cast, "max_head_dim", c->max_head_dim, "head_dims",
                      dims, "gpu_half_head_dim_multiple", c->gpu_half_head_dim_multiple,
                      "noncausal_min_major", c->noncausal_min_major, "dv_differs", c->dv_differs ? Py_True : Py_False, "gqa",
                      c->gqa ? Py_True : Py_False, "causal", causal, "lse",
                      c->lse ? Py_True : Py_False, "autograd", c->autograd ? Py_True : Py_False,
                      "lossy", c->lossy ? Py_True : Py_False, "library", c->library);
  Py_DECREF(devices);
  Py_XDECREF(dtypes);
  Py_XDECREF(cast);
  Py_XDECREF(dims);
  return d;
}

/* dispatch_select(*, device_type, sm=0, dtype, head_dim, head_dim_v, heads,
 *                 heads_kv, causal=False, lengths_equal=False, lse=False,
 *                 grad=False, exact_only=False, available, disabled=0,
 *                 prefer=-1, forced=-1, native_cuda=False,
 *                 native_cuda_why=None, lib_major=(), rows=0)
 *   -> (order: tuple of backend ids, reasons: tuple of str by id, policy: str)
 * Keywords are the fields of csa__dispatch_facts; lib_major is a sequence of
 * ints indexed by backend id (missing entries: unknown). */
PyObject *csa__py_dispatch_select(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"device_type", "sm", "dtype", "head_dim", "head_dim_v", "heads",
                           "heads_kv", "causal", "lengths_equal", "lse", "grad", "exact_only",
                           "available", "disabled", "prefer", "forced", "native_cuda",
                           "native_cuda_why", "lib_major", "rows", NULL};
  csa__dispatch_facts f;
  memset(&f, 0, sizeof f);
  f.prefer = f.forced = -1;
  f.device_type = f.dtype = -1;
  long long d = 0, dv = 0, h = 0, hkv = 0;
  PyObject *lib_major = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$iiiLLLLpppppIIiipzOi:dispatch_select", kwlist,
                                   &f.device_type, &f.sm, &f.dtype, &d, &dv, &h, &hkv, &f.causal,
                                   &f.lengths_equal, &f.lse, &f.grad, &f.exact_only, &f.available,
                                   &f.disabled, &f.prefer, &f.forced, &f.native_cuda,
                                   &f.native_cuda_why, &lib_major, &f.rows))
    return NULL;
  if (f.device_type < 0 || f.dtype < 0) {
    PyErr_SetString(PyExc_TypeError, "dispatch_select() needs device_type= and dtype=");
    return NULL;
  }
  f.head_dim = d;
  f.head_dim_v = dv;
  f.heads = h;
  f.heads_kv = hkv;
  if (lib_major != NULL && lib_major != Py_None) {
    Py_ssize_t n = PySequence_Size(lib_major);
    if (n < 0)
      return NULL;
    for (Py_ssize_t i = 0; i < n && i < CSA_BACKEND_COUNT; i++) {
      PyObject *item = PySequence_GetItem(lib_major, i);
      long x = item ? PyLong_AsLong(item) : -1;
      Py_XDECREF(item);
      if (x == -1 && PyErr_Occurred())
        return NULL;
      f.lib_major[i] = (int)x;
    }
  }
  csa__dispatch_result r;
  int st = csa__dispatch_select(&f, &r);
  if (st != CSA_OK)
    return csa__py_raise(st);
  PyObject *order = PyTuple_New(r.n);
  PyObject *reasons = PyTuple_New(CSA_BACKEND_COUNT);
  if (order == NULL || reasons == NULL)
    goto fail;
  for (int i = 0; i < r.n; i++) {
    PyObject *x = PyLong_FromLong(r.order[i]);
    if (x == NULL || PyTuple_SetItem(order, i, x) < 0)
      goto fail;
  }
  for (int b = 0; b < CSA_BACKEND_COUNT; b++) {
    PyObject *s = PyUnicode_FromString(r.reason[b]);
    if (s == NULL || PyTuple_SetItem(reasons, b, s) < 0)
      goto fail;
  }
  return Py_BuildValue("(NNs)", order, reasons, r.policy);
fail:
  Py_XDECREF(order);
  Py_XDECREF(reasons);
  return NULL;
}

/* dispatch_rows(batch, total_q) -> csa__rows_class of a call with B = batch
 * sequences and T_q = total_q query rows (what the placement rules read). */
PyObject *csa__py_dispatch_rows(PyObject *self, PyObject *args) {
  (void)self;
  long long b = 0, t = 0;
  if (!PyArg_ParseTuple(args, "LL:dispatch_rows", &b, &t))
    return NULL;
  return PyLong_FromLong(csa__dispatch_rows(b, t));
}
