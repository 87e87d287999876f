/*
 * attn_fwd_sm90.cu — varlen attention forward for Hopper (sm_90a) on
 * wgmma: S = Q K^T and O += P V as warpgroup-wide asynchronous products,
 * P kept in registers between the two.  Built only for
 * -gencode=arch=compute_90a,code=sm_90a, into its own module; the host
 * picks it through csa__sm90_plan() (attn_sm90_plan.h) and falls back to
 * the mma.sync kernel (attn_fwd.cu) for everything it does not cover.
 *
 * Semantics are those of attn_fwd.cu, tile for tile: a CTA owns BM
 * consecutive *packed* query rows of one head, whatever sequences they
 * belong to; the keys those rows see form one contiguous run of packed K/V
 * rows [c_lo, c_hi), streamed in blocks of BN keys; every row masks, in
 * registers, the keys outside its own sequence (and past its causal limit,
 * bottom-right aligned: key j is visible to query row i of a sequence when
 * j - kv_start <= i - q_start + L_kv - L_q).  So varlen, GQA (query head h
 * reads kv head h / (H / H_kv)), causal with L_q != L_kv, rows with no key
 * (0 and lse = -inf) and zero-length sequences need no special path, and
 * every query row of the tensor is written, inside a sequence or not.
 *
 * Robustness.  cu_seqlens on the device may be unchecked: every sequence
 * is clamped (start in [0, T], end in [start, min(T, start + max_seqlen)]),
 * K/V rows are read only inside the CTA's clamped range, and the rest of a
 * block is zero-filled by the copy itself (cp.async with 0 source bytes).
 *
 * Layout.  Q, K and V tiles sit in shared memory in the 128-byte swizzle
 * (ptx_sm90.cuh): the head dim is cut into 64-element column blocks, each a
 * [rows][64] array of 128-byte rows whose 16-byte chunk c of row r is stored
 * at chunk c ^ (r % 8).  Q and K are the K-major operands of S = Q K^T;
 * the same V bytes are the MN-major ("transposed") B operand of P V, so no
 * operand is ever transposed in memory.
 *
 * Warp specialization (CSA__SM90_WS, the default): 1 + WG warpgroups.  The
 * producer (warpgroup 0, setmaxnreg down to a few dozen registers) copies
 * Q once and then K/V blocks into a ring of STAGES buffers; WG consumer
 * warpgroups (2 or 3 by tile configuration, attn_sm90_plan.h; registers
 * raised with setmaxnreg) own 64 query rows each and run S = Q K^T, mask,
 * online softmax and O += P V per block.  Hand-over is by mbarriers:
 * full[s] (the producer's 128 threads arrive once their copies of stage s
 * landed) and empty[s] (every consumer thread arrives once its products
 * that read stage s are done), so the consumers never wait for each other
 * and drift apart, one's softmax running under the others' products.
 * Without WS every thread copies and a CTA barrier per block publishes the
 * stage (simpler, slower).
 *
 * Loads: plain cp.async, 16 bytes per thread, written straight into the
 * swizzled layout.  With ANNOUNCE (the default) each producer thread ends
 * a block with cp.async.mbarrier.arrive, which arrives on full[s] when its
 * copies have landed, and goes on to the next block at once; a consumer
 * thread then fences the landed bytes to the async proxy (fence.proxy.async:
 * wgmma reads shared memory through it) before its products.  Without, a
 * producer thread waits for block j (cp.async.wait_group 1, once block
 * j + 1 is issued), fences, then arrives: a block is announced one block
 * late, which costs the ring a stage of lookahead.  Why not TMA: the rows a CTA needs start at arbitrary
 * packed positions with arbitrary token strides, and tensor maps would have
 * to be encoded on the host for every call (three maps, through the driver
 * API) — cp.async writes the same swizzled layout with no host work, and
 * 16-byte aligned rows are already required (a->vec).  Why not 1-D bulk
 * copies (cp.async.bulk): they write contiguous bytes, and a row of the
 * swizzled layout is not contiguous.
 *
 * Math per row i (c = scale * log2 e), online over key blocks:
 *   m_i = max_j s_ij,  l_i = sum_j 2^{c (s_ij - m_i)},  o_i = sum_j 2^{...} v_j,
 * rescaled by 2^{c (m_old - m_new)} when the max grows; out_i = o_i / l_i,
 * lse_i = scale m_i + ln l_i.  l accumulates in fp32 from the unrounded
 * probabilities (only the copy of P that multiplies V is rounded to 16
 * bits), so the LSE stays at fp32 accuracy.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>
#include <stdint.h>

#include "attn_args.h"
#include "attn_sm90_plan.h"
#include "cu_check.cuh"
#include "ptx_sm90.cuh"
#include "seq_rows.cuh"

/*
 * Consumer schedule knobs (kernel-internal; the launch shape lives in
 * attn_sm90_plan.h), per head dim.  The defaults are the fastest measured
 * combination (bench/RESULTS.md, "Hopper kernel"); the others are kept,
 * tested for correctness, for tuning:
 *   OVERLAP   each warpgroup's softmax of block j + 1 runs while its own
 *             P_j V_j is on the tensor cores (one P buffer: the
 *             probabilities wait in S until that product lands).  It needs
 *             K of block j + 1 and V of block j at once; within a few
 *             percent of no overlap on long-hd128, slower at D = 64.
 *   PINGPONG  two consumer warpgroups take turns issuing their products
 *             (named barriers), so one's softmax covers the other's
 *             products.  Within noise of no turns without OVERLAP.
 *   PRODUCER_REGS  registers per thread the producer warpgroup keeps after
 *             setmaxnreg; the consumers get the rest of the CTA's launch
 *             share: (NTH x LREGS - 128 P) / (NTH - 128) each, rounded
 *             down to 8 (40 -> 232 with two consumer warpgroups, 152 with
 *             three).
 */
