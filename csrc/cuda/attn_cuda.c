/*
 * attn_cuda.c — csa_attn_cuda(): validate, pick the tensors' device, turn the
 * borrowed views into the launcher's flat arguments, launch on the caller's
 * stream, and map any CUDA failure to CSA_ECUDA with the runtime's own words.
 * Never aborts and never leaves a CUDA error pending for the caller.
 */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "cuda/attn_args.h"

int csa_have_cuda(void) { return 1; }

static int csa__cuda_fail(int e, const char *what) {
  return csa__error(CSA_ECUDA, "CUDA error in %s: %s (%s)", what,
                    cudaGetErrorName((cudaError_t)e), cudaGetErrorString((cudaError_t)e));
}

/* 1 if the data pointer and every advancing non-last stride put each row on a
 * 16-byte boundary (the kernels' 16-byte vector loads need it). */
static int csa__rows_aligned16(const csa_tensor *t) {
  size_t es = csa_dtype_size(t->dtype);
  if ((uintptr_t)t->data % 16 != 0)
    return 0;
  for (int i = 0; i < t->ndim - 1; i++)
    if (t->shape[i] > 1 && ((size_t)t->strides[i] * es) % 16 != 0)
      return 0;
  return 1;
}

static int32_t csa__clamp_len(int64_t max_seqlen, int64_t total) {
  return (int32_t)(max_seqlen < 0 ? 0 : (max_seqlen > total ? total : max_seqlen));
}

int csa_attn_cuda(const csa_attn_params *p) {
  csa__attn_dims dims;
  int st = csa__attn_check(p, CSA_DEVICE_CUDA, &dims);
  if (st != CSA_OK)
    return st;
  if (dims.head_dim > 256 || dims.head_dim_v > 256)
    return csa__error(CSA_ENOTSUP,
                      "the CUDA kernel supports head dims up to 256, got D = %lld, D_v = %lld",
                      (long long)dims.head_dim, (long long)dims.head_dim_v);
  if (dims.heads > 65535)
    return csa__error(CSA_ENOTSUP, "the CUDA kernel supports up to 65535 heads, got %lld",
                      (long long)dims.heads);
  if (dims.total_q > INT32_MAX || dims.total_kv > INT32_MAX)
    return csa__error(CSA_ENOTSUP, "the CUDA kernel needs T_q, T_kv < 2^31 (int32 cu_seqlens)");
  if (dims.total_q == 0)
    return CSA_OK; /* nothing to write: out and lse are empty */

  csa__cuda_attn_args a;
  a.q = p->q.data;
  a.k = p->k.data;
  a.v = p->v.data;
  a.out = p->out.data;
  a.lse = (float *)p->lse.data;
  a.cu_q = (const int32_t *)p->cu_seqlens_q.data;
  a.cu_kv = (const int32_t *)p->cu_seqlens_kv.data;
  a.q_st_t = p->q.strides[0];
  a.q_st_h = p->q.strides[1];
  a.k_st_t = p->k.strides[0];
  a.k_st_h = p->k.strides[1];
  a.v_st_t = p->v.strides[0];
  a.v_st_h = p->v.strides[1];
  a.o_st_t = p->out.strides[0];
  a.o_st_h = p->out.strides[1];
  a.lse_st_h = a.lse ? p->lse.strides[0] : 0;
  a.lse_st_t = a.lse ? p->lse.strides[1] : 0;
  a.t_q = (int32_t)dims.total_q;
  a.t_kv = (int32_t)dims.total_kv;
  a.heads = (int32_t)dims.heads;
  a.heads_kv = (int32_t)dims.heads_kv;
  a.d = (int32_t)dims.head_dim;
  a.dv = (int32_t)dims.head_dim_v;
  a.batch = (int32_t)dims.batch;
  a.max_q = csa__clamp_len(p->max_seqlen_q, dims.total_q);
  a.max_kv = csa__clamp_len(p->max_seqlen_kv, dims.total_kv);
  a.causal = p->causal != 0;
  a.vec = csa__rows_aligned16(&p->q) && csa__rows_aligned16(&p->k) &&
          csa__rows_aligned16(&p->v) && csa__rows_aligned16(&p->out);
  /* Tile shape (attn_fwd.cu), from the average query length T_q / B, known
   * without reading cu_seqlens: "small" for averages <= 96 rows, "big"
   * otherwise (H200, bench/RESULTS.md: 8..64-token sequences 2.34 ms small
   * vs 2.85 big; 16..512-token windows 3.57 small vs 2.99 big).
   * CSA_CUDA_TILE=small|big forces one (benchmarks and tuning). */
  const char *tile = getenv("CSA_CUDA_TILE");
  if (tile != NULL && strcmp(tile, "small") == 0)
    a.small = 1;
  else if (tile != NULL && strcmp(tile, "big") == 0)
    a.small = 0;
  else
    a.small = dims.batch > 0 && dims.total_q <= 96 * dims.batch;
  /* Short sequences: one CTA runs up to 8 heads of its rows, so the row plan
   * is made once and each head's first copies overlap the previous head's
   * last block (a CTA of short rows is otherwise mostly pipeline fill). */
  a.hpc = 1;
  if (a.small && dims.total_q <= 96 * dims.batch) {
    int64_t groups = (dims.heads + 7) / 8;
    a.hpc = (int32_t)((dims.heads + groups - 1) / groups);
  }
  const char *hpc_env = getenv("CSA_CUDA_HPC");
  if (hpc_env != NULL && atoi(hpc_env) >= 1)
    a.hpc = atoi(hpc_env) < a.heads ? atoi(hpc_env) : a.heads;
  a.scale = dims.scale;
  a.scale_log2 = dims.scale * 1.4426950408889634f; /* scale * log2(e): exp(x) = 2^(x log2 e) */

  /* Run on the tensors' device, then give the caller back its own. */
  int prev = 0;
  cudaError_t e = cudaGetDevice(&prev);
  if (e != cudaSuccess)
    return csa__cuda_fail(e, "cudaGetDevice");
  if (prev != p->q.device_id) {
    e = cudaSetDevice(p->q.device_id);
    if (e != cudaSuccess)
      return csa__cuda_fail(e, "cudaSetDevice");
  }
  const char *what = "";
  int rc = csa__cuda_attn_launch(&a, p->q.dtype, p->stream, &what);
  if (prev != p->q.device_id)
    (void)cudaSetDevice(prev);
  if (rc == -1)
    return csa__error(CSA_ENOTSUP, "%s", what);
  if (rc != 0)
    return csa__cuda_fail(rc, what);
  return CSA_OK;
}
