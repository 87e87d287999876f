/*
 * sanitize.c — csa_cuda_sanitize_cu_seqlens (csa_cuda.h): checks the four
 * int32 [B + 1] views and the flags word, then launches the sanitizer
 * kernel (sanitize.cu) once on the caller's stream.
 */
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "csa/csa_cuda.h"
#include "cuda/loader.h"
#include "cuda/sanitize_args.h"

static int csa__check_cu(const csa_tensor *t, const char *name, int device, int64_t n) {
  if (t->data == NULL && n > 0)
    return csa__error(CSA_EINVAL, "%s is missing", name);
  if (t->device_type != CSA_DEVICE_CUDA || t->device_id != device)
    return csa__error(CSA_EDEVICE, "%s must be on CUDA device %d", name, device);
  if (t->dtype != CSA_INT32)
    return csa__error(CSA_EDTYPE, "%s must be int32", name);
  if (t->ndim != 1 || t->shape[0] != n)
    return csa__error(CSA_ESHAPE, "%s must be 1-D with %lld entries (B + 1)", name,
                      (long long)n);
  if (n > 1 && t->strides[0] != 1)
    return csa__error(CSA_ESTRIDE, "%s must be contiguous", name);
  return CSA_OK;
}

static int64_t csa__clamp_nonneg(int64_t x) {
  return x < 0 ? 0 : (x > INT32_MAX ? INT32_MAX : x);
}

int csa_cuda_sanitize_cu_seqlens(const csa_tensor *cu_q, const csa_tensor *cu_kv,
                                 const csa_tensor *out_q, const csa_tensor *out_kv,
                                 const csa_tensor *flags, int64_t total_q, int64_t total_kv,
                                 int64_t max_q, int64_t max_kv, void *stream) {
  if (cu_q->device_type != CSA_DEVICE_CUDA || cu_q->ndim != 1)
    return csa__error(CSA_EDEVICE, "cu_seqlens_q must be a 1-D CUDA tensor");
  const int dev = cu_q->device_id;
  const int64_t n = cu_q->shape[0];
  if (n < 1)
    return csa__error(CSA_ESHAPE, "cu_seqlens_q must have B + 1 >= 1 entries");
  int st = csa__check_cu(cu_q, "cu_seqlens_q", dev, n);
  if (st == CSA_OK)
    st = csa__check_cu(cu_kv, "cu_seqlens_kv", dev, n);
  if (st == CSA_OK)
    st = csa__check_cu(out_q, "out_q", dev, n);
  if (st == CSA_OK)
    st = csa__check_cu(out_kv, "out_kv", dev, n);
  if (st != CSA_OK)
    return st;
  int32_t *flag_addr = NULL;
  st = csa__cuda_flags_address(flags, dev, &flag_addr);
  if (st != CSA_OK)
    return st;
  if (total_q < 0 || total_kv < 0 || total_q > INT32_MAX || total_kv > INT32_MAX)
    return csa__error(CSA_EINVAL, "total_q and total_kv must be in [0, 2^31)");

  csa__cuda_call c;
  st = csa__cuda_begin(&c, dev);
  if (st != CSA_OK)
    return st;
  csa__cu_sanitize_args a;
  memset(&a, 0, sizeof a);
  a.flags = flag_addr;
  csa__cuda_kernel k;
  st = csa__cuda_find(&c, "sanitize", "csa_sanitize_cu_seqlens", &k);
  if (st == CSA_OK) {
    a.cu[0] = (const int32_t *)cu_q->data;
    a.cu[1] = (const int32_t *)cu_kv->data;
    a.out[0] = (int32_t *)out_q->data;
    a.out[1] = (int32_t *)out_kv->data;
    a.n = n;
    a.total[0] = total_q;
    a.total[1] = total_kv;
    a.max_len[0] = csa__clamp_nonneg(max_q);
    a.max_len[1] = csa__clamp_nonneg(max_kv);
    const unsigned grid[3] = {2, 1, 1};
    st = csa__cuda_launch(&c, &k, grid, CSA__SANITIZE_THREADS, 0, stream, &a);
  }
  csa__cuda_end(&c);
  return st;
}
