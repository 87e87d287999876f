/*
 * validate.c — every check a kernel relies on, done before any kernel runs.
 *
 * Bad cu_seqlens reaching a GPU kernel means an out-of-bounds read that kills
 * the user's whole ComfyUI session, so the values are checked here whenever
 * they are host-readable, and each message names the argument and the form
 * that was expected.
 */
#include <math.h>

#include "internal.h"

static int csa__is_float_dtype(int dt) {
  return dt == CSA_FLOAT32 || dt == CSA_FLOAT16 || dt == CSA_BFLOAT16;
}

/* A device validation can describe: every table device but OTHER (which no
 * DLPack capsule carries).  Only CPU and CUDA have kernels here; the others
 * are validated for the torch tier. */
static int csa__known_device(int dev) {
  switch (dev) {
#define CSA__KNOWN_CASE(name, val, str) case CSA_DEVICE_##name:
    CSA_DEVICE_MAP(CSA__KNOWN_CASE)
#undef CSA__KNOWN_CASE
    return dev != CSA_DEVICE_OTHER;
  default:
    return 0;
  }
}

/* Rank, dtype and unit last-dim stride of one operand. */
static int csa__check_operand(const csa_tensor *t, const char *name, int ndim) {
  if (t->data == NULL && t->ndim == 0)
    return csa__error(CSA_EINVAL, "%s is missing", name);
  if (t->ndim != ndim)
    return csa__error(CSA_ESHAPE, "%s must have %d dimensions, got %d", name, ndim,
                      (int)t->ndim);
  for (int i = 0; i < ndim; i++) {
    if (t->shape[i] < 0)
      return csa__error(CSA_ESHAPE, "%s has a negative size in dimension %d", name, i);
    if (t->strides[i] < 0)
      return csa__error(CSA_ESTRIDE,
                        "%s has a negative stride in dimension %d; pass a tensor "
                        "with non-negative strides",
                        name, i);
  }
  /* A dimension of size 1 never advances, so any stride is fine there. */
  if (t->shape[ndim - 1] > 1 && t->strides[ndim - 1] != 1)
    return csa__error(CSA_ESTRIDE,
                      "%s must be contiguous in its last dimension (stride 1), got "
                      "stride %lld; call .contiguous() on it",
                      name, (long long)t->strides[ndim - 1]);
  if (t->data == NULL) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
      n *= t->shape[i];
    if (n != 0)
      return csa__error(CSA_EINVAL, "%s has a NULL data pointer", name);
  }
  return CSA_OK;
}

static int csa__same_device(const csa_tensor *a, const csa_tensor *b, const char *na,
                            const char *nb) {
  if (a->device_type != b->device_type || a->device_id != b->device_id)
    return csa__error(CSA_EDEVICE, "%s is on %s:%d but %s is on %s:%d; move them to one device",
                      nb, csa_device_name(b->device_type), (int)b->device_id, na,
                      csa_device_name(a->device_type), (int)a->device_id);
  return CSA_OK;
}

/* The output is written, so two of its elements must never share memory:
 * row-major nesting of the strides is a simple sufficient condition. */
static int csa__check_no_overlap(const csa_tensor *t, const char *name) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0)
      return CSA_OK; /* no elements: nothing can overlap */
  int64_t inner_extent = 1; /* elements spanned by one step of the next-outer dim */
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] > 1 && t->strides[i] < inner_extent)
      return csa__error(CSA_ESTRIDE,
                        "%s has overlapping or interleaved strides; pass a contiguous "
                        "output tensor",
                        name);
    if (t->shape[i] > 1)
      inner_extent = t->strides[i] * t->shape[i];
    else if (inner_extent < 1)
      inner_extent = 1;
  }
  return CSA_OK;
}