#ifndef CSA__SM90_OVERLAP
#define CSA__SM90_OVERLAP 0
#endif
#ifndef CSA__SM90_PINGPONG
#define CSA__SM90_PINGPONG 0
#endif
#ifndef CSA__SM90_PRODUCER_REGS
#define CSA__SM90_PRODUCER_REGS 40
#endif
/* ANNOUNCE  1: the producer announces each K/V block as soon as its copies
 *           land (cp.async.mbarrier.arrive), and every consumer thread
 *           fences the landed bytes to the async proxy after its wait;
 *           0: the producer waits for block it (cp.async.wait_group) once
 *           block it + 1 is issued, fences, then arrives, i.e. one block
 *           late, which takes one stage of lookahead away from the ring. */
#ifndef CSA__SM90_ANNOUNCE
#define CSA__SM90_ANNOUNCE 1
#endif
#ifndef CSA__SM90_OVERLAP_D64
#define CSA__SM90_OVERLAP_D64 CSA__SM90_OVERLAP
#endif
#ifndef CSA__SM90_PINGPONG_D64
#define CSA__SM90_PINGPONG_D64 CSA__SM90_PINGPONG
#endif
#ifndef CSA__SM90_PRODUCER_REGS_D64
#define CSA__SM90_PRODUCER_REGS_D64 CSA__SM90_PRODUCER_REGS
#endif
#ifndef CSA__SM90_OVERLAP_D128
#define CSA__SM90_OVERLAP_D128 CSA__SM90_OVERLAP
#endif
#ifndef CSA__SM90_PINGPONG_D128
#define CSA__SM90_PINGPONG_D128 CSA__SM90_PINGPONG
#endif
#ifndef CSA__SM90_PRODUCER_REGS_D128
#define CSA__SM90_PRODUCER_REGS_D128 CSA__SM90_PRODUCER_REGS
#endif
#ifndef CSA__SM90_OVERLAP_D128S
#define CSA__SM90_OVERLAP_D128S CSA__SM90_OVERLAP
#endif
#ifndef CSA__SM90_PINGPONG_D128S
#define CSA__SM90_PINGPONG_D128S CSA__SM90_PINGPONG
#endif
#ifndef CSA__SM90_PRODUCER_REGS_D128S
#define CSA__SM90_PRODUCER_REGS_D128S CSA__SM90_PRODUCER_REGS
#endif

/* Two floats rounded to a packed 16-bit pair (lo in the low half). */
template <typename T>
static __device__ __forceinline__ uint32_t csa__sm90_pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t csa__sm90_pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&h);
}
template <>
__device__ __forceinline__ uint32_t csa__sm90_pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&h);
}

/* 2^x on the special-function unit (rel. error 2^-22, 2^-inf = 0). */
static __device__ __forceinline__ float csa__sm90_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/* Byte offset of 16-byte chunk ch of row `row` in a swizzled tile of ROWS
 * rows (see Layout above). */
template <int ROWS>
static __device__ __forceinline__ uint32_t csa__sm90_swz(int row, int ch) {
  return (uint32_t)((ch >> 3) * ROWS * 128 + row * 128 + (((ch & 7) ^ (row & 7)) << 4));
}

