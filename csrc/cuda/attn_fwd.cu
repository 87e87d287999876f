/*
 * attn_fwd.cu — varlen attention forward on tensor cores (mma.sync), with
 * query tiles that pack several short sequences.
 *
 * Tiling.  Peers give every sequence its own 64/128-row query tile, so 20,000
 * sequences of 8..64 tokens leave most of each tile empty.  Here a CTA owns a
 * fixed run of BM (64 or 128) consecutive *packed* query rows [r0, r0 + BM)
 * of one head, whatever sequences they belong to.  Because sequences are
 * stored back to back, the keys those rows need are also one contiguous run
 * of packed K/V rows: [cu_kv[s_first], cu_kv[s_last + 1]).  The CTA streams
 * that run through shared memory in blocks of BN keys (a ring of up to 3
 * cp.async stages, one barrier per block) and every row masks, in
 * registers, the keys outside its own sequence ("block-diagonal" mask); a
 * long sequence is simply many such tiles, which is FlashAttention-2
 * tiling.  The grid is ceil(T_q / BM) x ceil(H / hpc) and needs no plan
 * from the host: each warp maps its rows to sequences by a 32-way search of
 * cu_seqlens_q (csa__find_seq: ~log32(B) round trips).  For short rows one
 * CTA runs hpc heads in turn (MH): the plan is made once and each next
 * head's copies overlap the current one.
 *
 * Each of the 4 warps owns BM / 4 rows and skips (no mma, no exp) every key
 * block that misses its rows' key range, so a warp in a 16-token sequence
 * does not pay for its neighbour's 64 keys; masking is only evaluated on
 * blocks that straddle a row's range.
 *
 * Robustness.  cu_seqlens on the device may be unchecked (no host copy), so
 * every sequence is clamped: start in [0, T], end in [start, min(T, start +
 * max_seqlen)], and K/V rows are only read inside the CTA's clamped range;
 * rows outside every sequence are written as zeros with lse = -inf.
 *
 * Math per row i of sequence s, with c = scale * log2(e):
 *   m_i = max_j s_ij,  l_i = sum_j 2^{c (s_ij - m_i)},  o_i = sum_j 2^{...} v_j,
 * kept online over key blocks (rescale by 2^{c (m_old - m_new)} when the max
 * grows), out_i = o_i / l_i, lse_i = scale * m_i + ln l_i.  A row that saw no
 * key keeps m = -inf, l = 0 and writes 0 / -inf.
 *
 * Precision.  fp16 and bf16 inputs feed the tensor cores as they are.  fp32
 * inputs are split, x = hi + lo with hi = bf16(x), lo = bf16(x - hi), and
 * each product takes three mma (hi*hi + hi*lo + lo*hi, the "bf16x3" idea):
 * ~16 significant bits per operand, error ~1e-6 relative for unit-size
 * scores (VAR_X3; where the doubled shared memory does not fit, the plan
 * falls back to rounding fp32 to bf16).  Scores, softmax and the output
 * accumulate in fp32; P is rounded to the 16-bit type for the second
 * product (and split like the operands under x3), while the row sums l
 * add the unrounded fp32 probabilities, so lse = scale m + ln l carries
 * only fp32 rounding.  The one exception, f16 with D <= 32, takes its
 * exponentials in f16 for speed (HEXP) and is replaced by VAR_EXACT_L when
 * the call returns the LSE.
 *
 * Structure.  csa__attn_fwd_body runs the pipeline (Q / K / V copies, the
 * K/V ring, the loop over (head, key block)); each step is its own device
 * function: csa__plan_rows (which keys each row sees), csa__qk_block (S =
 * Q K^T), csa__mask_block, csa__softmax_block (online softmax), csa__pv_block
 * (O += P V) and csa__store_rows (epilogue).  Every choice of tile shape,
 * heads per CTA and pipeline depth is made on the host (attn_plan.c) and
 * arrives in the args struct or as the kernel's template parameters.
 */
#include <limits.h>
#include <stdint.h>

#include <type_traits>

#include "attn_args.h"
#include "attn_kernels.h"
#include "cu_check.cuh"
#include "ptx.cuh"
#include "seq_rows.cuh"


/* 16-bit type fed to the tensor cores for each input type. */
template <typename T> struct csa__compute { typedef T type; };
template <> struct csa__compute<float> { typedef __nv_bfloat16 type; };

template <typename T> static __device__ __forceinline__ float csa__to_f32(const T *p);
template <> __device__ __forceinline__ float csa__to_f32<__half>(const __half *p) {
  return __half2float(*p);
}
template <> __device__ __forceinline__ float csa__to_f32<__nv_bfloat16>(const __nv_bfloat16 *p) {
  return __bfloat162float(*p);
}
template <> __device__ __forceinline__ float csa__to_f32<float>(const float *p) { return *p; }

/* Two floats rounded to a packed 16-bit pair (lo in the low half). */
template <typename TC> static __device__ __forceinline__ uint32_t csa__pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t csa__pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&h);
}
template <> __device__ __forceinline__ uint32_t csa__pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&h);
}

template <typename T> static __device__ __forceinline__ void csa__store1(T *p, float x);
template <> __device__ __forceinline__ void csa__store1<__half>(__half *p, float x) {
  *p = __float2half_rn(x);
}
template <> __device__ __forceinline__ void csa__store1<__nv_bfloat16>(__nv_bfloat16 *p, float x) {
  *p = __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ void csa__store1<float>(float *p, float x) { *p = x; }

/* Two adjacent elements; p is aligned to their pair size (vec path). */
template <typename T> static __device__ __forceinline__ void csa__store2(T *p, float x, float y) {
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float2 *>(p) = make_float2(x, y);
  } else {
    *reinterpret_cast<uint32_t *>(p) = csa__pack2<T>(x, y);
  }
}

/* 2^x on the special-function unit (ex2.approx: rel. error 2^-22, 2^-inf = 0). */
static __device__ __forceinline__ float csa__exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/* 2^x for two f16 at once (ex2.approx.f16x2, SM >= 7.5): half the
 * special-function-unit issue of two f32 ex2. */
static __device__ __forceinline__ uint32_t csa__exp2_h2(uint32_t x) {
  uint32_t y;
  asm("ex2.approx.f16x2 %0, %1;" : "=r"(y) : "r"(x));
  return y;
}