static int csa__check_cu(const csa_tensor *cu, const int32_t *host, const char *name,
                         int64_t total, int64_t max_seqlen, const char *max_name) {
  if (cu->dtype != CSA_INT32)
    return csa__error(CSA_EDTYPE, "%s must be int32, got %s", name, csa_dtype_name(cu->dtype));
  if (cu->ndim != 1)
    return csa__error(CSA_ESHAPE, "%s must be 1-D [B+1], got %d dimensions", name,
                      (int)cu->ndim);
  if (cu->shape[0] < 1)
    return csa__error(CSA_ECUSEQ, "%s must have at least one element (cu[0] = 0), got 0", name);
  if (cu->shape[0] > 1 && cu->strides[0] != 1)
    return csa__error(CSA_ESTRIDE, "%s must be contiguous; call .contiguous() on it", name);
  if (cu->data == NULL)
    return csa__error(CSA_EINVAL, "%s has a NULL data pointer", name);
  if (max_seqlen < 0)
    return csa__error(CSA_EINVAL, "%s must be >= 0, got %lld", max_name, (long long)max_seqlen);
  if (host == NULL) {
    if (cu->device_type != CSA_DEVICE_CPU)
      return CSA_OK; /* not host-readable: device kernels clamp */
    host = (const int32_t *)cu->data;
  }
  int64_t nb = cu->shape[0] - 1;
  if (host[0] != 0)
    return csa__error(CSA_ECUSEQ, "%s[0] must be 0, got %d", name, (int)host[0]);
  if ((int64_t)host[nb] != total)
    return csa__error(CSA_ECUSEQ,
                      "%s[-1] must equal the number of packed tokens (%lld), got %d", name,
                      (long long)total, (int)host[nb]);
  for (int64_t b = 0; b < nb; b++) {
    int64_t len = (int64_t)host[b + 1] - host[b];
    if (len < 0)
      return csa__error(CSA_ECUSEQ,
                        "%s must be non-decreasing, but %s[%lld] = %d > %s[%lld] = %d", name,
                        name, (long long)b, (int)host[b], name, (long long)(b + 1),
                        (int)host[b + 1]);
    if (len > max_seqlen)
      return csa__error(CSA_ECUSEQ,
                        "sequence %lld has length %lld, longer than %s = %lld; pass the "
                        "real maximum length",
                        (long long)b, (long long)len, max_name, (long long)max_seqlen);
  }
  return CSA_OK;
}

/* q, k, v and out are present, rank 3 and well-strided; later checks read
 * their shapes, so this runs before anything else. */
static int csa__check_operands(const csa_attn_params *p) {
  int st;
  if ((st = csa__check_operand(&p->q, "q", 3)) ||
      (st = csa__check_operand(&p->k, "k", 3)) ||
      (st = csa__check_operand(&p->v, "v", 3)) ||
      (st = csa__check_operand(&p->out, "out", 3)))
    return st;
  return CSA_OK;
}

/* One floating dtype for q, k, v and out: the kernels are instantiated per
 * dtype and never convert between operands. */
static int csa__check_dtypes(const csa_attn_params *p) {
  if (!csa__is_float_dtype(p->q.dtype))
    return csa__error(CSA_EDTYPE, "q must be float32, float16 or bfloat16, got %s",
                      csa_dtype_name(p->q.dtype));
  if (p->k.dtype != p->q.dtype || p->v.dtype != p->q.dtype)
    return csa__error(CSA_EDTYPE, "q, k and v must share one dtype, got %s, %s, %s",
                      csa_dtype_name(p->q.dtype), csa_dtype_name(p->k.dtype),
                      csa_dtype_name(p->v.dtype));
  if (p->out.dtype != p->q.dtype)
    return csa__error(CSA_EDTYPE, "out must have q's dtype %s, got %s",
                      csa_dtype_name(p->q.dtype), csa_dtype_name(p->out.dtype));
  return CSA_OK;
}

/* q's device is one we know (and the backend's, when it needs one), and
 * every other tensor sits on that same device. */
static int csa__check_devices(const csa_attn_params *p, int require_device) {
  int st;
  int dev = p->q.device_type;
  if (!csa__known_device(dev))
    return csa__error(CSA_EDEVICE, "q is on an unsupported device type %d", dev);
  if (require_device && dev != require_device)
    return csa__error(CSA_EDEVICE, "this backend needs %s tensors, but q is on %s",
                      csa_device_name(require_device), csa_device_name(dev));
  if ((st = csa__same_device(&p->q, &p->k, "q", "k")) ||
      (st = csa__same_device(&p->q, &p->v, "q", "v")) ||
      (st = csa__same_device(&p->q, &p->out, "q", "out")) ||
      (st = csa__same_device(&p->q, &p->cu_seqlens_q, "q", "cu_seqlens_q")) ||
      (st = csa__same_device(&p->q, &p->cu_seqlens_kv, "q", "cu_seqlens_kv")))
    return st;
  return CSA_OK;
}

/* q [T_q, H, D], k [T_kv, H_kv, D], v [T_kv, H_kv, D_v], out [T_q, H, D_v]
 * with H a multiple of H_kv (grouped-query heads), and out free of
 * overlapping elements since it is written. */
