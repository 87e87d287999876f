/*
 * attn_plan.h — the host-side launch plan of the attention kernels: which
 * kernel (module + name), grid, block, dynamic shared memory, and the plan's
 * fields of the args struct (tile kind, heads per CTA, pipeline depth).
 */
#ifndef CSA_CUDA_ATTN_PLAN_H
#define CSA_CUDA_ATTN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "cuda/attn_args.h"
#include "cuda/loader.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csa__attn_plan {
  const char *module; /* fatbin stem */
  char kernel[64];    /* extern "C" name inside it */
  csa__cuda_kernel fn;
  unsigned grid[3];
  unsigned block;
  size_t smem; /* dynamic shared memory, bytes */
  /* The kernel's single by-value parameter: NULL = the csa__cuda_attn_args
   * of the call; a kernel family with its own parameter block (e.g. with
   * TMA descriptors) builds it in arg_buf and points arg there. */
  const void *arg;
  union {
    uint64_t align; /* 8-byte alignment for the block */
    unsigned char bytes[1024];
  } arg_buf;
} csa__attn_plan;

/* Tuning knobs, read from the environment once (csa__cuda_knobs_reload
 * reads them again: tests and benchmarks only).
 *   COMFY_SPARSE_ATTN_CUDA_TILE=small|smallw|big   force the tile kind
 *       (default: small when the average query length T_q / B is <= 96,
 *       smallw up to 384 (D <= 64) / 128 (D = 128) on GPUs with >= 200 KiB
 *       of shared memory per block)
 *   COMFY_SPARSE_ATTN_CUDA_HEADS_PER_CTA=N  query heads one CTA runs in turn
 *       (small tiles only; default: up to 8, balanced)
 *   COMFY_SPARSE_ATTN_CUDA_STAGES=1|2|3     K/V pipeline depth (still shrunk
 *       to what the GPU's shared memory allows)
 *   COMFY_SPARSE_ATTN_CUDA_SM90=0           keep Hopper GPUs on the mma.sync
 *       kernel (default: the wgmma kernel takes the calls it covers)
 */
typedef struct csa__cuda_knobs {
  int tile;   /* -1 auto, 0 big, 1 small */
  int hpc;    /* 0 auto */
  int stages; /* 0 auto */
  int sm90;   /* 1: Hopper wgmma kernel where it covers the call */
  int wide;   /* -1 auto (by shared memory), 0 small, 1 smallw */
} csa__cuda_knobs;
const csa__cuda_knobs *csa__cuda_knobs_get(void);
void csa__cuda_knobs_reload(void);

/* Fills a->small / hpc / stages and *p for one call on c's device (dtype:
 * csa_dtype).  May look kernels up (loading modules) and query occupancy. */
int csa__attn_plan_make(csa__cuda_call *c, csa__cuda_attn_args *a, int dtype,
                        csa__attn_plan *p);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_ATTN_PLAN_H */
