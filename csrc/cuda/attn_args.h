/*
 * attn_args.h — what the C entry point (attn_cuda.c) hands the CUDA
 * launcher (attn_fwd.cu): raw pointers, element strides and sizes of one
 * validated call.  Plain C so both compilers read it.
 */
#ifndef CSA_CUDA_ATTN_ARGS_H
#define CSA_CUDA_ATTN_ARGS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csa__cuda_attn_args {
  const void *q, *k, *v;
  void *out;
  float *lse; /* NULL: not requested */
  const int32_t *cu_q, *cu_kv;
  /* strides in elements: [token, head] (the last dim is unit-stride) */
  int64_t q_st_t, q_st_h, k_st_t, k_st_h, v_st_t, v_st_h, o_st_t, o_st_h;
  int64_t lse_st_h, lse_st_t;
  int32_t t_q, t_kv, heads, heads_kv, d, dv, batch;
  int32_t max_q, max_kv; /* clamped to [0, T] */
  int32_t causal;
  int32_t vec;   /* 1: every row start is 16-byte aligned (vector loads) */
  int32_t small; /* 1: short-sequence tile shape (see attn_fwd.cu) */
  int32_t hpc;   /* query heads per CTA, run one after another (>= 1) */
  float scale, scale_log2;
} csa__cuda_attn_args;

/* Launches the forward kernel for dtype (csa_dtype) on stream; returns a
 * cudaError_t value (0 = success) and, on failure, names the step in *what.
 * CSA_ENOTSUP-type refusals come back as -1 with *what explaining. */
int csa__cuda_attn_launch(const csa__cuda_attn_args *a, int dtype, void *stream,
                          const char **what);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_ATTN_ARGS_H */