/* Elements [col, col + 8) of one row into 16 bytes of shared memory, zero
 * beyond d or for a missing row.  vec: the row start is 16-byte aligned. */
template <typename TIn, typename TC>
static __device__ __forceinline__ void csa__load_chunk(TC *dst, const TIn *row, int col, int d,
                                                       bool vec) {
  if (row == nullptr || col >= d) {
    *reinterpret_cast<uint4 *>(dst) = make_uint4(0u, 0u, 0u, 0u);
    return;
  }
  const TIn *src = row + col;
  if (vec && col + 8 <= d) {
    if constexpr (sizeof(TIn) == 2) {
      csa__cp_async16(dst, src);
    } else {
      float4 x = reinterpret_cast<const float4 *>(src)[0];
      float4 y = reinterpret_cast<const float4 *>(src)[1];
      *reinterpret_cast<uint4 *>(dst) =
          make_uint4(csa__pack2<TC>(x.x, x.y), csa__pack2<TC>(x.z, x.w),
                     csa__pack2<TC>(y.x, y.y), csa__pack2<TC>(y.z, y.w));
    }
    return;
  }
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float lo = col + 2 * i < d ? csa__to_f32(src + 2 * i) : 0.0f;
    float hi = col + 2 * i + 1 < d ? csa__to_f32(src + 2 * i + 1) : 0.0f;
    w[i] = csa__pack2<TC>(lo, hi);
  }
  *reinterpret_cast<uint4 *>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
}

/* fp32 x as a bf16 pair: hi = bf16(x), lo = bf16(x - hi) (x - hi is exact
 * in fp32), so hi + lo carries 16 significant bits and a product of two
 * such pairs, minus the tiny lo*lo, is within ~2^-17 of the fp32 product. */
static __device__ __forceinline__ void csa__split2(float x, float y, uint32_t *hi, uint32_t *lo) {
  const uint32_t h = csa__pack2<__nv_bfloat16>(x, y);
  *hi = h;
  *lo = csa__pack2<__nv_bfloat16>(x - __uint_as_float(h << 16),
                                  y - __uint_as_float(h & 0xffff0000u));
}

/* Elements [col, col + 8) of an fp32 row into registers, zero beyond d or
 * for a missing row (first half of an x3 copy: the loads may stay in
 * flight while other work runs, until x is first read). */
static __device__ __forceinline__ void csa__fetch8(float (&x)[8], const float *row, int col,
                                                   int d, bool vec) {
  if (row == nullptr || col >= d) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      x[i] = 0.0f;
  } else if (vec && col + 8 <= d) {
    const float4 u = reinterpret_cast<const float4 *>(row + col)[0];
    const float4 w = reinterpret_cast<const float4 *>(row + col)[1];
    x[0] = u.x, x[1] = u.y, x[2] = u.z, x[3] = u.w, x[4] = w.x, x[5] = w.y, x[6] = w.z, x[7] = w.w;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      x[i] = col + i < d ? row[col + i] : 0.0f;
  }
}

