/*
 * run_binding.c — _C.run, one positional Python -> C call for a remembered
 * decision whose backend runs in Python (dispatch's _fast_run: validate,
 * sanitize, then the library), and the run step (csa__py_run_params) that
 * it shares with the fully-C fast path (fast_binding.c).
 *
 *   run(kind, q, k, v, cu_q, cu_kv, out, lse, cu_q_host, cu_kv_host,
 *       max_seqlen_q, max_seqlen_kv, softmax_scale, causal, num_threads,
 *       stream, scratch, flags) -> None
 *
 * Positional (METH_FASTCALL): a repeated call with an already-made decision
 * pays no keyword parsing.  The tensors are DLPack capsules (or objects with
 * __dlpack__); None for the optional ones.  kind (exported as RUN_*): what
 * attn_params.h lists (validate; CPU or CUDA kernel; sanitize; sanitize
 * then CUDA kernel).  scratch: int32 >= 2(B+1) on q's CUDA device, owned by
 * the caller and only ever used on `stream` (stream order makes its reuse
 * safe); flags: the sanitizer's violation word (csa_cuda.h).
 */
#include <string.h>

#include "csa/csa_cuda.h"
#include "core/internal.h"
#include "cuda/loader.h"
#include "attn_params.h"
#include "dlpack.h"
#include "errors.h"

enum { CSA__RUN_NARGS = 18 };

/* The two int32 [B+1] halves of scratch, as the sanitizer's output views. */
static int csa__run_scratch_views(const csa_attn_params *p, const csa_tensor *scratch,
                                  csa_tensor *oq, csa_tensor *okv) {
  const int64_t n = p->cu_seqlens_q.shape[0];
  if (scratch->data == NULL || scratch->dtype != CSA_INT32 || scratch->ndim != 1 ||
      scratch->device_type != CSA_DEVICE_CUDA || scratch->device_id != p->q.device_id ||
      scratch->shape[0] < 2 * n || (scratch->shape[0] > 1 && scratch->strides[0] != 1)) {
    PyErr_SetString(PyExc_ValueError,
                    "scratch must be a contiguous int32 tensor of at least 2 * (B + 1) "
                    "entries on q's CUDA device");
    return -1;
  }
  *oq = *scratch;
  oq->shape[0] = n;
  oq->strides[0] = 1;
  *okv = *oq;
  okv->data = (int32_t *)scratch->data + n;
  return 0;
}

int csa__py_run_params(int kind, csa_attn_params *p, const csa_tensor *scratch,
                       const csa_tensor *flags, int *status) {
  /* The kernels' entry points validate first themselves (csa.h); only a
   * call that sanitizes (or only validates) needs the check done here.  A
   * sanitized or flagged CUDA call checks once (the same check as
   * csa_attn_validate, keeping its dims): the clamped copies a sanitized
   * kernel then reads are int32 [B+1] views on the same device
   * (csa__run_scratch_views), so what the check found holds for them too,
   * and the sanitizer has refused anything not on a CUDA device. */
  csa__attn_dims dims;
  memset(&dims, 0, sizeof dims);
  int st = CSA_OK;
  int32_t *cu_flags = NULL;
  if (kind == CSA__RUN_CUDA_SANITIZED || kind == CSA__RUN_CUDA_FLAGGED)
    st = csa__attn_check(p, kind == CSA__RUN_CUDA_FLAGGED ? CSA_DEVICE_CUDA : 0, &dims);
  else if (kind == CSA__RUN_VALIDATE || kind == CSA__RUN_SANITIZE)
    st = csa_attn_validate(p);
  if (st == CSA_OK && kind == CSA__RUN_CUDA_FLAGGED) {
    if (dims.total_q == 0)
      kind = CSA__RUN_CUDA_SANITIZED; /* no launch to check in: the sanitizer does it */
    else
      st = csa__cuda_flags_address(flags, p->q.device_id, &cu_flags);
  }
  if (st == CSA_OK && (kind == CSA__RUN_SANITIZE || kind == CSA__RUN_CUDA_SANITIZED)) {
    csa_tensor oq, okv;
    if (csa__run_scratch_views(p, scratch, &oq, &okv) < 0) {
      if (status != NULL)
        *status = CSA_EINVAL;
      return -1;
    }
    st = csa_cuda_sanitize_cu_seqlens(&p->cu_seqlens_q, &p->cu_seqlens_kv, &oq, &okv, flags,
                                      p->q.shape[0], p->k.shape[0], p->max_seqlen_q,
                                      p->max_seqlen_kv, p->stream);
    p->cu_seqlens_q = oq; /* the kernel reads the clamped copies */
    p->cu_seqlens_kv = okv;
  }
  if (st == CSA_OK && kind != CSA__RUN_VALIDATE && kind != CSA__RUN_SANITIZE) {
    /* The kernels read only borrowed memory the caller keeps alive, so the
     * GIL can go while they run (CPU) or launch (CUDA). */
    Py_BEGIN_ALLOW_THREADS
    if (kind == CSA__RUN_CPU)
      st = csa_attn_cpu(p);
    else if (kind == CSA__RUN_CUDA)
      st = csa_attn_cuda(p);
    else
      st = csa__attn_cuda_checked(p, &dims, cu_flags);
    Py_END_ALLOW_THREADS
  }
  if (status != NULL)
    *status = st;
  if (st != CSA_OK) {
    csa__py_raise(st);
    return -1;
  }
  return 0;
}

