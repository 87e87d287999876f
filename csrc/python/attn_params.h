/*
 * attn_params.h — the steps both attention bindings (module.c's keyword
 * entry point, run_binding.c's positional fast path) take between Python
 * arguments and the C core: borrowing the tensors, accepting host copies of
 * cu_seqlens, and describing the output a validation-only call would write.
 */
#ifndef CSA_PYTHON_ATTN_PARAMS_H
#define CSA_PYTHON_ATTN_PARAMS_H

/* Py_LIMITED_API comes from the build (python_add_library USE_SABI 3.10). */
#include <Python.h>

#include "csa/csa.h"

/* Borrowed views plus the capsules that own their descriptors (at most one
 * per tensor argument of an attention call). */
enum { CSA__PY_N_KEEP = 12 };
typedef struct {
  PyObject *keep[CSA__PY_N_KEEP];
  int n;
} csa__py_keepalive;

/* Drops every capsule held (the views are dead afterwards). */
void csa__py_keep_release(csa__py_keepalive *ka);

/* View of an optional tensor argument: None leaves the view empty (data
 * NULL, ndim 0); else borrowed through DLPack, its owner kept in ka.  0, or
 * -1 with the exception naming the argument set. */
int csa__py_view_opt(PyObject *obj, const char *name, int writable, csa_tensor *view,
                     csa__py_keepalive *ka);

/* Host copies (hq / hk, data NULL when absent) are handed on only when they
 * are what they claim: contiguous int32 CPU arrays as long as the device
 * arrays, else validation would read past them.  A device cu_seqlens that
 * is not int32 [B+1] is left for validation to name.  0, or -1 with a
 * ValueError set. */
int csa__py_take_host_copies(csa_attn_params *p, const csa_tensor *hq, const csa_tensor *hk);

/* Validation before the output exists: p->out describes the contiguous
 * [T_q, H, D_v] output the call would need (never written), so the same
 * checks apply. */
void csa__py_describe_missing_out(csa_attn_params *p);

/* What one run step does (run_binding.c; _C.run and the fast path both
 * take it):
 *   RUN_VALIDATE        validation only (out may be described, not given)
 *   RUN_CPU             CPU kernel (its entry point validates first)
 *   RUN_CUDA            CUDA kernel on p->stream (likewise)
 *   RUN_SANITIZE        validate, then the cu_seqlens sanitizer writes clamped
 *                       copies into scratch[0 : B+1] (q) and
 *                       scratch[B+1 : 2(B+1)] (kv); no attention kernel
 *   RUN_CUDA_SANITIZED  RUN_SANITIZE, then the CUDA kernel reading the clamped
 *                       copies: two launches on p->stream, one check
 *   RUN_CUDA_FLAGGED    validate, then the CUDA kernel reading cu_seqlens as
 *                       given and checking their values itself into flags
 *                       (cu_check.cuh): one launch.  A call with T_q = 0
 *                       launches no kernel: RUN_CUDA_SANITIZED instead. */
enum {
  CSA__RUN_VALIDATE = 0,
  CSA__RUN_CPU = 1,
  CSA__RUN_CUDA = 2,
  CSA__RUN_SANITIZE = 3,
  CSA__RUN_CUDA_SANITIZED = 4,
  CSA__RUN_CUDA_FLAGGED = 5
};

/* Runs `kind` on filled params (GIL held; dropped while a kernel runs or
 * launches).  Validation always comes first, so invalid arguments never
 * reach the sanitizer (whose flag bits would then report a value problem
 * for a call that failed for another reason) nor a kernel.  0, or -1 with
 * the Python exception set; *status (may be NULL) receives the C status
 * (CSA_EINVAL for a bad scratch buffer). */
int csa__py_run_params(int kind, csa_attn_params *p, const csa_tensor *scratch,
                       const csa_tensor *flags, int *status);

#endif /* CSA_PYTHON_ATTN_PARAMS_H */
