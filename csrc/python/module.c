/*
 * module.c — the extension module comfy_sparse_attn._C (plain C, limited
 * API 3.10, one abi3 binary for every CPython >= 3.10).
 *
 * Python allocates every tensor; these bindings only borrow memory through
 * DLPack (dlpack.c), fill a csa_attn_params, drop the GIL while a kernel
 * runs, and turn a status code into an exception (errors.c).
 */
#include <stdio.h>
#include <string.h>

#include "dispatch_binding.h"
#include "link_binding.h"
#include "attn_params.h"
#include "dlpack.h"
#include "errors.h"

/* kind -> 0 (validate), CSA_DEVICE_CPU or CSA_DEVICE_CUDA; -1 with a
 * ValueError for anything else. */
static int csa__parse_kind(const char *kind, int *which) {
  if (strcmp(kind, "validate") == 0)
    *which = 0;
  else if (strcmp(kind, "cpu") == 0)
    *which = CSA_DEVICE_CPU;
  else if (strcmp(kind, "cuda") == 0)
    *which = CSA_DEVICE_CUDA;
  else {
    PyErr_Format(PyExc_ValueError, "kind must be 'validate', 'cpu' or 'cuda', got %s", kind);
    return -1;
  }
  return 0;
}

/* Validate, or run the CPU / CUDA kernel: the status code. */
static int csa__run_kind(int which, const csa_attn_params *p) {
  int st;
  if (which == 0) {
    st = csa_attn_validate(p);
  } else {
    /* The kernels read only borrowed memory the caller keeps alive, so the
     * GIL can go: other Python threads run meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    st = which == CSA_DEVICE_CPU ? csa_attn_cpu(p) : csa_attn_cuda(p);
    Py_END_ALLOW_THREADS
  }
  return st;
}

/* attention(kind, *, q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
 *           max_seqlen_kv, out=None, softmax_scale=0.0, causal=False, lse=None,
 *           cu_seqlens_q_host=None, cu_seqlens_kv_host=None, num_threads=1,
 *           stream=0)
 * kind: "validate" (out may be None), "cpu" or "cuda".  Everything but kind
 * is keyword-only, so a call site reads like csa_attn_params. */
static PyObject *csa__py_attention(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"kind", "q", "k", "v", "cu_seqlens_q", "cu_seqlens_kv",
                           "max_seqlen_q", "max_seqlen_kv", "out", "softmax_scale", "causal",
                           "lse", "cu_seqlens_q_host", "cu_seqlens_kv_host", "num_threads",
                           "stream", NULL};
  const char *kind;
  PyObject *q = NULL, *k = NULL, *v = NULL, *cu_q = NULL, *cu_kv = NULL;
  PyObject *out = Py_None, *lse = Py_None, *cu_q_host = Py_None, *cu_kv_host = Py_None;
  long long max_q = -1, max_kv = -1;
  float scale = 0.0f;
  int causal = 0, num_threads = 1;
  unsigned long long stream = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|$OOOOOLLOfpOOOiK:attention", kwlist, &kind,
                                   &q, &k, &v, &cu_q, &cu_kv, &max_q, &max_kv, &out, &scale,
                                   &causal, &lse, &cu_q_host, &cu_kv_host, &num_threads,
                                   &stream))
    return NULL;
  if (q == NULL || k == NULL || v == NULL || cu_q == NULL || cu_kv == NULL) {
    PyErr_SetString(PyExc_TypeError,
                    "attention() needs q, k, v, cu_seqlens_q and cu_seqlens_kv (keywords)");
    return NULL;
  }

  int which;
  if (csa__parse_kind(kind, &which) < 0)
    return NULL;

  csa_attn_params p;
  memset(&p, 0, sizeof p);
  csa__py_keepalive ka = {{0}, 0};
  csa_tensor cuq_host_view, cukv_host_view;
  PyObject *result = NULL;
  if (csa__py_view_opt(q, "q", 0, &p.q, &ka) < 0 ||
      csa__py_view_opt(k, "k", 0, &p.k, &ka) < 0 ||
      csa__py_view_opt(v, "v", 0, &p.v, &ka) < 0 ||
      csa__py_view_opt(cu_q, "cu_seqlens_q", 0, &p.cu_seqlens_q, &ka) < 0 ||
      csa__py_view_opt(cu_kv, "cu_seqlens_kv", 0, &p.cu_seqlens_kv, &ka) < 0 ||
      csa__py_view_opt(out, "out", 1, &p.out, &ka) < 0 ||
      csa__py_view_opt(lse, "lse", 1, &p.lse, &ka) < 0 ||
      csa__py_view_opt(cu_q_host, "cu_seqlens_q (host copy)", 0, &cuq_host_view, &ka) < 0 ||
      csa__py_view_opt(cu_kv_host, "cu_seqlens_kv (host copy)", 0, &cukv_host_view, &ka) < 0)
    goto done;

  if (csa__py_take_host_copies(&p, &cuq_host_view, &cukv_host_view) < 0)
    goto done;
  if (which == 0 && out == Py_None)
    csa__py_describe_missing_out(&p);
  p.max_seqlen_q = max_q;
  p.max_seqlen_kv = max_kv;
  p.softmax_scale = scale;
  p.causal = causal;
  p.num_threads = num_threads;
  p.stream = (void *)(uintptr_t)stream;

  const int st = csa__run_kind(which, &p);
  if (st != CSA_OK) {
    csa__py_raise(st);
    goto done;
  }
  result = Py_NewRef(Py_None);