static int csa__check_shapes(const csa_attn_params *p) {
  int64_t tq = p->q.shape[0], h = p->q.shape[1], d = p->q.shape[2];
  int64_t tkv = p->k.shape[0], hkv = p->k.shape[1];
  int64_t dv = p->v.shape[2];
  if (h < 1 || d < 1)
    return csa__error(CSA_ESHAPE, "q must be [T_q, H, D] with H >= 1 and D >= 1, got [%lld, %lld, %lld]",
                      (long long)tq, (long long)h, (long long)d);
  if (hkv < 1 || h % hkv != 0)
    return csa__error(CSA_ESHAPE,
                      "k has %lld heads; the %lld query heads must be a multiple of it "
                      "(H %% H_kv == 0)",
                      (long long)hkv, (long long)h);
  if (p->k.shape[2] != d)
    return csa__error(CSA_ESHAPE, "k must be [T_kv, H_kv, D] with q's D = %lld, got D = %lld",
                      (long long)d, (long long)p->k.shape[2]);
  if (p->v.shape[0] != tkv || p->v.shape[1] != hkv)
    return csa__error(CSA_ESHAPE,
                      "v must be [T_kv, H_kv, D_v] = [%lld, %lld, *] like k, got [%lld, %lld, %lld]",
                      (long long)tkv, (long long)hkv, (long long)p->v.shape[0],
                      (long long)p->v.shape[1], (long long)dv);
  if (dv < 1)
    return csa__error(CSA_ESHAPE, "v must have D_v >= 1");
  if (p->out.shape[0] != tq || p->out.shape[1] != h || p->out.shape[2] != dv)
    return csa__error(CSA_ESHAPE, "out must be [T_q, H, D_v] = [%lld, %lld, %lld], got [%lld, %lld, %lld]",
                      (long long)tq, (long long)h, (long long)dv, (long long)p->out.shape[0],
                      (long long)p->out.shape[1], (long long)p->out.shape[2]);
  return csa__check_no_overlap(&p->out, "out");
}

/* Both cu_seqlens describe the same B sequences, and each is consistent
 * with its packed token count and its max_seqlen. */
static int csa__check_cu_pair(const csa_attn_params *p, int64_t tq, int64_t tkv) {
  int st;
  if (p->cu_seqlens_q.ndim == 1 && p->cu_seqlens_kv.ndim == 1 &&
      p->cu_seqlens_q.shape[0] != p->cu_seqlens_kv.shape[0])
    return csa__error(CSA_ECUSEQ,
                      "cu_seqlens_q and cu_seqlens_kv must have the same length B+1, got %lld "
                      "and %lld",
                      (long long)p->cu_seqlens_q.shape[0], (long long)p->cu_seqlens_kv.shape[0]);
  if ((st = csa__check_cu(&p->cu_seqlens_q, p->cu_seqlens_q_host, "cu_seqlens_q", tq,
                          p->max_seqlen_q, "max_seqlen_q")) ||
      (st = csa__check_cu(&p->cu_seqlens_kv, p->cu_seqlens_kv_host, "cu_seqlens_kv", tkv,
                          p->max_seqlen_kv, "max_seqlen_kv")))
    return st;
  return CSA_OK;
}

/* The optional lse output, float32 [H, T_q]; absent when both its data
 * pointer and its rank are zero. */
static int csa__check_lse(const csa_attn_params *p, int64_t h, int64_t tq) {
  int st;
  if (p->lse.data == NULL && p->lse.ndim == 0)
    return CSA_OK;
  if (p->lse.dtype != CSA_FLOAT32)
    return csa__error(CSA_EDTYPE, "lse must be float32, got %s", csa_dtype_name(p->lse.dtype));
  if (p->lse.ndim != 2 || p->lse.shape[0] != h || p->lse.shape[1] != tq)
    return csa__error(CSA_ESHAPE, "lse must be [H, T_q] = [%lld, %lld]", (long long)h,
                      (long long)tq);
  if ((st = csa__check_operand(&p->lse, "lse", 2)) ||
      (st = csa__same_device(&p->q, &p->lse, "q", "lse")) ||
      (st = csa__check_no_overlap(&p->lse, "lse")))
    return st;
  return CSA_OK;
}

int csa__attn_check(const csa_attn_params *p, int require_device, csa__attn_dims *dims) {
  int st;
  if (p == NULL)
    return csa__error(CSA_EINVAL, "params is NULL");
  if ((st = csa__check_operands(p)) || (st = csa__check_dtypes(p)) ||
      (st = csa__check_devices(p, require_device)) || (st = csa__check_shapes(p)))
    return st;

  int64_t tq = p->q.shape[0], h = p->q.shape[1], d = p->q.shape[2];
  int64_t tkv = p->k.shape[0], hkv = p->k.shape[1];
  int64_t dv = p->v.shape[2];
  if ((st = csa__check_cu_pair(p, tq, tkv)) || (st = csa__check_lse(p, h, tq)))
    return st;

  /* A non-positive scale asks for the default 1/sqrt(D). */
  float scale = p->softmax_scale;
  if (isnan(scale) || isinf(scale))
    return csa__error(CSA_EINVAL, "softmax_scale must be finite");
  if (scale <= 0.0f)
    scale = (float)(1.0 / sqrt((double)d));

  if (dims) {
    dims->total_q = tq;
    dims->total_kv = tkv;
    dims->heads = h;
    dims->heads_kv = hkv;
    dims->head_dim = d;
    dims->head_dim_v = dv;
    dims->batch = p->cu_seqlens_q.shape[0] - 1;
    dims->scale = scale;
  }
  return CSA_OK;
}

int csa_attn_validate(const csa_attn_params *p) { return csa__attn_check(p, 0, NULL); }
