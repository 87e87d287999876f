/*
 * attn_params.c — host copies of cu_seqlens and the missing output's
 * description, shared by both attention bindings (attn_params.h).
 */
#include "attn_params.h"

#include <string.h>

#include "dlpack.h"

void csa__py_keep_release(csa__py_keepalive *ka) {
  for (int i = 0; i < ka->n; i++)
    Py_XDECREF(ka->keep[i]);
  ka->n = 0;
}

int csa__py_view_opt(PyObject *obj, const char *name, int writable, csa_tensor *view,
                     csa__py_keepalive *ka) {
  memset(view, 0, sizeof *view);
  if (obj == Py_None)
    return 0;
  PyObject *keep;
  if (csa__py_tensor_view(obj, name, writable, view, &keep) < 0)
    return -1;
  ka->keep[ka->n++] = keep;
  return 0;
}

int csa__py_take_host_copies(csa_attn_params *p, const csa_tensor *hq, const csa_tensor *hk) {
  const csa_tensor *hv[2] = {hq, hk};
  const csa_tensor *dv[2] = {&p->cu_seqlens_q, &p->cu_seqlens_kv};
  const int32_t **hp[2] = {&p->cu_seqlens_q_host, &p->cu_seqlens_kv_host};
  for (int i = 0; i < 2; i++) {
    /* a device tensor that is not int32 [B+1] is the caller's error, which
     * validation names ("cu_seqlens_q must be int32, got int64") */
    if (hv[i]->data == NULL || dv[i]->dtype != CSA_INT32 || dv[i]->ndim != 1)
      continue;
    if (hv[i]->device_type != CSA_DEVICE_CPU || hv[i]->dtype != CSA_INT32 || hv[i]->ndim != 1 ||
        hv[i]->shape[0] != dv[i]->shape[0] || (hv[i]->shape[0] > 1 && hv[i]->strides[0] != 1)) {
      PyErr_SetString(PyExc_ValueError,
                      "cu_seqlens_q_host / cu_seqlens_kv_host must be contiguous int32 CPU "
                      "tensors of the same length as cu_seqlens_q / cu_seqlens_kv");
      return -1;
    }
    *hp[i] = (const int32_t *)hv[i]->data;
  }
  return 0;
}

void csa__py_describe_missing_out(csa_attn_params *p) {
  p->out = p->q;
  if (p->q.ndim == 3 && p->v.ndim == 3) {
    p->out.shape[2] = p->v.shape[2];
    p->out.strides[2] = 1;
    p->out.strides[1] = p->v.shape[2];
    p->out.strides[0] = p->q.shape[1] * p->v.shape[2];
  }
}