/*
 * Sequence of packed row r: the largest s in [0, B - 1] with cu[s] <= r
 * (binary search; on non-monotonic, unchecked cu it still ends on some s in
 * range, and the caller's clamping keeps every access in bounds).  The
 * kernel serves long rows, so B is small next to the rows of a tile.
 */
static __device__ __forceinline__ int csa__sm90_find_seq(const int32_t *cu, int B, int64_t r) {
  int lo = 0, hi = B - 1;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    if ((int64_t)__ldg(cu + mid) <= r)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/*
 * One CTA: BM = 64 WG query rows [r0, r0 + BM) of head blockIdx.y.  With
 * WS, warpgroup 0 is the producer (copies) and warpgroups 1..WG the
 * consumers; without, every warpgroup consumes and all threads copy.
 * Consumer warpgroup cwg computes rows [64 cwg, 64 cwg + 64) of the tile,
 * consumer warp cw rows [16 cw, 16 cw + 16).  D = D_v, a multiple of 64.
 */
template <typename T, int C, bool OVERLAP, bool PINGPONG, int PREGS>
static __device__ __forceinline__ void csa__sm90_fwd(const csa__cuda_attn_args &a) {
  constexpr bool WS = CSA__SM90_WS != 0;
  constexpr int D = CSA__SM90_D(C), WG = CSA__SM90_WG(C);
  constexpr int NTH = CSA__SM90_THREADS(C), BM = CSA__SM90_BM(C), BN = CSA__SM90_BN(C),
                STAGES = CSA__SM90_STAGES;
  /* Registers per thread at launch (one CTA per SM: the file's share,
   * rounded down to the allocation unit of 8), and what the consumers get
   * once the producer gave back all but PREGS of its own. */
  constexpr int LREGS = 65536 / NTH / 8 * 8;
  constexpr int CREGS = (NTH * LREGS - 128 * PREGS) / (NTH - 128) / 8 * 8;
  constexpr int NCP = WS ? 128 : NTH; /* threads that copy */
  constexpr int CPR = D / 8;          /* 16-byte chunks per row */
  constexpr uint32_t QBYTES = BM * D * 2, KVBYTES = BN * D * 2;
  static_assert(D % 64 == 0, "head dim must be a multiple of 64");
  static_assert(NCP % CPR == 0 && (BN * CPR) % NCP == 0 && (BM * CPR) % NCP == 0, "copy split");
  static_assert(STAGES >= 2, "the ring needs two stages");
  static_assert(BM <= NTH, "row plan: one thread per row");
  /* with turns, a warpgroup waits for block it + 1 before it releases
   * block it, and the producer announces block it + 1 only after issuing
   * block it + 2: a third stage keeps that from closing a cycle */
  static_assert(!(PINGPONG && WS) || STAGES >= 3, "turns need three stages");
  static_assert(!(PINGPONG && WS) || WG == 2, "turns pair two warpgroups");
  static_assert(!WS || (PREGS % 8 == 0 && PREGS >= 24 && CREGS <= 256),
                "setmaxnreg takes multiples of 8 in [24, 256]");

  extern __shared__ __align__(1024) unsigned char csa__sm90_smem[];
  const uint32_t raw = csa__smem_u32(csa__sm90_smem);
  const uint32_t sbase = (raw + 1023u) & ~1023u; /* swizzle atoms are 1024-aligned */
  const uint32_t sQ = sbase, sK = sbase + QBYTES, sV = sK + STAGES * KVBYTES;
  const uint32_t sRange = sV + STAGES * KVBYTES;
  int *const sKs = reinterpret_cast<int *>(csa__sm90_smem + (sRange - raw));
  int *const sKe = sKs + BM;
  /* mbarriers (WS): full[s] after the copies of stage s landed (NCP
   * arrivals), empty[s] after every consumer finished reading it. */
  const uint32_t sFull = sRange + 2 * BM * 4, sEmpty = sFull + STAGES * 8;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.y, hk = h / (a.heads / a.heads_kv);
  const int64_t r0 = (int64_t)blockIdx.x * BM;

  if (WS && tid == 0) {
#pragma unroll
    for (int i = 0; i < STAGES; ++i) {
      csa__mbar_init(sFull + 8 * i, NCP);
      csa__mbar_init(sEmpty + 8 * i, NTH - 128);
    }
  }

  /* Copy roles: copying thread tid always moves chunk column ch of rows
   * crow + i * RSTEP (RSTEP a multiple of 8, so the swizzle phase crow % 8
   * is fixed per thread). */
  constexpr int RSTEP = NCP / CPR;
  const int ch = tid % CPR, crow = tid / CPR;
  const bool copier = !WS || tid < NCP;

  /* 0. Q rows [r0, r0 + BM) of head h; rows past T_q are zero. */
  if (copier) {
    const T *const qp = reinterpret_cast<const T *>(a.q) + (int64_t)h * a.q_st_h + ch * 8;
#pragma unroll
    for (int i = 0; i < BM / RSTEP; ++i) {
      const int row = crow + i * RSTEP;
      const int64_t r = r0 + row;
      const bool ok = r < a.t_q;
      csa__cp_async16_zfill(sQ + csa__sm90_swz<BM>(row, ch), ok ? qp + r * a.q_st_t : a.q,
                            ok ? 16 : 0);
    }
    csa__cp_async_commit_sm90();
  }

  /* 1. Row plan: row tid's clamped key range [ks, ke) (causal limit
   *    included); empty: ks = INT_MAX, ke = INT_MIN (neutral for min/max). */
  if (tid < BM) {
    const int64_t r = r0 + tid;
    int ks = INT_MAX, ke = INT_MIN;
    if (r < a.t_q && a.batch > 0) {
      const int sq = csa__sm90_find_seq(a.cu_q, a.batch, r);
      csa__row_keys(a, sq, r, &ks, &ke);
    }
    sKs[tid] = ks;
    sKe[tid] = ke;
  }
  __syncthreads(); /* row plan and mbarrier initialisation visible */

  /* CTA range [c_lo, c_hi): union of all rows' ranges. */
  int c_lo, c_hi;
  csa__cta_key_range<BM>(sKs, sKe, lane, &c_lo, &c_hi);
  const int nblocks = c_hi > c_lo ? (int)(((int64_t)c_hi - c_lo + BN - 1) / BN) : 0;

  /* K/V rows [kb, kb + BN) of block it into stage st; rows at or past c_hi
   * are zero-filled. */
  auto load_kv = [&](int it, int st) {
    const int64_t j0 = (int64_t)c_lo + (int64_t)it * BN + crow;
    const T *kp =
        reinterpret_cast<const T *>(a.k) + (int64_t)hk * a.k_st_h + j0 * a.k_st_t + ch * 8;
    const T *vp =
        reinterpret_cast<const T *>(a.v) + (int64_t)hk * a.v_st_h + j0 * a.v_st_t + ch * 8;
    const int64_t kstep = (int64_t)RSTEP * a.k_st_t, vstep = (int64_t)RSTEP * a.v_st_t;
    const uint32_t off0 = csa__sm90_swz<BN>(crow, ch); /* + i * RSTEP rows of 128 bytes */
    const uint32_t dk = sK + st * KVBYTES + off0, dv = sV + st * KVBYTES + off0;
#pragma unroll 4
    for (int i = 0; i < BN / RSTEP; ++i) {
      const bool ok = j0 + i * RSTEP < c_hi;
      csa__cp_async16_zfill(dk + i * (RSTEP * 128), ok ? kp : a.k, ok ? 16 : 0);
      csa__cp_async16_zfill(dv + i * (RSTEP * 128), ok ? vp : a.v, ok ? 16 : 0);
      kp += kstep;
      vp += vstep;
    }
  };

  if (WS && warp < 4) {
    /* Producer warpgroup.  cp.async groups: Q, then one per block.  Block
     * it - 1 is announced once block it is issued: wait until at most one
     * group is pending, make the landed bytes visible to the async proxy,
     * arrive on full. */
    csa__setmaxnreg_dec<PREGS>();
    if (CSA__SM90_ANNOUNCE) {
      /* block it (and, for it = 0, Q before it) announced when it lands */
      for (int it = 0; it < nblocks; ++it) {
        const int st = it % STAGES;
        if (it >= STAGES)
          csa__mbar_wait(sEmpty + 8 * st, (uint32_t)((it / STAGES) + 1) & 1u);
        load_kv(it, st);
        csa__cp_async_mbar_arrive(sFull + 8 * st);
      }
      csa__cp_async_wait_sm90<0>(); /* no copy outlives its thread */
      return;
    }
    for (int it = 0; it < nblocks; ++it) {
      const int st = it % STAGES;
      if (it >= STAGES)
        csa__mbar_wait(sEmpty + 8 * st, (uint32_t)((it / STAGES) + 1) & 1u);
      load_kv(it, st);
      csa__cp_async_commit_sm90();
      if (it > 0) {
        csa__cp_async_wait_sm90<1>();
        csa__fence_proxy_async();
        csa__mbar_arrive(sFull + 8 * ((it - 1) % STAGES));
      }
    }
    csa__cp_async_wait_sm90<0>();
    if (nblocks > 0) {
      csa__fence_proxy_async();
      csa__mbar_arrive(sFull + 8 * ((nblocks - 1) % STAGES));
    }
    return;
  }
  if (WS)
    csa__setmaxnreg_inc<CREGS>();

  /* Consumers. */
  const int cw = warp - (WS ? 4 : 0), cwg = cw >> 2;
  const int g = lane >> 2, t4 = lane & 3;
  /* This warpgroup's union [w_lo, w_hi) and intersection [w_ksmax,
   * w_kemin) (blocks inside the intersection need no mask). */
  int w_lo = min(sKs[64 * cwg + lane], sKs[64 * cwg + 32 + lane]);
  int w_hi = max(sKe[64 * cwg + lane], sKe[64 * cwg + 32 + lane]);
  int w_ksmax = max(sKs[64 * cwg + lane], sKs[64 * cwg + 32 + lane]);
  int w_kemin = min(sKe[64 * cwg + lane], sKe[64 * cwg + 32 + lane]);
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, off));
    w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, off));
    w_ksmax = max(w_ksmax, __shfl_xor_sync(0xffffffffu, w_ksmax, off));
    w_kemin = min(w_kemin, __shfl_xor_sync(0xffffffffu, w_kemin, off));
  }

  float o[D / 2], s[BN / 2];
  uint32_t p[BN / 8][2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i)
    o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < BN / 2; ++i)
    s[i] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const float sl2 = a.scale_log2;
  /* Wait until the stage behind mbarrier `bar` is full (phase `parity`).
   * Copies announced by cp.async.mbarrier.arrive were made by the generic
   * proxy and were not fenced by their thread: this thread orders them
   * before its own wgmma reads (async proxy). */
  auto wait_full = [&](uint32_t bar, uint32_t parity) {
    csa__mbar_wait(bar, parity);
    if (CSA__SM90_ANNOUNCE)
      csa__fence_proxy_async();
  };

  /* Does any row of this warpgroup see a key of block it? (uniform over
   * the warpgroup, as wgmma needs) */
  auto active = [&](int it) {
    const int kb = c_lo + it * BN;
    return w_lo < kb + BN && w_hi > kb;
  };
  /* S = Q K^T of the block in stage st, over D / 16 k-slices (32 bytes of
   * each swizzled row); the first slice overwrites s (scale-d = 0). */
  auto issue_s = [&](int st) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t qa = sQ + (kk >> 2) * (BM * 128) + cwg * (64 * 128) + (kk & 3) * 32;
      const uint32_t ka = sK + st * KVBYTES + (kk >> 2) * (BN * 128) + (kk & 3) * 32;
      csa__wgmma_ss<T, BN>(s, csa__gmma_desc(qa, 16, 1024), csa__gmma_desc(ka, 16, 1024),
                           kk > 0);
    }
  };
  /* O += P V: k-slice kk = keys [16 kk, 16 kk + 16) = column tiles 2 kk and
   * 2 kk + 1 of S; V's 16 rows start 2048 bytes apart. */
  auto issue_pv = [&](int st, const uint32_t(&pd)[BN / 8][2]) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t pa[4] = {pd[2 * kk][0], pd[2 * kk][1], pd[2 * kk + 1][0],
                              pd[2 * kk + 1][1]};
      const uint32_t va = sV + st * KVBYTES + kk * (16 * 128);