/* Second half: the 8 values as bf16 hi and lo halves, 16 bytes each. */
static __device__ __forceinline__ void csa__split_store8(__nv_bfloat16 *hi, __nv_bfloat16 *lo,
                                                         const float (&x)[8]) {
  uint32_t h[4], l[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    csa__split2(x[2 * i], x[2 * i + 1], &h[i], &l[i]);
  *reinterpret_cast<uint4 *>(hi) = make_uint4(h[0], h[1], h[2], h[3]);
  *reinterpret_cast<uint4 *>(lo) = make_uint4(l[0], l[1], l[2], l[3]);
}

/* Elements [col, col + 8) of an fp32 row as hi and lo halves (x3 path). */
static __device__ __forceinline__ void csa__load_chunk_x3(__nv_bfloat16 *hi, __nv_bfloat16 *lo,
                                                          const float *row, int col, int d,
                                                          bool vec) {
  float x[8];
  csa__fetch8(x, row, col, d, vec);
  csa__split_store8(hi, lo, x);
}

/*
 * Sequence of row r = the largest s in [0, B-1] with cu[s] <= r, for the rows
 * [r_first, r_last] one warp owns (lane's row is r).  Instead of a binary
 * search per row (log2(B) dependent global reads, ~15 for 20,000
 * sequences), the warp
 *   1. finds s0 for r_first by a 32-way search: 32 lanes read 32 spread
 *      pivots in one round trip, the ballot of "pivot <= r_first" narrows the
 *      range 32-fold (3 round trips for 20,000 sequences);
 *   2. reads the next 32 sequence starts cu[s0+1 .. s0+32] in one coalesced
 *      load and each lane counts those <= its row (shuffles); another window
 *      only if the warp's rows span more than 32 starts.
 * With non-monotonic (unchecked) cu the answer is still some s in [0, B-1]
 * and the caller's clamping keeps every access in bounds; the loops always
 * terminate (the search range shrinks every step; windows advance to B).
 */
static __device__ __forceinline__ int csa__find_seq(const int32_t *cu, int B, int64_t r_first,
                                                    int64_t r_last, int64_t r, int lane) {
  int lo = 0, hi = B - 1;
  while (lo < hi) {
    const int span = hi - lo;
    const int n = span < 32 ? span : 32;
    const int piv = span >= 32 ? lo + 1 + (int)(((int64_t)lane * span) >> 5)
                               : lo + 1 + (lane < span ? lane : span - 1);
    const bool le = lane < n && (int64_t)__ldg(cu + piv) <= r_first;
    const int cnt = __popc(__ballot_sync(0xffffffffu, le));
    const int p_lo = __shfl_sync(0xffffffffu, piv, cnt > 0 ? cnt - 1 : 0);
    const int p_hi = __shfl_sync(0xffffffffu, piv, cnt < n ? cnt : 0);
    if (cnt == 0) {
      hi = p_hi - 1;
    } else {
      lo = p_lo;
      if (cnt < n)
        hi = p_hi - 1;
    }
  }
  int s = lo;
  for (int base = lo;; base += 32) {
    const int idx = base + 1 + lane;
    const int64_t v = idx <= B - 1 ? (int64_t)__ldg(cu + idx) : INT64_MAX;
    int cnt = 0;
#pragma unroll
    for (int j = 0; j < 32; ++j)
      cnt += __shfl_sync(0xffffffffu, v, j) <= r ? 1 : 0;
    if (cnt > 0)
      s = base + cnt;
    if (!(__shfl_sync(0xffffffffu, v, 31) <= r_last))
      break;
  }
  return s;
}

/* Sequence plan of one warp's rows (FlashAttention's BlockInfo, per
 * row): the keys [ks, ke) each row sees (csa__row_keys, seq_rows.cuh);
 * rows outside every sequence keep the empty range. */
template <int WR>
static __device__ __forceinline__ void csa__plan_rows(const csa__cuda_attn_args &a, int64_t rw0,
                                                      int lane, int *sKs, int *sKe) {
  const int64_t rwl = rw0 + WR - 1 < a.t_q ? rw0 + WR - 1 : a.t_q - 1;
  const int64_t r = rw0 + (lane % WR);
  int ks = INT_MAX, ke = INT_MIN;
  if (rw0 < a.t_q && a.batch > 0) {
    const int sq = csa__find_seq(a.cu_q, a.batch, rw0, rwl, r, lane);
    if (r < a.t_q)
      csa__row_keys(a, sq, r, &ks, &ke);
  }
  if (lane < WR) {
    sKs[lane] = ks;
    sKe[lane] = ke;
  }
}

/* S = Q K^T for one key block: s[mt][nt] is the 16x8 score tile of
 * m-tile mt and keys nt * 8 .. + 7 (x3: plus the two cross products). */
template <typename TC, int DP, int BN, int MT, bool QREG, bool X3>
static __device__ __forceinline__ void csa__qk_block(
    float (&s)[MT][BN / 8][4], const uint32_t (&qf)[QREG ? MT : 1][QREG ? DP / 16 : 1][4],
    const TC *sQh, const TC *sQl, const TC *k_s, const TC *k_l, int wbase, int lane) {
  constexpr int PITCH = DP + 8, KC = DP / 16, NT = BN / 8;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < NT; i++)
      s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
  /* S = Q K^T: A = Q rows, B = K rows (ldmatrix of K row-major gives
   * B's "col" layout directly).  All fragments of one k-chunk are
   * loaded before its mma so loads and mma of adjacent chunks overlap. */
#pragma unroll
  for (int kk = 0; kk < KC; ++kk) {
    uint32_t qa[MT][4], kf[BN / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      if constexpr (QREG) {
#pragma unroll
        for (int x = 0; x < 4; ++x)
          qa[mt][x] = qf[QREG ? mt : 0][QREG ? kk : 0][x];
      } else {
        csa__ldmatrix_x4(qa[mt], sQh + (wbase + mt * 16 + (lane & 15)) * PITCH +
                                     kk * 16 + (lane >> 4) * 8);
      }
    }
#pragma unroll
    for (int n2 = 0; n2 < BN / 16; ++n2)
      csa__ldmatrix_x4(kf[n2], k_s + (n2 * 16 + (lane & 7) + ((lane >> 4) << 3)) * PITCH +
                                   kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
    for (int n2 = 0; n2 < BN / 16; ++n2)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        csa__mma16816<TC>(s[mt][2 * n2], qa[mt], kf[n2][0], kf[n2][1]);
        csa__mma16816<TC>(s[mt][2 * n2 + 1], qa[mt], kf[n2][2], kf[n2][3]);
      }
    if constexpr (X3) {
      /* + Q_hi K_lo + Q_lo K_hi; the dropped Q_lo K_lo is ~2^-18 of
       * each product, below what the lo roundings already cost */
      uint32_t ql[MT][4], kl[BN / 16][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        csa__ldmatrix_x4(ql[mt], sQl + (wbase + mt * 16 + (lane & 15)) * PITCH + kk * 16 +
                                     (lane >> 4) * 8);
#pragma unroll
      for (int n2 = 0; n2 < BN / 16; ++n2)
        csa__ldmatrix_x4(kl[n2], k_l +
                                     (n2 * 16 + (lane & 7) + ((lane >> 4) << 3)) * PITCH +
                                     kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int n2 = 0; n2 < BN / 16; ++n2)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          csa__mma16816<TC>(s[mt][2 * n2], qa[mt], kl[n2][0], kl[n2][1]);
          csa__mma16816<TC>(s[mt][2 * n2 + 1], qa[mt], kl[n2][2], kl[n2][3]);
          csa__mma16816<TC>(s[mt][2 * n2], ql[mt], kf[n2][0], kf[n2][1]);
          csa__mma16816<TC>(s[mt][2 * n2 + 1], ql[mt], kf[n2][2], kf[n2][3]);
        }
    }
  }
}

/* Mask: keys outside row i's range [ks_i, ke_i) (its sequence, and the
 * causal limit) get score -inf.  Called only for blocks that straddle some
 * row's range; rows come from registers (RREG) or shared memory. */
template <int MT, int NT, bool RREG>
static __device__ __forceinline__ void csa__mask_block(float (&s)[MT][NT][4], int kb,
                                                       const int (&rks)[RREG ? MT : 1][2],
                                                       const int (&rke)[RREG ? MT : 1][2],
                                                       const int *sKs, const int *sKe,
                                                       int wbase, int g, int t4) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = kb + nt * 8 + 2 * t4 + (e & 1);
        const int row = wbase + mt * 16 + g + (e >> 1) * 8;
        const int ks = RREG ? rks[RREG ? mt : 0][e >> 1] : sKs[row];
        const int ke = RREG ? rke[RREG ? mt : 0][e >> 1] : sKe[row];
        if (!(j >= ks && j < ke))
          s[mt][nt][e] = -INFINITY;
      }
}

/* Online softmax over one key block (scores s, unscaled), in base 2 with
 * c = scale * log2(e):
 *   m' = max(m, max_j s_j),  alpha = 2^(c (m - m')),  p_j = 2^(c s_j - c m'),
 *   l' = alpha l + sum_j p_j  (fp32, unrounded p),  o' = alpha o (+ P V next),
 * and P as the A fragments of the second product: ph (16-bit), pl (x3:
 * P - ph).  Rows that saw no key keep m = -inf and use 0 as the max. */