done:
  csa__py_keep_release(&ka);
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
  static const int isas[] = {
#define CSA__ISA_VAL(n, val, str) val,
      CSA_CPU_ISA_MAP(CSA__ISA_VAL)
#undef CSA__ISA_VAL
  };
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    int isa = isas[i];
    if (strcmp(name, csa_cpu_isa_name(isa)) == 0) {
      int st = csa_cpu_isa_force(isa);
      if (st != CSA_OK)
        return csa__py_raise(st);
      Py_RETURN_NONE;
    }
  }
  char names[160] = "auto";
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    size_t n = strlen(names);
    snprintf(names + n, sizeof names - n, ", %s", csa_cpu_isa_name(isas[i]));
  }
  PyErr_Format(PyExc_ValueError, "unknown CPU ISA %s (%s)", name, names);
  return NULL;
}

/* status_table() -> {code: (name, message, exception class)}. */
static PyObject *csa__py_status_table(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
#define CSA__ROW(name, val, msg)                                                     \
  do {                                                                               \
    PyObject *row = Py_BuildValue("(ssO)", "CSA_" #name, msg,                        \
                                  csa__py_exception_for(val));                       \
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

/* Adds module attribute `attr` = {name: value} from parallel arrays. */
static int csa__add_enum(PyObject *m, const char *attr, const char *const *names,
                         const int *values, int n) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return -1;
  for (int i = 0; i < n; i++) {
    PyObject *x = PyLong_FromLong(values[i]);
    if (x == NULL || PyDict_SetItemString(d, names[i], x) < 0) {
      Py_XDECREF(x);
      Py_DECREF(d);
      return -1;
    }
    Py_DECREF(x);
  }
  if (PyModule_AddObject(m, attr, d) < 0) {
    Py_DECREF(d);
    return -1;
  }
  return 0;
}

/* The enums of csa.h, read from their X-macro tables, so Python never
 * restates a code: DTYPE {"float32": 1, ...}, DEVICE {"cpu": 1, "cuda": 2,
 * ...}, CPU_ISA {"avx2": 1, ...}, STATUS {"CSA_EINVAL": -1, ...},
 * LINK_RESULT {"CREATED": 1, ...}, LINK_GIT {"ADDED": 1, ...} (the
 * setup_link glue also reads the LINK_* integers PyInit__C adds). */
static int csa__add_enums(PyObject *m) {
#define CSA__STR3(name, val, str) str,
#define CSA__VAL3(name, val, str) val,
#define CSA__STR4(name, val, str, size) str,
#define CSA__VAL4(name, val, str, size) val,
#define CSA__NAME3(name, val, msg) #name,
#define CSA__SNAME3(name, val, msg) "CSA_" #name,
  static const char *const dt_n[] = {CSA_DTYPE_MAP(CSA__STR4)};
  static const int dt_v[] = {CSA_DTYPE_MAP(CSA__VAL4)};
  static const char *const dev_n[] = {CSA_DEVICE_MAP(CSA__STR3)};
  static const int dev_v[] = {CSA_DEVICE_MAP(CSA__VAL3)};
  static const char *const isa_n[] = {CSA_CPU_ISA_MAP(CSA__STR3)};
  static const int isa_v[] = {CSA_CPU_ISA_MAP(CSA__VAL3)};
  static const char *const st_n[] = {CSA_STATUS_MAP(CSA__SNAME3)};
  static const int st_v[] = {CSA_STATUS_MAP(CSA__VAL3)};
  static const char *const lr_n[] = {CSA_LINK_RESULT_MAP(CSA__NAME3)};
  static const int lr_v[] = {CSA_LINK_RESULT_MAP(CSA__VAL3)};
  static const char *const lg_n[] = {CSA_LINK_GIT_MAP(CSA__NAME3)};
  static const int lg_v[] = {CSA_LINK_GIT_MAP(CSA__VAL3)};
#undef CSA__STR3
#undef CSA__VAL3
#undef CSA__STR4
#undef CSA__VAL4
#undef CSA__NAME3
#undef CSA__SNAME3
#define CSA__N(a) ((int)(sizeof a / sizeof a[0]))
  if (csa__add_enum(m, "DTYPE", dt_n, dt_v, CSA__N(dt_v)) < 0 ||
      csa__add_enum(m, "DEVICE", dev_n, dev_v, CSA__N(dev_v)) < 0 ||
      csa__add_enum(m, "CPU_ISA", isa_n, isa_v, CSA__N(isa_v)) < 0 ||
      csa__add_enum(m, "STATUS", st_n, st_v, CSA__N(st_v)) < 0 ||
      csa__add_enum(m, "LINK_RESULT", lr_n, lr_v, CSA__N(lr_v)) < 0 ||
      csa__add_enum(m, "LINK_GIT", lg_n, lg_v, CSA__N(lg_v)) < 0)
    return -1;
#undef CSA__N
  return 0;
}

static PyMethodDef csa__methods[] = {
    {"attention", (PyCFunction)(void (*)(void))csa__py_attention, METH_VARARGS | METH_KEYWORDS,
     "attention(kind, *, q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, "
     "out=None, softmax_scale=0.0, causal=False, lse=None, cu_seqlens_q_host=None, "
     "cu_seqlens_kv_host=None, num_threads=1, stream=0) -> None"},
    {"have_cuda", csa__py_have_cuda, METH_NOARGS, "True if this build has the CUDA kernels."},
    {"cpu_isa", csa__py_cpu_isa, METH_NOARGS, "Name of the ISA the CPU kernel uses."},
    {"cpu_isa_force", csa__py_cpu_isa_force, METH_VARARGS,
     "Force the CPU kernel's ISA by name (tests); 'auto' returns to the automatic choice."},
    {"setup_link_ex", (PyCFunction)(void (*)(void))csa__py_setup_link_ex,
     METH_VARARGS | METH_KEYWORDS,
     "setup_link_ex(source, comfy_dir or None, comfy_relative) -> dict"},
    {"status_table", csa__py_status_table, METH_NOARGS,
     "{code: (name, message, exception class)}"},
    {"dispatch_backends", csa__py_dispatch_backends, METH_NOARGS,
     "Backend names, indexed by backend id."},
    {"dispatch_caps", csa__py_dispatch_caps, METH_VARARGS, "dispatch_caps(id) -> constraint row"},
    {"dispatch_select", (PyCFunction)(void (*)(void))csa__py_dispatch_select,
     METH_VARARGS | METH_KEYWORDS,
     "dispatch_select(*, device_type, sm, dtype, head_dim, ... facts) -> (order, reasons, policy)"},
    {"dispatch_rows", csa__py_dispatch_rows, METH_VARARGS,
     "dispatch_rows(batch, total_q) -> rows class of a call (placement rules)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef csa__module = {PyModuleDef_HEAD_INIT, "_C",
                                         "comfy-sparse-attn C core", -1, csa__methods,
                                         NULL, NULL, NULL, NULL};

int csa__py_cuda_add_methods(PyObject *m); /* cuda_binding.c */
int csa__py_run_add_methods(PyObject *m);  /* run_binding.c */
int csa__py_fast_add_methods(PyObject *m); /* fast_binding.c */

PyMODINIT_FUNC PyInit__C(void) {
  PyObject *m = PyModule_Create(&csa__module);
  if (m == NULL)
    return NULL;
  if (csa__py_cuda_add_methods(m) < 0 || csa__py_run_add_methods(m) < 0 ||
      csa__py_fast_add_methods(m) < 0) {
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
  if (csa__add_enums(m) < 0 || csa__add_backend_enum(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
