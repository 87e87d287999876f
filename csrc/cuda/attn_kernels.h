/*
 * attn_kernels.h — the tile shapes of the mma.sync attention kernel, one
 * X-macro row per instantiation, read by both sides: attn_fwd.cu defines a
 * kernel csa_attn_fwd_<dtype>_d<DP>_<kind> per row and dtype, and the host
 * launch plan (attn_plan.c) sizes shared memory and grids from the same
 * numbers.
 *
 * X(kind, DP, BN, MT, QREG, MINB, MH):
 *   DP   head dim padded to a multiple of 16 (serves D, D_v <= DP)
 *   BN   keys per shared-memory block
 *   MT   16-row m-tiles per warp (query rows per CTA BM = 64 * MT)
 *   QREG Q fragments kept in registers
 *   MINB CTAs per SM the register allocation must allow
 *   MH   several heads per CTA (short rows)
 *
 * small: short sequences (64-row tiles, 4 CTAs / SM, several heads per CTA);
 * smallw: the short-sequence tiles of GPUs with >= 200 KiB of shared memory
 *   per SM (sm_90, sm_100): twice the keys per block at D 64 with Q read from
 *   shared memory (the freed registers keep 4 CTAs / SM), 32-key blocks at
 *   3 CTAs / SM for D 128.  A 55 KiB CTA would fit only twice on an A100's
 *   164 KiB, hence `small` elsewhere;
 * big: long sequences (128-row tiles, two m-tiles per warp so each K/V
 * fragment read from shared memory feeds two mma).  fp32 inputs use big only.
 */
#ifndef CSA_CUDA_ATTN_KERNELS_H
#define CSA_CUDA_ATTN_KERNELS_H

#define CSA__ATTN_TILES_SMALL(X) \
  X(small, 16, 64, 1, 1, 4, 1)   \
  X(small, 32, 64, 1, 1, 4, 1)   \
  X(small, 64, 32, 1, 1, 4, 1)   \
  X(small, 128, 64, 1, 0, 2, 1)

#define CSA__ATTN_TILES_SMALLW(X) \
  X(smallw, 64, 64, 1, 0, 4, 1)   \
  X(smallw, 128, 32, 1, 0, 3, 1)

#define CSA__ATTN_TILES_BIG(X) \
  X(big, 16, 64, 2, 1, 4, 0)   \
  X(big, 32, 64, 2, 1, 3, 0)   \
  X(big, 64, 64, 2, 1, 1, 0)   \
  X(big, 128, 32, 2, 0, 1, 0)  \
  X(big, 256, 32, 1, 0, 1, 0)

/* The f16 tiles whose fast form takes exponentials in f16 (DP <= 32): they
 * also exist as csa_attn_fwd_f16_d<DP>_<kind>_lse, with fp32 exponentials
 * and row sums of the unrounded P, for calls that return the LSE. */
#define CSA__ATTN_TILES_HEXP(X) \
  X(small, 16, 64, 1, 1, 4, 1)  \
  X(small, 32, 64, 1, 1, 4, 1)  \
  X(big, 16, 64, 2, 1, 4, 0)    \
  X(big, 32, 64, 2, 1, 3, 0)

/* fp32 inputs, exact: each operand as bf16 hi + lo, three products per
 * GEMM (csa_attn_fwd_f32_d<DP>_x3).  Q read from shared memory: the lo
 * fragments double what a warp holds.  D 64 and 128 run two m-tiles per
 * warp (each K/V hi + lo fragment feeds two rows of mma), with 32 / 16-key
 * blocks: the copies of the block after next wait in registers
 * (attn_fwd.cu), and larger blocks would spill. */
#define CSA__ATTN_TILES_X3(X) \
  X(x3, 16, 64, 1, 0, 1, 0)   \
  X(x3, 32, 64, 1, 0, 1, 0)   \
  X(x3, 64, 32, 2, 0, 1, 0)   \
  X(x3, 128, 16, 2, 0, 1, 0)  \
  X(x3, 256, 32, 1, 0, 1, 0)

/* Kernel variants (the body's VAR parameter). */
#define CSA__VAR_FAST 0    /* as fast as the dtype allows */
#define CSA__VAR_EXACT_L 1 /* f16: fp32 exponentials, exact row sums */
#define CSA__VAR_X3 2      /* fp32: split bf16 products */

#define CSA__ATTN_WARPS 4 /* 16 * MT rows each */
#define CSA__ATTN_THREADS (CSA__ATTN_WARPS * 32)
/* Static shared memory per m-tile of each warp (the rows' key ranges),
 * outside the dynamic budget the plan computes. */
#define CSA__ATTN_STATIC_SMEM_PER_MT (2 * 64 * 4)

#endif /* CSA_CUDA_ATTN_KERNELS_H */
