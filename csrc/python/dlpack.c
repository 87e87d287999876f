/*
 * dlpack.c — turn a Python tensor into a borrowed csa_tensor view.
 *
 * Protocol (DLPack / Python array API): obj.__dlpack_device__() says where the
 * memory lives; obj.__dlpack__(stream=..., max_version=(1, 0)) returns a
 * capsule named "dltensor_versioned" (or "dltensor" from older producers).  We
 * only borrow: the capsule keeps its name, so its own destructor frees the
 * descriptor when our reference goes, and the tensor itself is kept alive by
 * the caller's Python reference for the whole call.
 */
#include <string.h>

#include "dlpack.h"

static int csa__dtype_from_dl(csa__dl_dtype t) {
  if (t.lanes != 1)
    return CSA_DTYPE_INVALID;
  if (t.code == 2 && t.bits == 32) return CSA_FLOAT32;
  if (t.code == 2 && t.bits == 16) return CSA_FLOAT16;
  if (t.code == 4 && t.bits == 16) return CSA_BFLOAT16;
  if (t.code == 0 && t.bits == 32) return CSA_INT32;
  if (t.code == 2 && t.bits == 64) return CSA_FLOAT64;
  if (t.code == 0 && t.bits == 64) return CSA_INT64;
  return CSA_DTYPE_INVALID;
}

/* Calls obj.__dlpack__ with the stream argument right for its device; asks
 * for a versioned capsule first and falls back for producers that predate
 * max_version (they raise TypeError on the unknown keyword). */
static PyObject *csa__export(PyObject *obj, const char *name) {
  PyObject *dev = PyObject_CallMethod(obj, "__dlpack_device__", NULL);
  if (dev == NULL) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s must be a tensor (an object with __dlpack__), got %s",
                 name, "an object without __dlpack_device__");
    return NULL;
  }
  long dev_type = -1;
  if (PyTuple_Check(dev) && PyTuple_Size(dev) >= 1)
    dev_type = PyLong_AsLong(PyTuple_GetItem(dev, 0));
  Py_DECREF(dev);
  if (dev_type == -1 && PyErr_Occurred())
    return NULL;

  PyObject *meth = PyObject_GetAttrString(obj, "__dlpack__");
  if (meth == NULL)
    return NULL;
  PyObject *args = PyTuple_New(0);
  PyObject *kw = PyDict_New();
  PyObject *capsule = NULL;
  if (args == NULL || kw == NULL)
    goto done;
  if (dev_type == CSA_DEVICE_CUDA) {
    /* -1: the consumer promises to order its work itself (we launch on the
     * caller's current stream), so the producer adds no synchronization. */
    PyObject *s = PyLong_FromLong(-1);
    if (s == NULL || PyDict_SetItemString(kw, "stream", s) < 0) {
      Py_XDECREF(s);
      goto done;
    }
    Py_DECREF(s);
  }
  PyObject *ver = Py_BuildValue("(ii)", 1, 0);
  if (ver == NULL || PyDict_SetItemString(kw, "max_version", ver) < 0) {
    Py_XDECREF(ver);
    goto done;
  }
  Py_DECREF(ver);
  capsule = PyObject_Call(meth, args, kw);
  if (capsule == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
    PyErr_Clear();
    PyDict_DelItemString(kw, "max_version");
    capsule = PyObject_Call(meth, args, kw);
  }
done:
  Py_XDECREF(args);
  Py_XDECREF(kw);
  Py_DECREF(meth);
  return capsule;
}

int csa__py_view_from_dl(const csa__dl_tensor *t, const char *name, csa_tensor *view) {
  if (t->ndim < 0 || t->ndim > CSA_MAX_NDIM) {
    PyErr_Format(PyExc_ValueError, "%s has %d dimensions; at most %d are supported", name,
                 (int)t->ndim, CSA_MAX_NDIM);
    return -1;
  }
  memset(view, 0, sizeof *view);
  view->dtype = csa__dtype_from_dl(t->dtype);
  view->device_type = t->device.device_type;
  view->device_id = t->device.device_id;
  view->ndim = t->ndim;
  view->data = t->data ? (char *)t->data + t->byte_offset : NULL;
  int64_t compact = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    view->shape[i] = t->shape[i];
    view->strides[i] = t->strides ? t->strides[i] : compact;
    compact *= t->shape[i];
  }
  return 0;
}

int csa__py_tensor_view(PyObject *obj, const char *name, int writable, csa_tensor *view,
                        PyObject **keep) {
  PyObject *capsule;
  *keep = NULL;
  if (PyCapsule_CheckExact(obj)) {
    Py_INCREF(obj);
    capsule = obj;
  } else {
    capsule = csa__export(obj, name);
    if (capsule == NULL)
      return -1;
  }

  const csa__dl_tensor *t = NULL;
  int read_only = 0;
  if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
    csa__dl_managed_versioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (m == NULL)
      goto fail;
    if (m->version.major != 1) {
      PyErr_Format(PyExc_TypeError, "%s: unsupported DLPack major version %u", name,
                   (unsigned)m->version.major);
      goto fail;
    }
    t = &m->dl_tensor;
    read_only = (int)(m->flags & 1u);
  } else if (PyCapsule_IsValid(capsule, "dltensor")) {
    csa__dl_managed *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (m == NULL)
      goto fail;
    t = &m->dl_tensor;
  } else {
    PyErr_Format(PyExc_TypeError, "%s: not a fresh DLPack capsule (already consumed?)", name);
    goto fail;
  }

  if (writable && read_only) {
    PyErr_Format(PyExc_ValueError, "%s is read-only; pass a writable tensor", name);
    goto fail;
  }
  if (csa__py_view_from_dl(t, name, view) < 0)
    goto fail;
  *keep = capsule;
  return 0;
fail:
  Py_DECREF(capsule);
  return -1;
}
