/*
 * attn_fwd.cu — varlen attention forward on tensor cores (mma.sync), with
 * query tiles that pack several short sequences.
 *
 * Tiling.  Peers give every sequence its own 64/128-row query tile, so 20,000
 * sequences of 8..64 tokens leave most of each tile empty.  Here a CTA owns a
 * fixed run of BM = 64 consecutive *packed* query rows [r0, r0 + 64) of one
 * head, whatever sequences they belong to.  Because sequences are stored back
 * to back, the keys those rows need are also one contiguous run of packed
 * K/V rows: [cu_kv[s_first], cu_kv[s_last + 1]).  The CTA streams that run
 * through shared memory in blocks of BN keys (double-buffered cp.async) and
 * every row masks, in registers, the keys outside its own sequence
 * ("block-diagonal" mask); a long sequence is simply many such tiles, which
 * is FlashAttention-2 tiling.  The grid is ceil(T_q / 64) x H and needs no
 * plan from the host: each of the 64 rows finds its sequence by a binary
 * search of cu_seqlens_q (log2(B) cached reads, once per CTA).
 *
 * Each of the 4 warps owns 16 rows and skips (no mma, no exp) every key
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
 * Precision.  fp16 and bf16 inputs feed the tensor cores as they are; fp32
 * inputs are rounded to bf16 on load (range of fp32, ~3 significant digits),
 * output written as fp32.  Scores, softmax and the output accumulate in fp32;
 * P is rounded to the input's 16-bit type for the second product.
 */
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "attn_args.h"
#include "ptx.cuh"

#define CSA__BM 64      /* query rows per CTA */
#define CSA__WARPS 4    /* 16 rows each */
#define CSA__THREADS (CSA__WARPS * 32)
/* Static shared memory of the kernel (row key ranges), kept out of the
 * dynamic budget the launcher computes. */
#define CSA__STATIC_SMEM (2 * CSA__BM * 4)

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

