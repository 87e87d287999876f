/*
 * cuda_binding.c — the CUDA-specific functions of comfy_sparse_attn._C:
 *
 *   cuda_status(device_index) -> (ok: bool, reason: str)
 *   cuda_sanitize_cu_seqlens(cu_q, cu_kv, out_q, out_kv, flags, total_q,
 *                            total_kv, max_q, max_kv, stream) -> None
 *   cuda_knobs_reload() -> None   (re-read COMFY_SPARSE_ATTN_CUDA_* knobs)
 *
 * Nothing here runs at import: the driver is opened by the first call.
 */
#include <string.h>

#include "csa/csa_cuda.h"
#include "dlpack.h"
#include "errors.h"

void csa__cuda_knobs_reload(void); /* csrc/cuda/attn_plan.h */

static PyObject *csa__py_cuda_status(PyObject *self, PyObject *args) {
  (void)self;
  int device = 0;
  if (!PyArg_ParseTuple(args, "i:cuda_status", &device))
    return NULL;
  char reason[320];
  int ok;
  Py_BEGIN_ALLOW_THREADS /* the first call opens the driver (cuInit) */
  ok = csa_cuda_status(device, reason, sizeof reason);
  Py_END_ALLOW_THREADS
  return Py_BuildValue("(Os)", ok ? Py_True : Py_False, ok ? "" : reason);
}

static PyObject *csa__py_cuda_sanitize(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *obj[5];
  long long total_q, total_kv, max_q, max_kv;
  unsigned long long stream;
  if (!PyArg_ParseTuple(args, "OOOOOLLLLK:cuda_sanitize_cu_seqlens", &obj[0], &obj[1], &obj[2],
                        &obj[3], &obj[4], &total_q, &total_kv, &max_q, &max_kv, &stream))
    return NULL;
  static const char *const names[5] = {"cu_seqlens_q", "cu_seqlens_kv", "out_q", "out_kv",
                                        "flags"};
  csa_tensor view[5];
  PyObject *keep[5] = {NULL, NULL, NULL, NULL, NULL};
  PyObject *result = NULL;
  for (int i = 0; i < 5; i++)
    if (csa__py_tensor_view(obj[i], names[i], i >= 2, &view[i], &keep[i]) < 0)
      goto done;
  int st;
  Py_BEGIN_ALLOW_THREADS
  st = csa_cuda_sanitize_cu_seqlens(&view[0], &view[1], &view[2], &view[3], &view[4], total_q,
                                    total_kv, max_q, max_kv, (void *)(uintptr_t)stream);
  Py_END_ALLOW_THREADS
  if (st != CSA_OK) {
    csa__py_raise(st);
    goto done;
  }
  result = Py_NewRef(Py_None);
done:
  for (int i = 0; i < 5; i++)
    Py_XDECREF(keep[i]);
  return result;
}

static PyObject *csa__py_cuda_knobs_reload(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  csa__cuda_knobs_reload();
  Py_RETURN_NONE;
}

static PyMethodDef csa__cuda_methods[] = {
    {"cuda_status", csa__py_cuda_status, METH_VARARGS,
     "cuda_status(device_index) -> (ok, reason): can the native CUDA kernels run there?"},
    {"cuda_sanitize_cu_seqlens", csa__py_cuda_sanitize, METH_VARARGS,
     "cuda_sanitize_cu_seqlens(cu_q, cu_kv, out_q, out_kv, flags, total_q, total_kv, max_q, "
     "max_kv, stream) -> None: clamped copies of cu_seqlens on the GPU, violation bits ORed "
     "into flags[0] (one launch, no sync)"},
    {"cuda_knobs_reload", csa__py_cuda_knobs_reload, METH_NOARGS,
     "Re-read the COMFY_SPARSE_ATTN_CUDA_* tuning knobs (tests, benchmarks)."},
    {NULL, NULL, 0, NULL}};

/* Adds the functions above to module m (called from PyInit__C). */
int csa__py_cuda_add_methods(PyObject *m);
int csa__py_cuda_add_methods(PyObject *m) {
  if (PyModule_AddFunctions(m, csa__cuda_methods) < 0)
    return -1;
  /* the violation bits, so Python never restates them */
  static const struct {
    const char *name;
    long v;
  } bits[] = {{"CU_Q_START", CSA_CU_Q_START},     {"CU_Q_DECREASE", CSA_CU_Q_DECREASE},
              {"CU_Q_TOTAL", CSA_CU_Q_TOTAL},     {"CU_Q_MAXLEN", CSA_CU_Q_MAXLEN},
              {"CU_KV_START", CSA_CU_KV_START},   {"CU_KV_DECREASE", CSA_CU_KV_DECREASE},
              {"CU_KV_TOTAL", CSA_CU_KV_TOTAL},   {"CU_KV_MAXLEN", CSA_CU_KV_MAXLEN}};
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
    if (PyModule_AddIntConstant(m, bits[i].name, bits[i].v) < 0)
      return -1;
  return 0;
}
