/*
 * attn_sm90_plan.h — which calls the Hopper (sm_90a, wgmma) forward kernel
 * of attn_fwd_sm90.cu covers, and how to launch it.  Plain C, no CUDA
 * headers: the host side (CUDA driver API) calls csa__sm90_plan() and, when
 * it returns 1, loads the named kernel from the sm_90a module and launches
 *   grid (grid[0], grid[1], grid[2]), block (block[0], 1, 1),
 *   dynamic shared memory smem_bytes (raise the function's
 *   MAX_DYNAMIC_SHARED_SIZE_BYTES attribute to it first: above 48 KiB),
 *   one kernel parameter: the csa__cuda_attn_args struct, by value.
 * When it returns 0 the call is not covered and the mma.sync kernel runs.
 *
 * Shapes (attn_fwd_sm90.cu): a CTA owns CSA__SM90_BM(c) consecutive packed
 * query rows of one head (CSA__SM90_WG(c) consumer warpgroups of 64 rows
 * each, plus one producer warpgroup) and streams the keys those rows see in
 * blocks of CSA__SM90_BN(c) through a K/V ring of CSA__SM90_STAGES shared-memory
 * stages.  Grid: (row tiles, heads), row tiles fastest so that the CTAs
 * running together share one head's K/V in L2.  Shared memory, all
 * 1024-byte aligned for the 128-byte swizzle: Q [BM][D], K and V
 * [STAGES][BN][D] (16-bit), two int row ranges per query row, the ring's
 * mbarriers, plus 1 KiB of alignment slack: 226 KiB at D = 128 (one CTA
 * per SM; the H100/H200 grant is 227 KiB per block).
 *
 * The knobs below (#ifndef) exist for tuning builds of the kernel module;
 * the host must include this header with the same values the module was
 * built with, i.e. without defining any of them.
 */
#ifndef CSA_CUDA_ATTN_SM90_PLAN_H
#define CSA_CUDA_ATTN_SM90_PLAN_H

#include "attn_args.h"
#include "csa/csa.h"

/*
 * Tile configurations, by id c: 0 = D 64, 1 = D 128, 2 = D 128 when no
 * sequence has more than CSA__SM90_SHORT_KEYS keys.  Per configuration:
 * consumer warpgroups (WG, each owning 64 query rows; all of them share
 * every K/V block the producer brings in) and keys per block (BN).
 *   D 64: three warpgroups, 128-key blocks (192-row tiles: more products in
 *     flight per SM to cover the softmax, and each K/V block serves 1.5x
 *     the rows of a 128-row tile).
 *   D 128: two, 128-key blocks; three would not fit O (64 registers), S
 *     (64) and P (32) in the 160 registers setmaxnreg can give each
 *     consumer of a 512-thread CTA.
 *   D 128, short keys: three, 64-key blocks (S and P halve, so the third
 *     warpgroup fits): with few blocks per row tile, the per-tile start
 *     (Q, the first S) is what the extra warpgroup covers.
 * (bench/RESULTS.md, "Hopper kernel: tiles per head dim", has the
 * measurements behind each choice.)
 */
#ifndef CSA__SM90_WG_D64
#define CSA__SM90_WG_D64 3
#endif
#ifndef CSA__SM90_WG_D128
#define CSA__SM90_WG_D128 2
#endif
#ifndef CSA__SM90_WG_D128S
#define CSA__SM90_WG_D128S 3
#endif
#ifndef CSA__SM90_BN_D64
#define CSA__SM90_BN_D64 128
#endif
#ifndef CSA__SM90_BN_D128
#define CSA__SM90_BN_D128 128
#endif
#ifndef CSA__SM90_BN_D128S
#define CSA__SM90_BN_D128S 64
#endif
#ifndef CSA__SM90_SHORT_KEYS
#define CSA__SM90_SHORT_KEYS 2048 /* max_seqlen_kv at or below which D 128 takes c = 2 */
#endif
#define CSA__SM90_D(c) ((c) == 0 ? 64 : 128)
#define CSA__SM90_WG(c)                                                                        \
  ((c) == 0 ? CSA__SM90_WG_D64 : (c) == 1 ? CSA__SM90_WG_D128 : CSA__SM90_WG_D128S)