static __device__ __forceinline__ int64_t csa__clamp64(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/*
 * DP: head dim padded to a multiple of 16 (both D and D_v live in it).
 * BN: keys per shared-memory block.  QREG: keep Q's fragments in registers
 * (DP <= 128) instead of re-reading them from shared memory each block.
 * stages: 2 = double-buffered K/V, 1 = single (when shared memory is short).
 *
 * Dynamic shared memory: Q [64][DP+8], K [stages][BN][DP+8], V likewise; the
 * 8-element pad staggers rows by 16 bytes so ldmatrix's 8 row reads hit 8
 * different 16-byte bank groups.
 */
template <typename TIn, int DP, int BN, bool QREG>
__global__ void __launch_bounds__(CSA__THREADS)
    csa__attn_fwd_kernel(const csa__cuda_attn_args a, const int stages) {
  typedef typename csa__compute<TIn>::type TC;
  constexpr int BM = CSA__BM, PITCH = DP + 8, CH = DP / 8, NT = BN / 8, NO = DP / 8, KC = DP / 16;
  extern __shared__ __align__(16) unsigned char csa__smem[];
  TC *const sQ = reinterpret_cast<TC *>(csa__smem);
  TC *const sK = sQ + BM * PITCH;
  TC *const sV = sK + stages * BN * PITCH;
  __shared__ int sKs[BM], sKe[BM]; /* each row's visible keys [ks, ke) */

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int h = blockIdx.y, hk = h / (a.heads / a.heads_kv);
  const int64_t r0 = (int64_t)blockIdx.x * BM;
  const TIn *const qp = reinterpret_cast<const TIn *>(a.q) + (int64_t)h * a.q_st_h;
  const TIn *const kp = reinterpret_cast<const TIn *>(a.k) + (int64_t)hk * a.k_st_h;
  const TIn *const vp = reinterpret_cast<const TIn *>(a.v) + (int64_t)hk * a.v_st_h;
  const bool vec = a.vec != 0;

  /* 1. Row plan: sequence of each row (largest s with cu_q[s] <= r), its
   *    clamped key range, causal limit j < kvs + (r - qs) + L_kv - L_q + 1.
   *    Empty: ks = INT_MAX, ke = INT_MIN, neutral for the min/max below. */
  if (tid < BM) {
    int ks = INT_MAX, ke = INT_MIN;
    const int64_t r = r0 + tid;
    if (r < a.t_q && a.batch > 0) {
      int lo = 0, hi = a.batch - 1;
      while (lo < hi) {
        int mid = lo + ((hi - lo + 1) >> 1);
        if ((int64_t)__ldg(a.cu_q + mid) <= r)
          lo = mid;
        else
          hi = mid - 1;
      }
      const int64_t qs = csa__clamp64(__ldg(a.cu_q + lo), 0, a.t_q);
      const int64_t qe = csa__clamp64(__ldg(a.cu_q + lo + 1), qs,
                                      qs + a.max_q < a.t_q ? qs + a.max_q : a.t_q);
      if (r >= qs && r < qe) {
        const int64_t kvs = csa__clamp64(__ldg(a.cu_kv + lo), 0, a.t_kv);
        const int64_t kve = csa__clamp64(__ldg(a.cu_kv + lo + 1), kvs,
                                         kvs + a.max_kv < a.t_kv ? kvs + a.max_kv : a.t_kv);
        int64_t lim = kve;
        if (a.causal) {
          int64_t c = kvs + (r - qs) + (kve - kvs) - (qe - qs) + 1;
          lim = c < kve ? c : kve;
        }
        if (lim > kvs) {
          ks = (int)kvs;
          ke = (int)lim;
        }
      }
    }
    sKs[tid] = ks;
    sKe[tid] = ke;
  }
  __syncthreads();

  /* This thread's two rows (fragment rows g and g + 8 of its warp). */
  const int ks0 = sKs[warp * 16 + g], ke0 = sKe[warp * 16 + g];
  const int ks1 = sKs[warp * 16 + g + 8], ke1 = sKe[warp * 16 + g + 8];
  /* Warp range: union [w_lo, w_hi) and intersection [w_ksmax, w_kemin). */
  int w_lo = sKs[warp * 16 + (lane & 15)], w_hi = sKe[warp * 16 + (lane & 15)];
  int w_ksmax = w_lo, w_kemin = w_hi;
#pragma unroll
  for (int off = 1; off < 16; off <<= 1) {
    w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, off));
    w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, off));
    w_ksmax = max(w_ksmax, __shfl_xor_sync(0xffffffffu, w_ksmax, off));
    w_kemin = min(w_kemin, __shfl_xor_sync(0xffffffffu, w_kemin, off));
  }
  /* CTA range: union over all 64 rows (identical in every warp). */
  int c_lo = min(sKs[lane], sKs[lane + 32]), c_hi = max(sKe[lane], sKe[lane + 32]);
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    c_lo = min(c_lo, __shfl_xor_sync(0xffffffffu, c_lo, off));
    c_hi = max(c_hi, __shfl_xor_sync(0xffffffffu, c_hi, off));
  }
  const int nblocks = c_hi > c_lo ? (int)(((int64_t)c_hi - c_lo + BN - 1) / BN) : 0;

  float o[NO][4];