static int csa__run_arg_ll(PyObject *o, long long *v) {
  *v = PyLong_AsLongLong(o);
  return (*v == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *csa__py_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != CSA__RUN_NARGS) {
    PyErr_Format(PyExc_TypeError, "run() takes %d positional arguments (%zd given)",
                 (int)CSA__RUN_NARGS, nargs);
    return NULL;
  }
  long long kind, max_q, max_kv, threads, stream_ll;
  if (csa__run_arg_ll(args[0], &kind) < 0 || csa__run_arg_ll(args[10], &max_q) < 0 ||
      csa__run_arg_ll(args[11], &max_kv) < 0 || csa__run_arg_ll(args[14], &threads) < 0)
    return NULL;
  unsigned long long stream = PyLong_AsUnsignedLongLong(args[15]);
  if (stream == (unsigned long long)-1 && PyErr_Occurred()) {
    /* a negative handle cannot be a stream; 0 is the legacy default */
    PyErr_Clear();
    if (csa__run_arg_ll(args[15], &stream_ll) < 0)
      return NULL;
    stream = (unsigned long long)stream_ll;
  }
  const double scale = PyFloat_AsDouble(args[12]);
  if (scale == -1.0 && PyErr_Occurred())
    return NULL;
  const int causal = PyObject_IsTrue(args[13]);
  if (causal < 0)
    return NULL;
  if (kind < CSA__RUN_VALIDATE || kind > CSA__RUN_CUDA_FLAGGED) {
    PyErr_Format(PyExc_ValueError, "run(): unknown kind %lld", kind);
    return NULL;
  }

  csa_attn_params p;
  memset(&p, 0, sizeof p);
  csa__py_keepalive ka = {{0}, 0};
  csa_tensor hq, hk, scratch, flags;
  PyObject *result = NULL;
  if (csa__py_view_opt(args[1], "q", 0, &p.q, &ka) < 0 ||
      csa__py_view_opt(args[2], "k", 0, &p.k, &ka) < 0 ||
      csa__py_view_opt(args[3], "v", 0, &p.v, &ka) < 0 ||
      csa__py_view_opt(args[4], "cu_seqlens_q", 0, &p.cu_seqlens_q, &ka) < 0 ||
      csa__py_view_opt(args[5], "cu_seqlens_kv", 0, &p.cu_seqlens_kv, &ka) < 0 ||
      csa__py_view_opt(args[6], "out", 1, &p.out, &ka) < 0 ||
      csa__py_view_opt(args[7], "lse", 1, &p.lse, &ka) < 0 ||
      csa__py_view_opt(args[8], "cu_seqlens_q (host copy)", 0, &hq, &ka) < 0 ||
      csa__py_view_opt(args[9], "cu_seqlens_kv (host copy)", 0, &hk, &ka) < 0 ||
      csa__py_view_opt(args[16], "scratch", 1, &scratch, &ka) < 0 ||
      csa__py_view_opt(args[17], "flags", 1, &flags, &ka) < 0)
    goto done;
  if (csa__py_take_host_copies(&p, &hq, &hk) < 0)
    goto done;
  const int missing_out = args[6] == Py_None;
  if (missing_out && kind != CSA__RUN_VALIDATE && kind != CSA__RUN_SANITIZE) {
    PyErr_SetString(PyExc_ValueError, "run(): this kind needs out");
    goto done;
  }
  if (missing_out)
    csa__py_describe_missing_out(&p);
  p.max_seqlen_q = max_q;
  p.max_seqlen_kv = max_kv;
  p.softmax_scale = (float)scale;
  p.causal = causal;
  p.num_threads = (int)threads;
  p.stream = (void *)(uintptr_t)stream;

  if (csa__py_run_params((int)kind, &p, &scratch, &flags, NULL) < 0)
    goto done;
  result = Py_NewRef(Py_None);
done:
  csa__py_keep_release(&ka);
  return result;
}

static PyMethodDef csa__run_methods[] = {
    {"run", (PyCFunction)(void (*)(void))csa__py_run, METH_FASTCALL,
     "run(kind, q, k, v, cu_q, cu_kv, out, lse, cu_q_host, cu_kv_host, max_seqlen_q, "
     "max_seqlen_kv, softmax_scale, causal, num_threads, stream, scratch, flags) -> None: "
     "validate, then (by kind) sanitize cu_seqlens and / or run the CPU or CUDA kernel"},
    {NULL, NULL, 0, NULL}};

/* Adds run() and its RUN_* kinds to module m (called from PyInit__C). */
int csa__py_run_add_methods(PyObject *m);
int csa__py_run_add_methods(PyObject *m) {
  if (PyModule_AddFunctions(m, csa__run_methods) < 0)
    return -1;
  static const struct {
    const char *name;
    long v;
  } kinds[] = {{"RUN_VALIDATE", CSA__RUN_VALIDATE},
               {"RUN_CPU", CSA__RUN_CPU},
               {"RUN_CUDA", CSA__RUN_CUDA},
               {"RUN_SANITIZE", CSA__RUN_SANITIZE},
               {"RUN_CUDA_SANITIZED", CSA__RUN_CUDA_SANITIZED},
               {"RUN_CUDA_FLAGGED", CSA__RUN_CUDA_FLAGGED}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (PyModule_AddIntConstant(m, kinds[i].name, kinds[i].v) < 0)
      return -1;
  return 0;
}