template <typename TC, int MT, int NT, int NO, bool HEXP, bool X3>
static __device__ __forceinline__ void csa__softmax_block(
    float (&s)[MT][NT][4], float (&m)[MT][2], float (&l)[MT][2], float (&lsum)[HEXP ? MT : 1][4],
    float (&o)[MT][NO][4], uint32_t (&ph)[MT][NT][2], uint32_t (&pl)[X3 ? MT : 1][X3 ? NT : 1][2],
    const float sl2) {
  /* Online softmax; the 4 threads of a quad share a row.  Every
   * reduction is a tree and the 2 MT rows of a thread go through each
   * step together, so no long chain of dependent fmax / add stalls the
   * warp (the limiter at 2 warps per scheduler).  P goes straight into
   * packed 16-bit pairs: ph[mt][nt][rr] holds row rr's two columns of
   * key tile nt, which is the A-fragment layout of the second product
   * (key tiles 2kc, 2kc+1 = key chunk kc). */
  float mx[MT][2], alpha[MT][2], mb[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float t[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        t[nt] = fmaxf(s[mt][nt][2 * rr], s[mt][nt][2 * rr + 1]);
#pragma unroll
      for (int w = 1; w < NT; w *= 2)
#pragma unroll
        for (int i = 0; i + w < NT; i += 2 * w)
          t[i] = fmaxf(t[i], t[i + w]);
      mx[mt][rr] = t[0];
    }
#pragma unroll
  for (int sh = 1; sh <= 2; sh *= 2)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr)
        mx[mt][rr] = fmaxf(mx[mt][rr], __shfl_xor_sync(0xffffffffu, mx[mt][rr], sh));
  bool grew = false;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const float mnew = fmaxf(m[mt][rr], mx[mt][rr]);
      const float muse = mnew == -INFINITY ? 0.0f : mnew;
      /* 2^0 = 1 exactly: alpha != 1 iff this row's max moved */
      alpha[mt][rr] = csa__exp2((m[mt][rr] - muse) * sl2);
      grew |= alpha[mt][rr] != 1.0f;
      m[mt][rr] = mnew;
      mb[mt][rr] = muse * sl2;
    }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float t[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const float x0 = fmaf(s[mt][nt][2 * rr], sl2, -mb[mt][rr]);
        const float x1 = fmaf(s[mt][nt][2 * rr + 1], sl2, -mb[mt][rr]);
        if constexpr (HEXP) {
          /* Two exponentials per special-function op: the argument
           * (<= 0) rounds to f16 (abs. error <= 2^-9 for |x| < 8, i.e.
           * <= 0.14% in p, under P's own f16 rounding for the mma);
           * used where exp, not the tensor cores, bounds the speed
           * (head dims <= 32).  Row sums come from the ones column. */
          ph[mt][nt][rr] = csa__exp2_h2(csa__pack2<__half>(x0, x1));
        } else {
          const float p0 = csa__exp2(x0), p1 = csa__exp2(x1);
          ph[mt][nt][rr] = csa__pack2<TC>(p0, p1);
          if constexpr (X3) {
            const uint32_t h = ph[mt][nt][rr];
            pl[X3 ? mt : 0][X3 ? nt : 0][rr] = csa__pack2<TC>(
                p0 - __uint_as_float(h << 16), p1 - __uint_as_float(h & 0xffff0000u));
          }
          t[nt] = p0 + p1;
        }
      }
      if constexpr (!HEXP) {
#pragma unroll
        for (int w = 1; w < NT; w *= 2)
#pragma unroll
          for (int i = 0; i + w < NT; i += 2 * w)
            t[i] += t[i + w];
        l[mt][rr] = fmaf(l[mt][rr], alpha[mt][rr], t[0]);
      }
    }
  /* Rescale the running output only when some row's max moved (rare
   * after the first blocks of a long row). */
  if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        if constexpr (HEXP) {
          lsum[HEXP ? mt : 0][2 * rr] *= alpha[mt][rr];
          lsum[HEXP ? mt : 0][2 * rr + 1] *= alpha[mt][rr];
        }
#pragma unroll
        for (int i = 0; i < NO; ++i) {
          o[mt][i][2 * rr] *= alpha[mt][rr];
          o[mt][i][2 * rr + 1] *= alpha[mt][rr];
        }
      }
  }
}

/* O += P V for one key block (x3: plus the two cross products; HEXP:
 * the row sums as P times a column of ones). */
template <typename TC, int DP, int BN, int MT, bool HEXP, bool X3>
static __device__ __forceinline__ void csa__pv_block(
    float (&o)[MT][DP / 8][4], float (&lsum)[HEXP ? MT : 1][4],
    const uint32_t (&ph)[MT][BN / 8][2], const uint32_t (&pl)[X3 ? MT : 1][X3 ? BN / 8 : 1][2],
    const TC *v_s, const TC *v_l, int lane) {
  constexpr int PITCH = DP + 8;
  /* O += P V, B = V via ldmatrix.trans. */
#pragma unroll
  for (int kc = 0; kc < BN / 16; ++kc) {
    uint32_t pa[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      pa[mt][0] = ph[mt][2 * kc][0];
      pa[mt][1] = ph[mt][2 * kc][1];
      pa[mt][2] = ph[mt][2 * kc + 1][0];
      pa[mt][3] = ph[mt][2 * kc + 1][1];
    }
    if constexpr (HEXP) {
      const uint32_t one2 = 0x3c003c00u; /* f16 pair (1, 1) */
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        csa__mma16816<TC>(lsum[HEXP ? mt : 0], pa[mt], one2, one2);
    }
#pragma unroll
    for (int n2 = 0; n2 < DP / 16; ++n2) {
      uint32_t b[4];
      csa__ldmatrix_x4_trans(b, v_s + (kc * 16 + (lane & 15)) * PITCH + n2 * 16 +
                                    (lane >> 4) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        csa__mma16816<TC>(o[mt][2 * n2], pa[mt], b[0], b[1]);
        csa__mma16816<TC>(o[mt][2 * n2 + 1], pa[mt], b[2], b[3]);
      }
      if constexpr (X3) { /* + P_hi V_lo + P_lo V_hi */
        uint32_t bl[4];
        csa__ldmatrix_x4_trans(bl, v_l + (kc * 16 + (lane & 15)) * PITCH +
                                       n2 * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          uint32_t pla[4] = {pl[X3 ? mt : 0][X3 ? 2 * kc : 0][0],
                             pl[X3 ? mt : 0][X3 ? 2 * kc : 0][1],
                             pl[X3 ? mt : 0][X3 ? 2 * kc + 1 : 0][0],
                             pl[X3 ? mt : 0][X3 ? 2 * kc + 1 : 0][1]};
          csa__mma16816<TC>(o[mt][2 * n2], pa[mt], bl[0], bl[1]);
          csa__mma16816<TC>(o[mt][2 * n2 + 1], pa[mt], bl[2], bl[3]);
          csa__mma16816<TC>(o[mt][2 * n2], pla, b[0], b[1]);
          csa__mma16816<TC>(o[mt][2 * n2 + 1], pla, b[2], b[3]);
        }
      }
    }
  }
}