#if defined(CSA_SM90_PV_SPLIT)
#pragma unroll
      for (int cb = 0; cb < D / 64; ++cb)
        csa__wgmma_rs<T, 64>(o + 32 * cb, pa,
                             csa__gmma_desc(va + cb * (BN * 128), BN * 128, 1024), 1);
#else
      csa__wgmma_rs<T, D>(o, pa, csa__gmma_desc(va, BN * 128, 1024), 1);
#endif
    }
  };
  /* Pin s / o after a wait (the compiler must not move their accesses
   * across it). */
  auto pin_s = [&]() {
#pragma unroll
    for (int i = 0; i < BN / 2; ++i)
      csa__reg_fence(s[i]);
  };
  auto pin_o = [&]() {
#pragma unroll
    for (int i = 0; i < D / 2; ++i)
      csa__reg_fence(o[i]);
  };
  /* Wait for every issued product. */
  auto wait_all = [&]() {
    csa__wgmma_wait<0>();
    pin_s();
    pin_o();
  };
  /* Mask and online softmax of s (block starting at key kb), in place: s
   * receives the probabilities 2^{c s - c m} in fp32, l and m their running
   * sum and max; al0, al1 the factors 2^{c (m_old - m_new)} that o still
   * needs (rescale).  pack_p rounds them to the 16-bit P of P V. */
  auto softmax_exp = [&](int kb, float &al0, float &al1) {
    /* Block-diagonal (+ causal) mask, only where some row's range does not
     * cover the whole block. */
    if (!(kb >= w_ksmax && kb + BN <= w_kemin)) {
      /* this thread's rows g and g + 8, read here: registers are scarce and
       * the mask is rare on long rows */
      const int rks0 = sKs[16 * cw + g], rke0 = sKe[16 * cw + g];
      const int rks1 = sKs[16 * cw + g + 8], rke1 = sKe[16 * cw + g + 8];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = kb + 8 * i + 2 * t4 + (e & 1);
          const int ks = (e >> 1) ? rks1 : rks0, ke = (e >> 1) ? rke1 : rke0;
          if (!(j >= ks && j < ke))
            s[4 * i + e] = -INFINITY;
        }
    }
    /* the 4 threads of a quad share a row */
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
      mx0 = fmaxf(mx0, fmaxf(s[4 * i], s[4 * i + 1]));
      mx1 = fmaxf(mx1, fmaxf(s[4 * i + 2], s[4 * i + 3]));
    }
