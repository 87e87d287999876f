/*
 * attn_args.h — the single by-value parameter of every attention kernel
 * (attn_fwd.cu): raw pointers, element strides and sizes of one validated
 * call plus the launch plan's choices.  Plain C so both compilers read it;
 * host and device must agree on its layout (same struct, same ABI).
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
  int32_t stages; /* K/V ring depth, 1..3 (chosen by the launch plan) */
  float scale, scale_log2;
  /* cu_seqlens check done by the kernel itself (cu_check.cuh): NULL = none
   * (host-checked or sanitized input); else the device-visible address of
   * the violation word the sanitizer would write (CSA_CU_* bits of
   * csa_cuda.h), and the unclamped max_seqlen_q / _kv (>= 0) the lengths
   * are held against. */
  int32_t *cu_flags;
  int32_t cu_max_q, cu_max_kv;
} csa__cuda_attn_args;

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_ATTN_ARGS_H */