/* Epilogue of head h for this warp's rows: out = o / l (0 for rows
 * without keys), lse = scale m + ln l (-inf without keys).  The 4 threads
 * of a quad hold partial row sums (HEXP: every column holds the sum). */
template <typename TIn, int MT, int NO, bool HEXP>
static __device__ __forceinline__ void csa__store_rows(const csa__cuda_attn_args &a, int h,
                                                       int64_t rbase, int g, int t4, bool vec,
                                                       const float (&o)[MT][NO][4],
                                                       const float (&m)[MT][2],
                                                       const float (&l)[MT][2],
                                                       const float (&lsum)[HEXP ? MT : 1][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float lt;
      if constexpr (HEXP) {
        lt = lsum[HEXP ? mt : 0][2 * rr]; /* every column holds the row sum */
      } else {
        lt = l[mt][rr];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      }
      const float inv = lt > 0.0f ? __frcp_rn(lt) : 0.0f;
      const int64_t r = rbase + mt * 16 + g + rr * 8;
      if (r < a.t_q) {
        TIn *const op = reinterpret_cast<TIn *>(a.out) + r * a.o_st_t + (int64_t)h * a.o_st_h;
#pragma unroll
        for (int nt = 0; nt < NO; ++nt) {
          const int c = nt * 8 + 2 * t4;
          if (c < a.dv) {
            const float x = o[mt][nt][2 * rr] * inv, y = o[mt][nt][2 * rr + 1] * inv;
            if (vec && c + 1 < a.dv) {
              csa__store2<TIn>(op + c, x, y);
            } else {
              csa__store1<TIn>(op + c, x);
              if (c + 1 < a.dv)
                csa__store1<TIn>(op + c + 1, y);
            }
          }
        }
        if (a.lse != nullptr && t4 == 0)
          a.lse[(int64_t)h * a.lse_st_h + r * a.lse_st_t] =
              lt > 0.0f ? m[mt][rr] * a.scale + logf(lt) : -INFINITY;
      }
    }
}

/*
 * DP: head dim padded to a multiple of 16 (both D and D_v live in it; the
 * pad is zero-filled on load, so it adds nothing to scores or outputs).
 * BN: keys per shared-memory block.  MT: 16-row m-tiles per warp (BM = 64 MT
 * query rows per CTA): with MT = 2 every K/V fragment read from shared memory
 * feeds two mma, which halves the shared-memory traffic per flop — the
 * limit of a one-m-tile warp (ldmatrix.x4 moves 512 B at 128 B/clk/SM while
 * its mma does 4096 flop).  QREG: keep Q's fragments in registers instead of
 * re-reading them from shared memory each block (when registers allow).
 * MH: the CTA may run several heads (a.hpc) one after another; without it
 * a.hpc must be 1 and the loop keeps the simpler one-head form.
 * MINB: CTAs per SM the register allocation must allow (latency hiding for
 * the short-sequence tiles, where warps often wait at a barrier).
 * stages: K/V ring depth, 1..3 (the launcher picks 3 where it costs no CTA
 * per SM, else 2, else 1 when shared memory is short); with S stages S - 1
 * blocks are in flight while one is computed.
 *
 * Dynamic shared memory: Q [BM][DP+8], K [stages][BN][DP+8], V likewise; the
 * 8-element pad staggers rows by 16 bytes so ldmatrix's 8 row reads hit 8
 * different 16-byte bank groups.
 */
