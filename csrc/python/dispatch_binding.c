/*
 * dispatch_binding.c — Python face of the backend selection in
 * csrc/core/dispatch.c.
 *
 * The facts arrive as plain integers (Python has already read them off the
 * tensors and the environment), so one call costs a tuple parse and the
 * walk itself; the Python side caches the answer per input signature.
 */
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

static PyObject *csa__dtype_list(unsigned mask) {
  static const int order[] = {CSA_FLOAT32, CSA_FLOAT16, CSA_BFLOAT16};
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
  if (c->devices & (1u << CSA_DEVICE_CPU)) {
    PyObject *s = PyUnicode_FromString("cpu");
    if (s == NULL || PyList_Append(devices, s) < 0) {
      Py_XDECREF(s);
      Py_DECREF(devices);
      return NULL;
    }
    Py_DECREF(s);
  }
  if (c->devices & (1u << CSA_DEVICE_CUDA)) {
    PyObject *s = PyUnicode_FromString("cuda");
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
    d = Py_BuildValue("{s:s,s:O,s:i,s:O,s:O,s:i,s:O,s:O,s:O,s:s,s:O,s:O,s:O,s:s}", "name",
                      c->name, "devices", devices, "min_sm", c->min_sm, "dtypes", dtypes,
                      "dtypes_cast_bf16", cast, "max_head_dim", c->max_head_dim, "head_dims",
                      dims, "dv_differs", c->dv_differs ? Py_True : Py_False, "gqa",
                      c->gqa ? Py_True : Py_False, "causal", causal, "lse",
                      c->lse ? Py_True : Py_False, "autograd", c->autograd ? Py_True : Py_False,
                      "lossy", c->lossy ? Py_True : Py_False, "library", c->library);
  Py_DECREF(devices);
  Py_XDECREF(dtypes);
  Py_XDECREF(cast);
  Py_XDECREF(dims);
  return d;
}

/* dispatch_select(device_type, sm, dtype, D, D_v, H, H_kv, causal,
 *                 lengths_equal, lse, grad, exact_only, available, disabled,
 *                 prefer, forced, native_cuda)
 *   -> (order: tuple of backend ids, reasons: tuple of str by id, policy: str) */
PyObject *csa__py_dispatch_select(PyObject *self, PyObject *args) {
  (void)self;
  csa__dispatch_facts f;
  long long d, dv, h, hkv;
  if (!PyArg_ParseTuple(args, "iiiLLLLiiiiiIIiii:dispatch_select", &f.device_type, &f.sm,
                        &f.dtype, &d, &dv, &h, &hkv, &f.causal, &f.lengths_equal, &f.lse,
                        &f.grad, &f.exact_only, &f.available, &f.disabled, &f.prefer, &f.forced,
                        &f.native_cuda))
    return NULL;
  f.head_dim = d;
  f.head_dim_v = dv;
  f.heads = h;
  f.heads_kv = hkv;
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
