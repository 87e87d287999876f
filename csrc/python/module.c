/*
 * module.c — the extension module comfy_sparse_attn._C (plain C, limited
 * API 3.10, one abi3 binary for every CPython >= 3.10).
 *
 * Python allocates every tensor; these bindings only borrow memory through
 * DLPack (dlpack.c), fill a csa_attn_params, drop the GIL while a kernel
 * runs, and turn a status code into an exception (errors.c).
 */
#include <string.h>

#include "dispatch_binding.h"
#include "link_binding.h"
#include "dlpack.h"
#include "errors.h"

/* Borrowed views plus the capsules that own their descriptors. */
enum { CSA__N_KEEP = 9 };
typedef struct {
  PyObject *keep[CSA__N_KEEP];
  int n;
} csa__keepalive;

static void csa__keep_release(csa__keepalive *ka) {
  for (int i = 0; i < ka->n; i++)
    Py_XDECREF(ka->keep[i]);
  ka->n = 0;
}

/* Optional tensor: None leaves the view empty (data NULL, ndim 0). */
static int csa__view_opt(PyObject *obj, const char *name, int writable, csa_tensor *view,
                         csa__keepalive *ka) {
  memset(view, 0, sizeof *view);
  if (obj == Py_None)
    return 0;
  PyObject *keep;
  if (csa__py_tensor_view(obj, name, writable, view, &keep) < 0)
    return -1;
  ka->keep[ka->n++] = keep;
  return 0;
}

/* attention(kind, q, k, v, out, cu_q, cu_kv, max_q, max_kv, scale, causal,
 *           lse, cu_q_host, cu_kv_host, num_threads, stream)
 * kind: "validate" (out may be None), "cpu" or "cuda". */