#pragma unroll
    for (int sh = 1; sh <= 2; sh *= 2) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, sh));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, sh));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
    al0 = csa__sm90_exp2((m0 - mu0) * sl2);
    al1 = csa__sm90_exp2((m1 - mu1) * sl2);
    m0 = mn0;
    m1 = mn1;
    const float mb0 = mu0 * sl2, mb1 = mu1 * sl2;
    float ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
      s[4 * i] = csa__sm90_exp2(fmaf(s[4 * i], sl2, -mb0));
      s[4 * i + 1] = csa__sm90_exp2(fmaf(s[4 * i + 1], sl2, -mb0));
      s[4 * i + 2] = csa__sm90_exp2(fmaf(s[4 * i + 2], sl2, -mb1));
      s[4 * i + 3] = csa__sm90_exp2(fmaf(s[4 * i + 3], sl2, -mb1));
      ls0 += s[4 * i] + s[4 * i + 1];
      ls1 += s[4 * i + 2] + s[4 * i + 3];
    }
    l0 = fmaf(l0, al0, ls0);
    l1 = fmaf(l1, al1, ls1);
  };
  auto pack_p = [&](uint32_t(&pd)[BN / 8][2]) {
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
      pd[i][0] = csa__sm90_pack2<T>(s[4 * i], s[4 * i + 1]);
      pd[i][1] = csa__sm90_pack2<T>(s[4 * i + 2], s[4 * i + 3]);
    }
  };
  auto softmax = [&](int kb, uint32_t(&pd)[BN / 8][2], float &al0, float &al1) {
    softmax_exp(kb, al0, al1);
    pack_p(pd);
  };
  auto rescale = [&](float al0, float al1) {
    /* 2^0 = 1 exactly: rescale only when some row's max moved. */
    if (__any_sync(0xffffffffu, al0 != 1.0f || al1 != 1.0f)) {
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[4 * i] *= al0;
        o[4 * i + 1] *= al0;
        o[4 * i + 2] *= al1;
        o[4 * i + 3] *= al1;
      }
    }
  };

  if (OVERLAP && WS) {
    /*
     * Softmax overlapped with the warpgroup's own products (FlashAttention-3's
     * intra-warpgroup schedule): a turn issues S_{it+1} = Q K_{it+1}^T and then
     * P_it V_it as two wgmma groups; the softmax of block it + 1 starts as
     * soon as the first group is done (wait_group 1) and runs while P_it V_it
     * is still on the tensor cores.  Its probabilities stay in s, in fp32,
     * until that product has landed: only then is o rescaled,
     *   o_new = (o + P_it V_it) 2^{c (m_it - m_it+1)},
     * and s packed into the one P buffer the next turn reads.  So the loop
     * holds S, O and a single P (160 registers at D = 128), where a second
     * P buffer would spill.  With TURNS the two warpgroups also take turns
     * issuing (named barriers 1 and 2, as below), so one's softmax covers
     * the other's products.
     */
    constexpr bool TURNS = PINGPONG;
    const int me = 1 + cwg, other = 2 - cwg;
    if (nblocks > 0) {
      if (TURNS && cwg == 1)
        csa__named_arrive(1, 256);
      wait_full(sFull, 0u);
      if (TURNS)
        csa__named_barrier(me, 256);
      csa__wgmma_fence();
      issue_s(0);
      csa__wgmma_commit();
      if (TURNS)
        csa__named_arrive(other, 256);
      csa__wgmma_wait<0>();
      pin_s();
      float al0, al1;
      softmax_exp(c_lo, al0, al1); /* o is still 0: no rescale */
      pack_p(p);
      for (int it = 0; it + 1 < nblocks; ++it) {
        const int st = it % STAGES, sn = (it + 1) % STAGES;
        wait_full(sFull + 8 * sn, (uint32_t)((it + 1) / STAGES) & 1u);
        if (TURNS)
          csa__named_barrier(me, 256);
        csa__wgmma_fence();
        issue_s(sn);
        csa__wgmma_commit();
        csa__wgmma_fence(); /* each group behind its own fence (not
                             * required: p was written before the first) */
        issue_pv(st, p);
        csa__wgmma_commit();
        if (TURNS)
          csa__named_arrive(other, 256);
        csa__wgmma_wait<1>(); /* S_{it+1} landed; P_it V_it may still run */
        pin_s();
        softmax_exp(c_lo + (it + 1) * BN, al0, al1);
        /* ptxas schedules the wait below as early as it can inside a basic
         * block (it names no register of the softmax), which would run the
         * softmax after P_it V_it instead of under it.  A branch on the row
         * sums (never taken: l >= 0) ends the block after the last
         * exponential, and ptxas does not move the wait across it. */
        if (l0 < 0.0f || l1 < 0.0f)
          asm volatile("nanosleep.u32 0;");
        csa__wgmma_wait<0>();
        pin_o();
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) /* p stays live until its product is done */
          asm volatile("" : "+r"(p[i][0]), "+r"(p[i][1])::"memory");
        rescale(al0, al1);
        pack_p(p);
        csa__mbar_arrive(sEmpty + 8 * st); /* this thread is done with stage st */
      }
      /* the last block's P V */
      if (TURNS)
        csa__named_barrier(me, 256);
      csa__wgmma_fence();
      issue_pv((nblocks - 1) % STAGES, p);
      csa__wgmma_commit();
      if (TURNS && cwg == 0)
        csa__named_arrive(other, 256);
      wait_all();
    }
  } else if (PINGPONG && WS) {
    /*
     * Two consumer warpgroups take turns on the tensor cores: named
     * barrier 1 + c is "warpgroup c may issue".  A turn issues P_it V_it and
     * S_{it+1} = Q K_{it+1}^T back to back, then hands the turn over, so one
     * warpgroup's softmax runs while the other's products run.  Warpgroup 1
     * opens with one arrival for warpgroup 0 and leaves out its very last
     * one, so every barrier phase is completed exactly (n + 1 turns each).
     * Every product is issued unconditionally (a block no row of the
     * warpgroup sees is fully masked, p = 0): a wgmma under a branch would
     * make the compiler serialize them all.
     */
    const int me = 1 + cwg, other = 2 - cwg;
    if (nblocks > 0) {
      if (cwg == 1)
        csa__named_arrive(1, 256);
      wait_full(sFull, 0u);
      csa__named_barrier(me, 256);
      csa__wgmma_fence();
      issue_s(0);
      csa__wgmma_commit();
      csa__named_arrive(other, 256);
      wait_all();
      for (int it = 0; it < nblocks - 1; ++it) {
        const int st = it % STAGES, sn = (it + 1) % STAGES;
        float al0, al1;
        softmax(c_lo + it * BN, p, al0, al1);
        rescale(al0, al1);
        wait_full(sFull + 8 * sn, (uint32_t)((it + 1) / STAGES) & 1u);
        csa__named_barrier(me, 256);
        csa__wgmma_fence();
        issue_pv(st, p);
        issue_s(sn);
        csa__wgmma_commit();
        csa__named_arrive(other, 256);
        wait_all();
        csa__mbar_arrive(sEmpty + 8 * st); /* this thread is done with stage st */
      }
      const int st = (nblocks - 1) % STAGES;
      float al0, al1;
      softmax(c_lo + (nblocks - 1) * BN, p, al0, al1);
      rescale(al0, al1);
      csa__named_barrier(me, 256);
      csa__wgmma_fence();
      issue_pv(st, p);
      csa__wgmma_commit();
      if (cwg == 0)
        csa__named_arrive(other, 256);
      wait_all();
    }
  } else {
    /* Without WS the ring is driven by every thread: cp.async groups are
     * Q, then one per block (empty past the end), so "block it landed" is
     * wait_group(STAGES - 2) at the top of iteration it; after that
     * iteration's barrier every warpgroup is done with block it - 1, whose
     * stage then receives block it + STAGES - 1. */
    if (!WS) {
#pragma unroll
      for (int i = 0; i < STAGES - 1; ++i) {
        if (i < nblocks)
          load_kv(i, i);
        csa__cp_async_commit_sm90();
      }
    }
    for (int it = 0; it < nblocks; ++it) {
      const int st = it % STAGES;
      if (WS) {
        wait_full(sFull + 8 * st, (uint32_t)(it / STAGES) & 1u);
      } else {
        csa__cp_async_wait_sm90<STAGES - 2>();
        csa__fence_proxy_async();
        __syncthreads();
        const int nx = it + STAGES - 1;
        if (nx < nblocks)
          load_kv(nx, nx % STAGES);
        csa__cp_async_commit_sm90();
      }
      if (active(it)) {
        csa__wgmma_fence();
        issue_s(st);
        csa__wgmma_commit();
        wait_all();
        float al0, al1;
        softmax(c_lo + it * BN, p, al0, al1);
        rescale(al0, al1);
        csa__wgmma_fence();
        issue_pv(st, p);
        csa__wgmma_commit();
        wait_all();
      }
      if (WS)
        csa__mbar_arrive(sEmpty + 8 * st); /* this thread is done with stage st */
    }
    if (!WS)
      csa__cp_async_wait_sm90<0>(); /* no copy may outlive the CTA */
  }

  /* Epilogue: out = o / l (0 for rows without keys), lse = scale m + ln l. */
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float lt = rr ? l1 : l0;
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
    const int64_t r = r0 + 16 * cw + g + 8 * rr;
    if (r < a.t_q) {
      T *const op = reinterpret_cast<T *>(a.out) + r * a.o_st_t + (int64_t)h * a.o_st_h;
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
        *reinterpret_cast<uint32_t *>(op + 8 * i + 2 * t4) =
            csa__sm90_pack2<T>(o[4 * i + 2 * rr] * inv, o[4 * i + 2 * rr + 1] * inv);
      if (a.lse != nullptr && t4 == 0)
        a.lse[(int64_t)h * a.lse_st_h + r * a.lse_st_t] =
            lt > 0.0f ? (rr ? m1 : m0) * a.scale + logf(lt) : -INFINITY;
    }
  }
}