template <typename TIn, int DP, int BN, int MT, bool QREG, bool MH, int VAR>
static __device__ __forceinline__ void csa__attn_fwd_body(const csa__cuda_attn_args &a) {
  const int stages = a.stages;
  typedef typename csa__compute<TIn>::type TC;
  /* X3: fp32 operands as bf16 hi + lo pairs, three products per GEMM */
  constexpr bool X3 = VAR == CSA__VAR_X3;
  static_assert(!X3 || (std::is_same<TIn, float>::value && !QREG), "x3: fp32, Q from smem");
  /* packed f16x2 exponentials: f16 operands, and exp-bound (small D); the
   * row sums then come from f16 P, so calls that return the LSE take
   * VAR_EXACT_L (fp32 exponentials, row sums of unrounded P) instead */
  constexpr bool HEXP = sizeof(TIn) == 2 && !std::is_same<TIn, __nv_bfloat16>::value &&
                        DP <= 32 && VAR == CSA__VAR_FAST;
  constexpr int BM = 64 * MT, WR = 16 * MT, PITCH = DP + 8, CH = DP / 8, NT = BN / 8,
                NO = DP / 8, KC = DP / 16;
  extern __shared__ __align__(16) unsigned char csa__smem[];
  /* heads this CTA runs one after another (a.hpc per CTA, the last CTA of
   * a row fewer): the row plan is made once and the copies of the next
   * head's Q and K/V overlap the current head's last block */
  const int hpc = MH ? a.hpc : 1;
  const int h0 = blockIdx.y * hpc;
  const int nh = MH ? (hpc < a.heads - h0 ? hpc : a.heads - h0) : 1;
  /* Q buffers: with S stages a head's Q is copied S - 1 blocks before its
   * first block runs, i.e. while up to S - 1 earlier heads are still in
   * use or in flight, so S buffers keep every copy off a buffer being read */
  const int qbufs = MH && hpc > 1 ? stages : 1;
  TC *const sQ = reinterpret_cast<TC *>(csa__smem); /* [qbufs][BM][PITCH] */
  TC *const sK = sQ + qbufs * BM * PITCH;
  TC *const sV = sK + stages * BN * PITCH;
  /* X3: the low halves (x - hi, rounded to bf16) follow in the same layout */
  TC *const sQl = sV + stages * BN * PITCH;
  TC *const sKl = sQl + (X3 ? qbufs * BM * PITCH : 0);
  TC *const sVl = sKl + (X3 ? stages * BN * PITCH : 0);
  __shared__ int sKs[BM], sKe[BM]; /* each row's visible keys [ks, ke) */

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int group = a.heads / a.heads_kv; /* query heads per kv head */
  const int64_t r0 = (int64_t)blockIdx.x * BM;
  const int wbase = warp * WR; /* this warp's first row in the tile */
  const bool vec = a.vec != 0;

  /* Q rows [r0, r0 + BM) of head h into Q buffer buf. */
  auto load_q = [&](int h, int buf) {
    const TIn *const qp = reinterpret_cast<const TIn *>(a.q) + (int64_t)h * a.q_st_h;
    TC *const dQ = sQ + buf * BM * PITCH;
#pragma unroll
    for (int i = 0; i < (BM * CH + CSA__ATTN_THREADS - 1) / CSA__ATTN_THREADS; ++i) {
      const int c = tid + i * CSA__ATTN_THREADS;
      if ((BM * CH) % CSA__ATTN_THREADS == 0 || c < BM * CH) {
        const int row = c / CH, col = (c % CH) * 8;
        const int64_t r = r0 + row;
        if constexpr (X3)
          csa__load_chunk_x3(dQ + row * PITCH + col, dQ + (sQl - sQ) + row * PITCH + col,
                             r < a.t_q ? qp + r * a.q_st_t : nullptr, col, a.d, vec);
        else
          csa__load_chunk<TIn, TC>(dQ + row * PITCH + col,
                                   r < a.t_q ? qp + r * a.q_st_t : nullptr, col, a.d, vec);
      }
    }
  };

  /* 0. Q does not depend on the plan: start its copy first so it overlaps
   *    the plan's dependent reads of cu_seqlens. */
  load_q(h0, 0);
  csa__cp_async_commit();

  /* 1. Row plan: each warp maps its WR rows to sequences and key ranges. */
  csa__plan_rows<WR>(a, r0 + wbase, lane, sKs + wbase, sKe + wbase);
  __syncthreads();

  /* This thread's rows: m-tile mt, fragment rows g (rr = 0) and g + 8.  Held
   * in registers except where registers are scarcest (DP >= 128, MT = 2):
   * there the mask, rare for the long rows such head dims come with, reads
   * them from shared memory. */
  constexpr bool RREG = !(DP >= 128 && MT == 2);
  int rks[RREG ? MT : 1][2], rke[RREG ? MT : 1][2];
  if constexpr (RREG) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        rks[RREG ? mt : 0][rr] = sKs[wbase + mt * 16 + g + rr * 8];
        rke[RREG ? mt : 0][rr] = sKe[wbase + mt * 16 + g + rr * 8];
      }
  }
  /* Warp range: union [w_lo, w_hi) and intersection [w_ksmax, w_kemin). */
  int w_lo = sKs[wbase + (lane % WR)], w_hi = sKe[wbase + (lane % WR)];
  int w_ksmax = w_lo, w_kemin = w_hi;
#pragma unroll
  for (int off = 1; off < WR; off <<= 1) {
    w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, off));
    w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, off));
    w_ksmax = max(w_ksmax, __shfl_xor_sync(0xffffffffu, w_ksmax, off));
    w_kemin = min(w_kemin, __shfl_xor_sync(0xffffffffu, w_kemin, off));
  }
  /* CTA range: union over all BM rows (identical in every warp). */
  int c_lo, c_hi;
  csa__cta_key_range<BM>(sKs, sKe, lane, &c_lo, &c_hi);
  const int nblocks = c_hi > c_lo ? (int)(((int64_t)c_hi - c_lo + BN - 1) / BN) : 0;

  float o[MT][NO][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < NO; i++)
      o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
  float m[MT][2], l[MT][2];
  /* HEXP: row sums come from one more mma, P times a column of ones, in an
   * fp32 accumulator lsum (c0 = row g, c2 = row g + 8): the sum of exactly
   * the f16 P that multiplies V, with no per-element unpack and add. */
  float lsum[HEXP ? MT : 1][4];
