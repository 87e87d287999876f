/*
 * sanitize_args.h — the by-value parameter of the cu_seqlens sanitizer
 * kernel (sanitize.cu; host side in sanitize.c).
 */
#ifndef CSA_CUDA_SANITIZE_ARGS_H
#define CSA_CUDA_SANITIZE_ARGS_H

#include <stdint.h>

typedef struct csa__cu_sanitize_args {
  const int32_t *cu[2]; /* [0]: q, [1]: kv */
  int32_t *out[2];
  int32_t *flags;     /* device-visible address of flags[0] */
  int64_t n;          /* B + 1 entries in each array */
  int64_t total[2];   /* T_q, T_kv */
  int64_t max_len[2]; /* max_seqlen_q, _kv (>= 0) */
} csa__cu_sanitize_args;

/* One CTA per array (blockIdx.x 0: q, 1: kv). */
#define CSA__SANITIZE_THREADS 1024
#define CSA__SANITIZE_PER_THREAD 4

#endif /* CSA_CUDA_SANITIZE_ARGS_H */