#define CSA__SM90_BN(c)                                                                        \
  ((c) == 0 ? CSA__SM90_BN_D64 : (c) == 1 ? CSA__SM90_BN_D128 : CSA__SM90_BN_D128S)
#define CSA__SM90_BM(c) (64 * CSA__SM90_WG(c)) /* query rows per CTA */
#ifndef CSA__SM90_STAGES
#define CSA__SM90_STAGES 3 /* K/V ring depth */
#endif
/* 1: a producer warpgroup issues the K/V copies and hands stages over
 * through mbarriers (consumers never wait for each other); 0: every thread
 * copies, one CTA barrier per block. */
#ifndef CSA__SM90_WS
#define CSA__SM90_WS 1
#endif
#define CSA__SM90_THREADS(c) (128 * (CSA__SM90_WG(c) + CSA__SM90_WS))

typedef struct csa__sm90_launch {
  const char *kernel; /* entry point name in the sm_90a module */
  unsigned grid[3];
  unsigned block[3];
  unsigned smem_bytes; /* dynamic shared memory */
} csa__sm90_launch;

/* Dynamic shared memory of the kernel of configuration c. */
static inline unsigned csa__sm90_smem_bytes(int c) {
  const unsigned d = (unsigned)CSA__SM90_D(c);
  return 1024u + (unsigned)CSA__SM90_BM(c) * d * 2u +
         2u * CSA__SM90_STAGES * (unsigned)CSA__SM90_BN(c) * d * 2u +
         2u * (unsigned)CSA__SM90_BM(c) * 4u + 2u * CSA__SM90_STAGES * 8u;
}

/*
 * 1 and *out filled when the Hopper kernel covers the call, else 0.
 * Covered: compute capability 9.0 exactly (sm_90a code runs nowhere else),
 * fp16 / bf16 (dtype: csa_dtype), D = D_v = 64
 * or 128, every row 16-byte aligned (a->vec), long-row tile shape
 * (a->small == 0: the packed short-sequence tiles stay with mma.sync), at
 * least one query row, heads within the grid's y limit.
 */
static inline int csa__sm90_plan(const csa__cuda_attn_args *a, int dtype, int sm_major,
                                 int sm_minor, csa__sm90_launch *out) {
  if (sm_major != 9 || sm_minor != 0)
    return 0;
  if (dtype != CSA_FLOAT16 && dtype != CSA_BFLOAT16)
    return 0;
  if (a->d != a->dv || (a->d != 64 && a->d != 128))
    return 0;
  if (!a->vec || a->small || a->t_q <= 0 || a->heads <= 0 || a->heads > 65535 ||
      a->heads_kv <= 0 || a->heads % a->heads_kv != 0)
    return 0;
  const int c = a->d == 64 ? 0 : a->max_kv <= CSA__SM90_SHORT_KEYS ? 2 : 1;
  static const char *const names[2][3] = {
      {"csa_attn_fwd_sm90_f16_d64", "csa_attn_fwd_sm90_f16_d128", "csa_attn_fwd_sm90_f16_d128s"},
      {"csa_attn_fwd_sm90_bf16_d64", "csa_attn_fwd_sm90_bf16_d128",
       "csa_attn_fwd_sm90_bf16_d128s"}};
  out->kernel = names[dtype == CSA_BFLOAT16][c];
  out->grid[0] = (unsigned)(((long long)a->t_q + CSA__SM90_BM(c) - 1) / CSA__SM90_BM(c));
  out->grid[1] = (unsigned)a->heads;
  out->grid[2] = 1;
  out->block[0] = CSA__SM90_THREADS(c);
  out->block[1] = 1;
  out->block[2] = 1;
  out->smem_bytes = csa__sm90_smem_bytes(c);
  return 1;
}

#endif /* CSA_CUDA_ATTN_SM90_PLAN_H */
