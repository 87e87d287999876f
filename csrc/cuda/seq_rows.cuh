/*
 * seq_rows.cuh — the per-row sequence plan both attention kernels share
 * (attn_fwd.cu, attn_fwd_sm90.cu): which keys a packed query row sees, with
 * every bound of the (possibly unchecked) cu_seqlens clamped so that no
 * access can leave the tensors, and the union of a CTA's row ranges.
 *
 * For row r of sequence s:
 *   qs = clamp(cu_q[s], 0, T_q),   qe = clamp(cu_q[s+1], qs, min(T_q, qs + max_q)),
 *   kvs, kve likewise on cu_kv, T_kv and max_kv;
 *   keys [kvs, lim) with lim = kve, or for causal (bottom-right aligned)
 *   lim = min(kve, kvs + (r - qs) + (kve - kvs) - (qe - qs) + 1).
 * A row outside [qs, qe) or without keys keeps the empty range
 * ks = INT_MAX, ke = INT_MIN (neutral for the min / max reductions).
 */
#ifndef CSA_CUDA_SEQ_ROWS_CUH
#define CSA_CUDA_SEQ_ROWS_CUH

#include <limits.h>
#include <stdint.h>

#include "attn_args.h"

static __device__ __forceinline__ int64_t csa__clamp64(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* Keys [*ks, *ke) query row r of sequence sq sees; left untouched (empty)
 * when the row is outside the sequence's clamped rows or sees no key. */
static __device__ __forceinline__ void csa__row_keys(const csa__cuda_attn_args &a, int sq,
                                                     int64_t r, int *ks, int *ke) {
  const int64_t qs = csa__clamp64(__ldg(a.cu_q + sq), 0, a.t_q);
  const int64_t qe = csa__clamp64(__ldg(a.cu_q + sq + 1), qs,
                                  qs + a.max_q < a.t_q ? qs + a.max_q : a.t_q);
  const int64_t kvs = csa__clamp64(__ldg(a.cu_kv + sq), 0, a.t_kv);
  const int64_t kve = csa__clamp64(__ldg(a.cu_kv + sq + 1), kvs,
                                   kvs + a.max_kv < a.t_kv ? kvs + a.max_kv : a.t_kv);
  if (r >= qs && r < qe) {
    int64_t lim = kve;
    if (a.causal) {
      const int64_t c = kvs + (r - qs) + (kve - kvs) - (qe - qs) + 1;
      lim = c < kve ? c : kve;
    }
    if (lim > kvs) {
      *ks = (int)kvs;
      *ke = (int)lim;
    }
  }
}

/* Union [*lo, *hi) of the BM row ranges in shared memory, computed by every
 * lane of a warp (identical in every warp that calls it). */
template <int BM>
static __device__ __forceinline__ void csa__cta_key_range(const int *sKs, const int *sKe,
                                                          int lane, int *lo, int *hi) {
  int c_lo = INT_MAX, c_hi = INT_MIN;
#pragma unroll
  for (int i = 0; i < BM / 32; ++i) {
    c_lo = min(c_lo, sKs[lane + 32 * i]);
    c_hi = max(c_hi, sKe[lane + 32 * i]);
  }
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    c_lo = min(c_lo, __shfl_xor_sync(0xffffffffu, c_lo, off));
    c_hi = max(c_hi, __shfl_xor_sync(0xffffffffu, c_hi, off));
  }
  *lo = c_lo;
  *hi = c_hi;
}

#endif /* CSA_CUDA_SEQ_ROWS_CUH */