#pragma unroll
  for (int mt = 0; mt < (HEXP ? MT : 1); ++mt)
    lsum[mt][0] = lsum[mt][1] = lsum[mt][2] = lsum[mt][3] = 0.0f;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  const float sl2 = a.scale_log2;

  auto store_head = [&](int h) {
    csa__store_rows<TIn, MT, NO, HEXP>(a, h, r0 + wbase, g, t4, vec, o, m, l, lsum);
  };

  if (nblocks > 0) {
    uint32_t qf[QREG ? MT : 1][QREG ? KC : 1][4];
    /* K/V rows [kb, kb + BN) of block it into stage st; rows past c_hi are
     * zero (never read outside the CTA's clamped range). */
    /* Fast path (16-bit inputs, aligned rows, D = D_v = DP): thread tid
     * always copies column (tid % CH) * 8 of rows tid / CH + i * RSTEP, so
     * the addresses are a base plus compile-time steps. */
    constexpr int RSTEP = CSA__ATTN_THREADS / CH, NCHUNK = BN * CH / CSA__ATTN_THREADS;
    const bool fast = sizeof(TIn) == 2 && vec && a.d == DP && a.dv == DP && NCHUNK >= 1 &&
                      (BN * CH) % CSA__ATTN_THREADS == 0;
    const int frow = tid / CH, fcol = (tid % CH) * 8;
    auto load_kv = [&](int h, int it, int st) {
      const int hk = h / group;
      const TIn *const kp = reinterpret_cast<const TIn *>(a.k) + (int64_t)hk * a.k_st_h;
      const TIn *const vp = reinterpret_cast<const TIn *>(a.v) + (int64_t)hk * a.v_st_h;
      const int kb = c_lo + it * BN;
      TC *dK = sK + st * BN * PITCH, *dV = sV + st * BN * PITCH;
      if (fast) {
        /* recomputed per block from the (constant-bank) strides: keeps
         * registers free for the accumulators */
        const TIn *bk = kp + (int64_t)(kb + frow) * a.k_st_t + fcol;
        const TIn *bv = vp + (int64_t)(kb + frow) * a.v_st_t + fcol;
#pragma unroll
        for (int i = 0; i < (NCHUNK > 0 ? NCHUNK : 1); ++i) {
          const int off = (frow + i * RSTEP) * PITCH + fcol;
          if (kb + frow + i * RSTEP < c_hi) {
            csa__cp_async16(dK + off, bk + (int64_t)(i * RSTEP) * a.k_st_t);
            csa__cp_async16(dV + off, bv + (int64_t)(i * RSTEP) * a.v_st_t);
          } else {
            *reinterpret_cast<uint4 *>(dK + off) = make_uint4(0u, 0u, 0u, 0u);
            *reinterpret_cast<uint4 *>(dV + off) = make_uint4(0u, 0u, 0u, 0u);
          }
        }
        return;
      }
#pragma unroll
      for (int i = 0; i < (BN * CH + CSA__ATTN_THREADS - 1) / CSA__ATTN_THREADS; ++i) {
        const int c = tid + i * CSA__ATTN_THREADS;
        if ((BN * CH) % CSA__ATTN_THREADS == 0 || c < BN * CH) {
          const int row = c / CH, col = (c % CH) * 8;
          const int64_t j = (int64_t)kb + row;
          const bool ok = j < c_hi;
          if constexpr (X3) {
            csa__load_chunk_x3(dK + row * PITCH + col, dK + (sKl - sK) + row * PITCH + col,
                               ok ? kp + j * a.k_st_t : nullptr, col, a.d, vec);
            csa__load_chunk_x3(dV + row * PITCH + col, dV + (sVl - sV) + row * PITCH + col,
                               ok ? vp + j * a.v_st_t : nullptr, col, a.dv, vec);
          } else {
            csa__load_chunk<TIn, TC>(dK + row * PITCH + col, ok ? kp + j * a.k_st_t : nullptr,
                                     col, a.d, vec);
            csa__load_chunk<TIn, TC>(dV + row * PITCH + col, ok ? vp + j * a.v_st_t : nullptr,
                                     col, a.dv, vec);
          }
        }
      }
    };
    /* Key block blk from stage st against the Q rows at sQh: S = Q K^T,
     * mask, online softmax, O += P V; skipped by a warp whose rows see
     * none of the block's keys. */
    auto compute = [&](int blk, int st, const TC *sQh) {
      const int kb = c_lo + blk * BN;
      if (w_lo < kb + BN && w_hi > kb) {
        const TC *const k_s = sK + st * BN * PITCH;
        const TC *const v_s = sV + st * BN * PITCH;
        float s[MT][NT][4];
        csa__qk_block<TC, DP, BN, MT, QREG, X3>(s, qf, sQh, sQl, k_s,
                                                sKl + st * BN * PITCH, wbase, lane);
        /* the mask only where some row's key range ends inside this block */
        if (!(kb >= w_ksmax && kb + BN <= w_kemin))
          csa__mask_block<MT, NT, RREG>(s, kb, rks, rke, sKs, sKe, wbase, g, t4);
        uint32_t ph[MT][NT][2];
        uint32_t pl[X3 ? MT : 1][X3 ? NT : 1][2]; /* X3: P - P_hi, as bf16 */
        csa__softmax_block<TC, MT, NT, NO, HEXP, X3>(s, m, l, lsum, o, ph, pl, sl2);
        csa__pv_block<TC, DP, BN, MT, HEXP, X3>(o, lsum, ph, pl, v_s, sVl + st * BN * PITCH, lane);
      }
    };
    /* x3 copies staged in registers where they cost at most 32 of them
     * (2 chunks of K and V per thread; D 256 keeps the ring below) */
    constexpr int NPRE = (BN * CH + CSA__ATTN_THREADS - 1) / CSA__ATTN_THREADS;
    if constexpr (X3 && NPRE <= 2) {
      /* fp32 K/V cannot take cp.async (they are split into bf16 hi + lo on
       * the way to shared memory), so the copies are staged in registers:
       * block it + 2's global loads are issued before block it's math and
       * land under it; block it + 1's registers (loaded during block it - 1)
       * are split into the free stage first.  Two stages, one barrier per
       * block; with one stage (shared memory short) a second barrier after
       * the math frees it. */
      float pk[NPRE][8], pv[NPRE][8];
      const int hk = h0 / group;
      const float *const kp = reinterpret_cast<const float *>(a.k) + (int64_t)hk * a.k_st_h;
      const float *const vp = reinterpret_cast<const float *>(a.v) + (int64_t)hk * a.v_st_h;
      auto fetch = [&](int blk) {
        const int kb = c_lo + blk * BN;
#pragma unroll
        for (int i = 0; i < NPRE; ++i) {
          const int c = tid + i * CSA__ATTN_THREADS;
          const bool in = (BN * CH) % CSA__ATTN_THREADS == 0 || c < BN * CH;
          const int row = c / CH, col = (c % CH) * 8;
          const int64_t j = (int64_t)kb + row;
          const bool ok = in && j < c_hi;
          csa__fetch8(pk[i], ok ? kp + j * a.k_st_t : nullptr, col, a.d, vec);
          csa__fetch8(pv[i], ok ? vp + j * a.v_st_t : nullptr, col, a.dv, vec);
        }
      };
      auto commit = [&](int st) {
        TC *const dK = sK + st * BN * PITCH, *const dV = sV + st * BN * PITCH;
#pragma unroll
        for (int i = 0; i < NPRE; ++i) {
          const int c = tid + i * CSA__ATTN_THREADS;
          if ((BN * CH) % CSA__ATTN_THREADS == 0 || c < BN * CH) {
            const int off = (c / CH) * PITCH + (c % CH) * 8;
            csa__split_store8(dK + off, dK + (sKl - sK) + off, pk[i]);
            csa__split_store8(dV + off, dV + (sVl - sV) + off, pv[i]);
          }
        }
      };
      const bool two = stages >= 2;
      fetch(0);
      commit(0);
      if (nblocks > 1)
        fetch(1);
      for (int blk = 0; blk < nblocks; ++blk) {
        __syncthreads(); /* block blk visible; every warp is done with blk - 1 */
        if (two && blk + 1 < nblocks) {
          commit((blk + 1) & 1);
          if (blk + 2 < nblocks)
            fetch(blk + 2);
        }
        compute(blk, two ? blk & 1 : 0, sQ);
        if (!two && blk + 1 < nblocks) {
          __syncthreads();
          commit(0);
          if (blk + 2 < nblocks)
            fetch(blk + 2);
        }
      }
      store_head(h0);
      return;
    }
    /*
     * K/V ring of S = stages buffers, one barrier per block.  Iteration it
     * computes block it from stage it % S.  After the barrier at the top of
     * it every warp has finished block it - 1, so its stage (= the stage of
     * block it + S - 1) and the Q buffer of a finished head may be refilled
     * right then: S - 1 copies stay in flight under each block's math
     * (memory-latency bound tiles of short rows see S - 1 times the bytes in
     * flight).  cp.async groups: one per issued block (the Q of a head joins
     * its first block's group), so "block it landed" is wait_group(S - 2).
     * S = 1 (shared memory short) loads and waits inside the iteration.
     */
    const int total = MH ? nh * nblocks : nblocks;
    /* Next block to copy (MH: its head and block, tracked by counters; else
     * block index = iteration).  Its stage is passed in: i in the prologue,
     * the stage of block it - 1 inside iteration it. */
    int p_hi = 0, p_blk = 0, p_qb = 0;
    auto issue = [&](int pit, int pst) {
      if (pit < total) {
        if constexpr (MH) {
          if (p_blk == 0 && p_hi > 0)
            load_q(h0 + p_hi, p_qb);
          load_kv(h0 + p_hi, p_blk, pst);
          if (++p_blk == nblocks) {
            p_blk = 0;
            ++p_hi;
            p_qb = p_qb + 1 == qbufs ? 0 : p_qb + 1;
          }
        } else {
          load_kv(h0, pit, pst);
        }
      }
      csa__cp_async_commit(); /* empty groups keep the count uniform */
    };
    for (int i = 0; i < stages - 1; ++i)
      issue(i, i);

    /* Iterations run over (head, key block) pairs: it = hi * nblocks + blk. */
    for (int it = 0, hi = 0, blk = 0, st = 0, qb = 0; it < total; ++it) {
      if (stages == 3)
        csa__cp_async_wait<1>();
      else if (stages == 2)
        csa__cp_async_wait<0>();
      __syncthreads(); /* block it visible; every warp is done with it - 1 */
      issue(it + stages - 1, st == 0 ? stages - 1 : st - 1);
      if (stages == 1) {
        csa__cp_async_wait<0>();
        __syncthreads();
      }
      const TC *const sQh = MH ? sQ + qb * BM * PITCH : sQ;
      if (blk == 0) {
        if (MH && hi > 0) { /* a new head: fresh running state */
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
          for (int i = 0; i < NO; i++)
            o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
          m[mt][0] = m[mt][1] = -INFINITY;
          l[mt][0] = l[mt][1] = 0.0f;
          if constexpr (HEXP)
            lsum[HEXP ? mt : 0][0] = lsum[HEXP ? mt : 0][1] = lsum[HEXP ? mt : 0][2] =
                lsum[HEXP ? mt : 0][3] = 0.0f;
        }
        }
        if constexpr (QREG) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int kk = 0; kk < KC; ++kk)
              csa__ldmatrix_x4(qf[mt][kk], sQh + (wbase + mt * 16 + (lane & 15)) * PITCH +
                                               kk * 16 + (lane >> 4) * 8);
        }
      }

      compute(blk, st, sQh);
      if (MH && blk == nblocks - 1)
        store_head(h0 + hi);
      st = st + 1 == stages ? 0 : st + 1;
      if (++blk == nblocks && MH) {
        blk = 0;
        ++hi;
        qb = qb + 1 == qbufs ? 0 : qb + 1;
      }
    }
    if (!MH)
      store_head(h0);
  } else {
    for (int hi = 0; hi < nh; ++hi) /* no row has a key: zeros, lse = -inf */
      store_head(h0 + hi);
  }


}

