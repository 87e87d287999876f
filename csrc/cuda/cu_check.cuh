/*
 * cu_check.cuh — the cu_seqlens check an attention launch does itself, so
 * that a native call on device cu_seqlens is one launch (no sanitizer
 * kernel before it) and still reports bad values.
 *
 * The kernels never need the sanitizer's clamped copies: every bound they
 * read is clamped on the spot (seq_rows.cuh), so garbage cannot move an
 * access out of the tensors; what the sanitizer adds for them is only the
 * report.  Here the launch's threads, as one grid-stride loop, check each
 * of the 2 (B + 1) entries against its raw predecessor, exactly the
 * sanitizer's per-pair rules (sanitize.cu; bits of csa_cuda.h):
 *
 *   cu[0] != 0                       START
 *   cu[i] < cu[i-1]                  DECREASE
 *   cu[i] - cu[i-1] > max_seqlen     MAXLEN   (when not decreasing)
 *   cu[B] != T                       TOTAL
 *
 * and OR the bits into the violation word (q in byte 0, kv in byte 1).  A
 * launch has thousands of threads and B + 1 is usually smaller, so a thread
 * checks at most a few entries (two loads that hit L2 after the first CTA)
 * before its tile work; valid input writes nothing, and garbage costs one
 * atomic per bad entry — an error path.  Every CTA runs it first, before
 * any early exit.
 */
#ifndef CSA_CUDA_CU_CHECK_CUH
#define CSA_CUDA_CU_CHECK_CUH

#include <stdint.h>

#include "attn_args.h"

static __device__ __forceinline__ void csa__cu_check(const csa__cuda_attn_args &a) {
  if (a.cu_flags == nullptr)
    return;
  const int64_t n = (int64_t)a.batch + 1;
  const int64_t cta =
      blockIdx.x + (int64_t)gridDim.x * (blockIdx.y + (int64_t)gridDim.y * blockIdx.z);
  const int64_t stride = (int64_t)blockDim.x * gridDim.x * gridDim.y * gridDim.z;
  for (int64_t e = cta * blockDim.x + threadIdx.x; e < 2 * n; e += stride) {
    const int w = e >= n; /* 0: q, 1: kv */
    const int64_t i = e - (w ? n : 0);
    const int32_t *const cu = w ? a.cu_kv : a.cu_q;
    const int64_t total = w ? a.t_kv : a.t_q, max_len = w ? a.cu_max_kv : a.cu_max_q;
    const int64_t c = __ldg(cu + i);
    unsigned bits = 0;
    if (i == 0) {
      if (c != 0)
        bits |= 0x1u;
    } else {
      const int64_t prev = __ldg(cu + i - 1);
      if (c < prev)
        bits |= 0x2u;
      else if (c - prev > max_len)
        bits |= 0x8u;
    }
    if (i == n - 1 && c != total)
      bits |= 0x4u;
    if (bits != 0)
      atomicOr(reinterpret_cast<unsigned *>(a.cu_flags), bits << (8 * w));
  }
}

#endif /* CSA_CUDA_CU_CHECK_CUH */