#pragma unroll
  for (int i = 0; i < NO; i++)
    o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float sl2 = a.scale_log2;
  const int kc_used = (a.d + 15) >> 4, vc_used = (a.dv + 15) >> 4;

  if (nblocks > 0) {
    uint32_t qf[QREG ? KC : 1][4];
    /* K/V rows [kb, kb + BN) of block it into stage st; rows past c_hi are
     * zero (never read outside the CTA's clamped range). */
    auto load_kv = [&](int it, int st) {
      const int kb = c_lo + it * BN;
      TC *dK = sK + st * BN * PITCH, *dV = sV + st * BN * PITCH;
      for (int c = tid; c < BN * CH; c += CSA__THREADS) {
        const int row = c / CH, col = (c % CH) * 8;
        const int64_t j = (int64_t)kb + row;
        const bool ok = j < c_hi;
        csa__load_chunk<TIn, TC>(dK + row * PITCH + col, ok ? kp + j * a.k_st_t : nullptr, col,
                                 a.d, vec);
        csa__load_chunk<TIn, TC>(dV + row * PITCH + col, ok ? vp + j * a.v_st_t : nullptr, col,
                                 a.dv, vec);
      }
    };
    for (int c = tid; c < BM * CH; c += CSA__THREADS) {
      const int row = c / CH, col = (c % CH) * 8;
      const int64_t r = r0 + row;
      csa__load_chunk<TIn, TC>(sQ + row * PITCH + col, r < a.t_q ? qp + r * a.q_st_t : nullptr,
                               col, a.d, vec);
    }
    csa__cp_async_commit();
    if (stages == 2) {
      load_kv(0, 0);
      csa__cp_async_commit();
    }

    for (int it = 0; it < nblocks; ++it) {
      int st = 0;
      if (stages == 2) {
        if (it + 1 < nblocks)
          load_kv(it + 1, (it + 1) & 1);
        csa__cp_async_commit();
        csa__cp_async_wait<1>();
        st = it & 1;
      } else {
        load_kv(it, 0);
        csa__cp_async_commit();
        csa__cp_async_wait<0>();
      }
      __syncthreads();
      if (QREG && it == 0) {
#pragma unroll
        for (int kk = 0; kk < KC; ++kk)
          csa__ldmatrix_x4(qf[QREG ? kk : 0],
                           sQ + (warp * 16 + (lane & 15)) * PITCH + kk * 16 + (lane >> 4) * 8);
      }

      const int kb = c_lo + it * BN;
      if (w_lo < kb + BN && w_hi > kb) {
        const TC *const k_s = sK + st * BN * PITCH;
        const TC *const v_s = sV + st * BN * PITCH;
        float s[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++)
          s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;

        /* S = Q K^T: A = Q rows, B = K rows (ldmatrix of K row-major gives
         * B's "col" layout directly). */
#pragma unroll
        for (int kk = 0; kk < KC; ++kk) {
          if (kk < kc_used) {
            uint32_t qa[4];
            if constexpr (QREG) {
              qa[0] = qf[kk][0];
              qa[1] = qf[kk][1];
              qa[2] = qf[kk][2];
              qa[3] = qf[kk][3];
            } else {
              csa__ldmatrix_x4(qa, sQ + (warp * 16 + (lane & 15)) * PITCH + kk * 16 +
                                       (lane >> 4) * 8);
            }
#pragma unroll
            for (int n2 = 0; n2 < BN / 16; ++n2) {
              uint32_t b[4];
              csa__ldmatrix_x4(b, k_s + (n2 * 16 + (lane & 7) + ((lane >> 4) << 3)) * PITCH +
                                      kk * 16 + ((lane >> 3) & 1) * 8);
              csa__mma16816<TC>(s[2 * n2], qa, b[0], b[1]);
              csa__mma16816<TC>(s[2 * n2 + 1], qa, b[2], b[3]);
            }
          }
        }

        /* Block-diagonal (+ causal) mask, only where some row's range ends
         * inside this block. */
        if (!(kb >= w_ksmax && kb + BN <= w_kemin)) {
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int j = kb + nt * 8 + 2 * t4 + (e & 1);
              const int ks = e < 2 ? ks0 : ks1, ke = e < 2 ? ke0 : ke1;
              if (!(j >= ks && j < ke))
                s[nt][e] = -INFINITY;
            }
          }
        }

        /* Online softmax; the 4 threads of a quad share a row. */
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
            mx = fmaxf(mx, fmaxf(s[nt][2 * rr], s[nt][2 * rr + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mnew = fmaxf(m[rr], mx);
          const float muse = mnew == -INFINITY ? 0.0f : mnew;
          const float alpha = csa__exp2((m[rr] - muse) * sl2);
          m[rr] = mnew;
          l[rr] *= alpha;
#pragma unroll
          for (int i = 0; i < NO; ++i) {
            o[i][2 * rr] *= alpha;
            o[i][2 * rr + 1] *= alpha;
          }
          const float mb = muse * sl2;
          float sum = 0.0f;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const float p0 = csa__exp2(fmaf(s[nt][2 * rr], sl2, -mb));
            const float p1 = csa__exp2(fmaf(s[nt][2 * rr + 1], sl2, -mb));
            s[nt][2 * rr] = p0;
            s[nt][2 * rr + 1] = p1;
            sum += p0 + p1;
          }
          l[rr] += sum;
        }

        /* O += P V: the C fragments of key tiles 2kc, 2kc+1 are exactly the
         * A fragment of key chunk kc; B = V via ldmatrix.trans. */
#pragma unroll
        for (int kc = 0; kc < BN / 16; ++kc) {
          uint32_t pa[4];
          pa[0] = csa__pack2<TC>(s[2 * kc][0], s[2 * kc][1]);
          pa[1] = csa__pack2<TC>(s[2 * kc][2], s[2 * kc][3]);
          pa[2] = csa__pack2<TC>(s[2 * kc + 1][0], s[2 * kc + 1][1]);
          pa[3] = csa__pack2<TC>(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
          for (int n2 = 0; n2 < DP / 16; ++n2) {
            if (n2 < vc_used) {
              uint32_t b[4];
              csa__ldmatrix_x4_trans(b, v_s + (kc * 16 + (lane & 15)) * PITCH + n2 * 16 +
                                            (lane >> 4) * 8);
              csa__mma16816<TC>(o[2 * n2], pa, b[0], b[1]);
              csa__mma16816<TC>(o[2 * n2 + 1], pa, b[2], b[3]);
            }
          }
        }
      }
      __syncthreads(); /* stage st is refilled by the next iteration's prefetch */
    }
  }

  /* Epilogue: out = o / l (0 for rows without keys), lse = scale m + ln l. */
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float lt = l[rr];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const float inv = lt > 0.0f ? __frcp_rn(lt) : 0.0f;
    const int64_t r = r0 + warp * 16 + g + rr * 8;
    if (r < a.t_q) {
      TIn *const op = reinterpret_cast<TIn *>(a.out) + r * a.o_st_t + (int64_t)h * a.o_st_h;
#pragma unroll
      for (int nt = 0; nt < NO; ++nt) {
        const int c = nt * 8 + 2 * t4;
        if (c < a.dv) {
          const float x = o[nt][2 * rr] * inv, y = o[nt][2 * rr + 1] * inv;
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
            lt > 0.0f ? m[rr] * a.scale + logf(lt) : -INFINITY;
    }
  }
}

