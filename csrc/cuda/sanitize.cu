/*
 * sanitize.cu — the cu_seqlens sanitizer kernel (contract in csa_cuda.h):
 *
 *   out[0] = 0,  out[i] = clamp(cu[i], out[i-1], min(T, out[i-1] + M)),
 *
 * and violation bits of the raw input ORed into flags[0].
 *
 * The recurrence is sequential (each clamp depends on the previous output)
 * and does not reduce to an associative scan with a small state, but valid
 * input is its fixed point: when every cu[i] already lies in
 * [cu[i-1], min(T, cu[i-1] + M)], out = cu.  So one CTA per array walks it
 * in tiles of 4096 entries: each thread checks its entries against their
 * raw predecessors (the first one against the previous tile's output), one
 * __syncthreads_and decides the tile, and a valid tile is copied in
 * parallel (coalesced).  Only a tile holding a violation, or following one
 * that changed the carried value, is evaluated sequentially, by one thread
 * from shared memory.  Valid input of B = 10^6 is thus ~250 parallel tile
 * steps of one SM, and typical B (<= 10^5) a few steps, i.e. about the
 * launch cost; garbage costs more, and is an error path.
 * The raw bits (decrease, too long) are plain per-pair checks, in parallel.
 */
#include <stdint.h>

#include "sanitize_args.h"

#define CSA__TILE (CSA__SANITIZE_THREADS * CSA__SANITIZE_PER_THREAD)

static __device__ __forceinline__ int64_t csa__clamp(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

extern "C" __global__ void __launch_bounds__(CSA__SANITIZE_THREADS)
    csa_sanitize_cu_seqlens(const csa__cu_sanitize_args a) {
  __shared__ int32_t s_in[CSA__TILE], s_out[CSA__TILE];
  __shared__ int32_t s_carry_out, s_carry_in;
  const int w = blockIdx.x; /* 0: q, 1: kv */
  const int32_t *const cu = a.cu[w];
  int32_t *const out = a.out[w];
  const int64_t T = a.total[w], M = a.max_len[w], n = a.n;
  const int tid = threadIdx.x;
  unsigned bits = 0; /* this thread's raw violations, CSA_CU_Q_* layout */
  /* the previous tile's last raw input and output (entry base - 1) */
  int64_t prev_raw = 0, prev_out = 0;

  for (int64_t base = 0; base < n; base += CSA__TILE) {
    const int len = (int)(n - base < CSA__TILE ? n - base : CSA__TILE);
    for (int j = tid; j < len; j += CSA__SANITIZE_THREADS)
      s_in[j] = cu[base + j];
    __syncthreads();
    bool ok = true;
    for (int j = tid; j < len; j += CSA__SANITIZE_THREADS) {
      const int64_t i = base + j, c = s_in[j];
      if (i == 0) {
        if (c != 0)
          bits |= 0x1u;
        ok = ok && c == 0;
      } else {
        const int64_t pr = j > 0 ? s_in[j - 1] : prev_raw;
        if (c < pr)
          bits |= 0x2u;
        else if (c - pr > M)
          bits |= 0x8u;
        /* output equals input if c fits after its predecessor's output,
         * which is the raw predecessor except at the tile's first entry */
        const int64_t po = j > 0 ? pr : prev_out;
        ok = ok && c >= po && c <= (po + M < T ? po + M : T);
      }
      if (i == n - 1 && c != T)
        bits |= 0x4u;
    }
    if (__syncthreads_and(ok)) {
      for (int j = tid; j < len; j += CSA__SANITIZE_THREADS)
        out[base + j] = s_in[j];
      if (tid == 0)
        s_carry_out = s_in[len - 1];
    } else {
      if (tid == 0) {
        int64_t po = prev_out;
        for (int j = 0; j < len; ++j) {
          po = base + j == 0 ? 0 : csa__clamp(s_in[j], po, po + M < T ? po + M : T);
          s_out[j] = (int32_t)po;
        }
        s_carry_out = (int32_t)po;
      }
      __syncthreads();
      for (int j = tid; j < len; j += CSA__SANITIZE_THREADS)
        out[base + j] = s_out[j];
    }
    if (tid == 0)
      s_carry_in = s_in[len - 1];
    __syncthreads();
    prev_out = s_carry_out;
    prev_raw = s_carry_in;
    __syncthreads(); /* s_in is refilled next tile */
  }
  /* one atomic per CTA, and none at all for valid input */
  const unsigned all = __syncthreads_or(bits) ? 1u : 0u;
  if (all) {
    /* OR of every thread's bits: warp vote per bit, then one atomic per warp */
    unsigned wb = 0;
    for (int b = 0; b < 4; ++b)
      if (__any_sync(0xffffffffu, (bits >> b) & 1u))
        wb |= 1u << b;
    if ((tid & 31) == 0 && wb != 0)
      atomicOr(reinterpret_cast<unsigned *>(a.flags), wb << (8 * w));
  }
}