static PyObject *csa__py_attention(PyObject *self, PyObject *args) {
  (void)self;
  const char *kind;
  PyObject *q, *k, *v, *out, *cu_q, *cu_kv, *lse, *cu_q_host, *cu_kv_host;
  long long max_q, max_kv;
  float scale;
  int causal, num_threads;
  unsigned long long stream;
  if (!PyArg_ParseTuple(args, "sOOOOOOLLfpOOOiK:attention", &kind, &q, &k, &v, &out, &cu_q,
                        &cu_kv, &max_q, &max_kv, &scale, &causal, &lse, &cu_q_host, &cu_kv_host,
                        &num_threads, &stream))
    return NULL;

  int which;
  if (strcmp(kind, "validate") == 0)
    which = 0;
  else if (strcmp(kind, "cpu") == 0)
    which = CSA_DEVICE_CPU;
  else if (strcmp(kind, "cuda") == 0)
    which = CSA_DEVICE_CUDA;
  else {
    PyErr_Format(PyExc_ValueError, "kind must be 'validate', 'cpu' or 'cuda', got %s", kind);
    return NULL;
  }

  csa_attn_params p;
  memset(&p, 0, sizeof p);
  csa__keepalive ka = {{0}, 0};
  csa_tensor cuq_host_view, cukv_host_view;
  PyObject *result = NULL;
  if (csa__view_opt(q, "q", 0, &p.q, &ka) < 0 || csa__view_opt(k, "k", 0, &p.k, &ka) < 0 ||
      csa__view_opt(v, "v", 0, &p.v, &ka) < 0 ||
      csa__view_opt(cu_q, "cu_seqlens_q", 0, &p.cu_seqlens_q, &ka) < 0 ||
      csa__view_opt(cu_kv, "cu_seqlens_kv", 0, &p.cu_seqlens_kv, &ka) < 0 ||
      csa__view_opt(out, "out", 1, &p.out, &ka) < 0 || csa__view_opt(lse, "lse", 1, &p.lse, &ka) < 0 ||
      csa__view_opt(cu_q_host, "cu_seqlens_q (host copy)", 0, &cuq_host_view, &ka) < 0 ||
      csa__view_opt(cu_kv_host, "cu_seqlens_kv (host copy)", 0, &cukv_host_view, &ka) < 0)
    goto done;

  /* Host copies must be what they claim: int32 CPU arrays as long as the
   * device arrays, else validation would read past them. */
  const csa_tensor *hv[2] = {&cuq_host_view, &cukv_host_view};
  const csa_tensor *dv[2] = {&p.cu_seqlens_q, &p.cu_seqlens_kv};
  const int32_t **hp[2] = {&p.cu_seqlens_q_host, &p.cu_seqlens_kv_host};
  for (int i = 0; i < 2; i++) {
    if (hv[i]->data == NULL)
      continue;
    if (hv[i]->device_type != CSA_DEVICE_CPU || hv[i]->dtype != CSA_INT32 || hv[i]->ndim != 1 ||
        dv[i]->ndim != 1 || hv[i]->shape[0] != dv[i]->shape[0] ||
        (hv[i]->shape[0] > 1 && hv[i]->strides[0] != 1)) {
      PyErr_SetString(PyExc_ValueError,
                      "host copies of cu_seqlens must be contiguous int32 CPU tensors of the "
                      "same length as the device tensors");
      goto done;
    }
    *hp[i] = (const int32_t *)hv[i]->data;
  }

  if (which == 0 && out == Py_None) {
    /* Validation before the output exists: describe the output the call
     * would need (never written) so the same checks apply. */
    p.out = p.q;
    if (p.q.ndim == 3 && p.v.ndim == 3) {
      p.out.shape[2] = p.v.shape[2];
      p.out.strides[2] = 1;
      p.out.strides[1] = p.v.shape[2];
      p.out.strides[0] = p.q.shape[1] * p.v.shape[2];
    }
  }
  p.max_seqlen_q = max_q;
  p.max_seqlen_kv = max_kv;
  p.softmax_scale = scale;
  p.causal = causal;
  p.num_threads = num_threads;
  p.stream = (void *)(uintptr_t)stream;

  int st;
  if (which == 0) {
    st = csa_attn_validate(&p);
  } else {
    /* The kernels read only borrowed memory the caller keeps alive, so the
     * GIL can go: other Python threads run meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    st = which == CSA_DEVICE_CPU ? csa_attn_cpu(&p) : csa_attn_cuda(&p);
    Py_END_ALLOW_THREADS
  }
  if (st != CSA_OK) {
    csa__py_raise(st);
    goto done;
  }
  result = Py_NewRef(Py_None);
done:
  csa__keep_release(&ka);
  return result;
}

static PyObject *csa__py_have_cuda(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyBool_FromLong(csa_have_cuda());
}

static PyObject *csa__py_cpu_isa(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyUnicode_FromString(csa_cpu_isa_name(csa_cpu_isa_selected()));
}

static PyObject *csa__py_cpu_isa_force(PyObject *self, PyObject *args) {
  (void)self;
  const char *name;
  if (!PyArg_ParseTuple(args, "s:cpu_isa_force", &name))
    return NULL;
  if (strcmp(name, "auto") == 0) {
    int st = csa_cpu_isa_force(-1);
    if (st != CSA_OK)
      return csa__py_raise(st);
    Py_RETURN_NONE;
  }
  for (int isa = CSA_ISA_SCALAR; isa <= CSA_ISA_NEON; isa++) {
    if (strcmp(name, csa_cpu_isa_name(isa)) == 0) {
      int st = csa_cpu_isa_force(isa);
      if (st != CSA_OK)
        return csa__py_raise(st);
      Py_RETURN_NONE;
    }
  }
  PyErr_Format(PyExc_ValueError,
               "unknown CPU ISA %s (auto, scalar, avx2, avx512, avx512bf16, neon)",
               name);
  return NULL;
}

static PyObject *csa__py_status_table(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
#define CSA__ROW(name, val, pyexc, msg)                                              \
  do {                                                                               \
    PyObject *row = Py_BuildValue("(ss)", "CSA_" #name, msg);                        \
    PyObject *key = PyLong_FromLong(val);                                            \
    if (row == NULL || key == NULL || PyDict_SetItem(d, key, row) < 0) {             \
      Py_XDECREF(row);                                                               \
      Py_XDECREF(key);                                                               \
      Py_DECREF(d);                                                                  \
      return NULL;                                                                   \
    }                                                                                \
    Py_DECREF(row);                                                                  \
    Py_DECREF(key);                                                                  \
  } while (0);
  CSA_STATUS_MAP(CSA__ROW)
#undef CSA__ROW
  return d;
}

static PyMethodDef csa__methods[] = {
    {"attention", csa__py_attention, METH_VARARGS,
     "attention(kind, q, k, v, out, cu_q, cu_kv, max_q, max_kv, scale, causal, lse, cu_q_host, "
     "cu_kv_host, num_threads, stream) -> None"},
    {"have_cuda", csa__py_have_cuda, METH_NOARGS, "True if this build has the CUDA kernels."},
    {"cpu_isa", csa__py_cpu_isa, METH_NOARGS, "Name of the ISA the CPU kernel uses."},
    {"cpu_isa_force", csa__py_cpu_isa_force, METH_VARARGS,
     "Force the CPU kernel's ISA by name (tests); 'auto' returns to the automatic choice."},
    {"setup_link_ex", csa__py_setup_link_ex, METH_VARARGS,
     "setup_link_ex(source, comfy_dir or None, comfy_relative) -> dict"},
    {"status_table", csa__py_status_table, METH_NOARGS, "{code: (name, message)}"},
    {"dispatch_backends", csa__py_dispatch_backends, METH_NOARGS,
     "Backend names, indexed by backend id."},
    {"dispatch_caps", csa__py_dispatch_caps, METH_VARARGS, "dispatch_caps(id) -> constraint row"},
    {"dispatch_select", csa__py_dispatch_select, METH_VARARGS,
     "dispatch_select(facts...) -> (order, reasons, policy)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef csa__module = {PyModuleDef_HEAD_INIT, "_C",
                                         "comfy-sparse-attn C core", -1, csa__methods,
                                         NULL, NULL, NULL, NULL};

int csa__py_cuda_add_methods(PyObject *m); /* cuda_binding.c */
PyMODINIT_FUNC PyInit__C(void) {
  PyObject *m = PyModule_Create(&csa__module);
  if (m == NULL)
    return NULL;
  if (csa__py_cuda_add_methods(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  if (PyModule_AddIntConstant(m, "LINK_CREATED", CSA_LINK_CREATED) < 0 ||
      PyModule_AddIntConstant(m, "LINK_REPLACED", CSA_LINK_REPLACED) < 0 ||
      PyModule_AddIntConstant(m, "LINK_SKIP_NATIVE", CSA_LINK_SKIP_NATIVE) < 0 ||
      PyModule_AddIntConstant(m, "LINK_SKIP_SAME", CSA_LINK_SKIP_SAME) < 0 ||
      PyModule_AddIntConstant(m, "LINK_SKIP_DIR", CSA_LINK_SKIP_DIR) < 0 ||
      PyModule_AddIntConstant(m, "LINK_NOT_PERMITTED", CSA_LINK_NOT_PERMITTED) < 0 ||
      PyModule_AddIntConstant(m, "VERSION_MAJOR", CSA_VERSION_MAJOR) < 0 ||
      PyModule_AddIntConstant(m, "VERSION_MINOR", CSA_VERSION_MINOR) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