/* Picks stages for the shared memory the device grants one block (2 if
 * double-buffering fits, else 1) and launches. */
template <typename TIn, int DP, int BN, bool QREG>
static int csa__launch(const csa__cuda_attn_args *a, cudaStream_t stream, int smem_optin,
                       const char **what) {
  void (*kern)(const csa__cuda_attn_args, const int) = csa__attn_fwd_kernel<TIn, DP, BN, QREG>;
  const size_t row_bytes = (size_t)(DP + 8) * 2;
  int stages = 2;
  size_t smem = (CSA__BM + 2 * 2 * BN) * row_bytes;
  if (smem + CSA__STATIC_SMEM > (size_t)smem_optin) {
    stages = 1;
    smem = (CSA__BM + 2 * BN) * row_bytes;
  }
  if (smem + CSA__STATIC_SMEM > (size_t)smem_optin) {
    *what = "head dims above 128 need more shared memory per block than this GPU grants "
            "(SM 7.5: 64 KiB); use D, D_v <= 128 on this device";
    return -1;
  }
  cudaError_t e;
  if (smem > 48 * 1024) {
    e = cudaFuncSetAttribute((const void *)kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem);
    if (e != cudaSuccess) {
      *what = "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)";
      return (int)e;
    }
  }
  dim3 grid((unsigned)(((int64_t)a->t_q + CSA__BM - 1) / CSA__BM), (unsigned)a->heads, 1);
  void *args[2] = {(void *)a, (void *)&stages};
  e = cudaLaunchKernel((const void *)kern, grid, dim3(CSA__THREADS, 1, 1), args, smem, stream);
  if (e != cudaSuccess) {
    (void)cudaGetLastError(); /* leave no stale error for the caller's next launch */
    *what = "launch of the attention kernel";
    return (int)e;
  }
  return 0;
}

template <typename TIn>
static int csa__launch_dtype(const csa__cuda_attn_args *a, cudaStream_t stream, int smem_optin,
                             const char **what) {
  const int dmax = a->d > a->dv ? a->d : a->dv;
  if (dmax <= 16)
    return csa__launch<TIn, 16, 64, true>(a, stream, smem_optin, what);
  if (dmax <= 32)
    return csa__launch<TIn, 32, 64, true>(a, stream, smem_optin, what);
  if (dmax <= 64)
    return csa__launch<TIn, 64, 64, true>(a, stream, smem_optin, what);
  if (dmax <= 128)
    return csa__launch<TIn, 128, 64, true>(a, stream, smem_optin, what);
  return csa__launch<TIn, 256, 32, false>(a, stream, smem_optin, what);
}

/* csa_dtype values (csa.h): FLOAT32 = 1, FLOAT16 = 2, BFLOAT16 = 3. */
extern "C" int csa__cuda_attn_launch(const csa__cuda_attn_args *a, int dtype, void *stream,
                                     const char **what) {
  int dev = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e != cudaSuccess) {
    *what = "reading the device's shared-memory limit";
    return (int)e;
  }
  cudaStream_t s = (cudaStream_t)stream;
  switch (dtype) {
  case 2:
    return csa__launch_dtype<__half>(a, s, optin, what);
  case 3:
    return csa__launch_dtype<__nv_bfloat16>(a, s, optin, what);
  case 1:
    return csa__launch_dtype<float>(a, s, optin, what);
  default:
    *what = "unsupported dtype";
    return -1;
  }
}