/*
 * The kernels, one extern "C" name per instantiation (the host looks them
 * up by name, csrc/cuda/attn_plan.c): csa_attn_fwd_<dtype>_d<DP>_<tile>,
 * each taking the args struct by value as its only parameter.  The tile
 * table is shared with the host (attn_kernels.h).
 */
#define CSA__DEFV(dt, TIn, kind, DP, BN, MT, QREG, MINB, MH, VAR, sfx)               \
  extern "C" __global__ void __launch_bounds__(CSA__ATTN_THREADS, MINB)              \
      csa_attn_fwd_##dt##_d##DP##_##kind##sfx(const csa__cuda_attn_args a) {          \
    csa__cu_check(a);                                                                \
    csa__attn_fwd_body<TIn, DP, BN, MT, QREG != 0, MH != 0, VAR>(a);                 \
  }
#define CSA__DEF(dt, TIn, kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEFV(dt, TIn, kind, DP, BN, MT, QREG, MINB, MH, CSA__VAR_FAST, )
#define CSA__DEF_F16(kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEF(f16, __half, kind, DP, BN, MT, QREG, MINB, MH)
#define CSA__DEF_BF16(kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEF(bf16, __nv_bfloat16, kind, DP, BN, MT, QREG, MINB, MH)
#define CSA__DEF_F32(kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEF(f32, float, kind, DP, BN, MT, QREG, MINB, MH)
CSA__ATTN_TILES_SMALL(CSA__DEF_F16)
CSA__ATTN_TILES_BIG(CSA__DEF_F16)
CSA__ATTN_TILES_SMALL(CSA__DEF_BF16)
CSA__ATTN_TILES_SMALLW(CSA__DEF_F16)
CSA__ATTN_TILES_SMALLW(CSA__DEF_BF16)
CSA__ATTN_TILES_BIG(CSA__DEF_BF16)
CSA__ATTN_TILES_BIG(CSA__DEF_F32)
/* fp16 with exact row sums (LSE requested) where the fast form uses f16 exp */
#define CSA__DEF_F16L(kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEFV(f16, __half, kind, DP, BN, MT, QREG, MINB, MH, CSA__VAR_EXACT_L, _lse)
CSA__ATTN_TILES_HEXP(CSA__DEF_F16L)
/* fp32 as bf16 hi + lo, three products per GEMM */
#define CSA__DEF_X3(kind, DP, BN, MT, QREG, MINB, MH) \
  CSA__DEFV(f32, float, kind, DP, BN, MT, QREG, MINB, MH, CSA__VAR_X3, )
CSA__ATTN_TILES_X3(CSA__DEF_X3)