/* Entry points named by csa__sm90_plan(); one CTA per SM (the K/V ring
 * fills shared memory), so the register cap at entry is the file's share
 * per thread, which setmaxnreg then moves from the producer to the
 * consumers. */
#define CSA__SM90_ENTRY(NAME, T, C, K)                                                         \
  extern "C" __global__ void __launch_bounds__(CSA__SM90_THREADS(C), 1)                        \
      NAME(const __grid_constant__ csa__cuda_attn_args a) {                                    \
    csa__cu_check(a);                                                                          \
    csa__sm90_fwd<T, C, CSA__SM90_OVERLAP_##K != 0, CSA__SM90_PINGPONG_##K != 0,               \
                  CSA__SM90_PRODUCER_REGS_##K>(a);                                             \
  }

CSA__SM90_ENTRY(csa_attn_fwd_sm90_bf16_d64, __nv_bfloat16, 0, D64)
CSA__SM90_ENTRY(csa_attn_fwd_sm90_bf16_d128, __nv_bfloat16, 1, D128)
CSA__SM90_ENTRY(csa_attn_fwd_sm90_bf16_d128s, __nv_bfloat16, 2, D128S)
CSA__SM90_ENTRY(csa_attn_fwd_sm90_f16_d64, __half, 0, D64)
CSA__SM90_ENTRY(csa_attn_fwd_sm90_f16_d128, __half, 1, D128)
CSA__SM90_ENTRY(csa_attn_fwd_sm90_f16_d128s, __half, 2, D128S)
