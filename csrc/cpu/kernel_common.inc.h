/*
 * kernel_common.inc.h — what every CPU kernel shares, written once against
 * the SIMD vocabulary (simd_<isa>.h, included first): the per-thread scratch
 * and tile types, exp2, widening / narrowing, and the float32 steps of the
 * attention kernel (the hooks kernel.inc.h takes; see there).
 *
 * Included by each kernel_<isa>.c, a translation unit of its own compiled
 * with that ISA's flags, so the static functions here exist once per ISA
 * under the same names.
 */

#include <math.h>
#include <string.h>

#define CSA__ROUND16(n) (((n) + 15) & ~(size_t)15)
/* Rows of qt / ot and the width of the row buffer are rounded up to whole
 * vectors so that the transposes move whole CSA_VL x CSA_VL blocks. */
#define CSA__VROUND(n) (((size_t)(n) + CSA_VL - 1) / CSA_VL * CSA_VL)

/* Floats from one value row of a packed float32 V block to the next: D_v
 * rounded up to 64-byte lines, plus one if that makes an even number of
 * lines.  The output product walks down a column of the block (one element
 * of every key's row per broadcast); rows an even number of lines apart
 * (512 bytes at D_v = 128) share a few L1 sets and evict each other and the
 * P^T rows read beside them. */
static inline size_t csa__k_ldv(const csa__cpu_call *c) {
  const size_t lines = ((size_t)c->dv + 15) / 16;
  return (lines | 1) * 16;
}

/* How a call computes its two products (chosen once per call, CSA_K_MODE). */
enum {
  CSA__K_F32 = 0, /* K, V widened to float32 rows, float32 FMA */
  CSA__K_PAIRS,   /* bf16 pair dot products (vdpbf16ps) */
  CSA__K_TILES    /* bf16 products on matrix tiles (AMX) */
};
typedef struct csa__k_mode {
  int kind;
  int64_t pairs; /* bf16 kinds: rows of Q^T pairs to pack (d / 2, or whole tiles) */
  /* The softmax writes P^T as bf16 pairs over consecutive keys (CSA_K_P_PAIR)
   * straight from its registers, zero pair rows up to a multiple of p_pad
   * (the products read whole tiles), instead of float32 P^T for a second pass
   * to pack. */
  int p_pairs, p_pad;
  /* How far (log2 units) a block's maximum may pass the running one before
   * the running one moves (0: whenever it rises).  Products whose rescale of
   * O^T is a pass of its own (AMX) skip it on the blocks where no row's
   * maximum moved; P = 2^(x - m) is then at most 2^slack, which float32
   * sums and bf16 pairs hold as exactly as values below 1, and out = O / l,
   * lse = (m + log2 l) ln 2 are the same for any m. */
  float slack;
} csa__k_mode;

/* What the head cache of a thread holds: keys [0, keys) of kv head hk of
 * sequence b, packed (valid 0: nothing; the driver zeroes it per call). */
typedef struct csa__k_cache {
  int64_t valid, b, hk, keys;
} csa__k_cache;
/* it lives in the bytes the driver zeroes */
typedef char csa__k_cache_fits_head[sizeof(csa__k_cache) <= CSA__CPU_SCRATCH_HEAD ? 1 : -1];

/* Per-thread scratch: the head cache's record, the shared block buffers,
 * per row tile (an item has up to c->tiles of them) its Q^T, O^T and
 * softmax state, and the head cache: cache_blocks blocks of kc_size + vc_size
 * floats, block i's K at kv + i * (kc_size + vc_size) and its V after it
 * (cache_blocks 0: the head does not fit CSA__CPU_KV_CACHE_BYTES). */
typedef struct csa__k_scratch {
  csa__k_cache *cache;
  float *s, *kc, *vc;
  float *qt, *ot, *m, *l, *corr; /* tile t at + t * (its size) */
  float *kv;
  size_t qt_size, ot_size, kc_size, vc_size;
  int64_t cache_blocks;
} csa__k_scratch;

/* One row tile of an item: rows [r0, r0 + nr) of the sequence. */
typedef struct csa__k_tile {
  float *qt, *ot, *m, *l, *corr;
  int64_t r0, nr, kv_end; /* keys [0, kv_end) are visible to some row */
  int nrv;                /* row vectors: ceil(nr / CSA_VL) */
} csa__k_tile;

/* Row tile i of an item takes slot i of the scratch's per-tile buffers. */
static inline void csa__k_tile_bind(const csa__k_scratch *sp, csa__k_tile *t, int i) {
  t->qt = sp->qt + i * sp->qt_size;
  t->ot = sp->ot + i * sp->ot_size;
  t->m = sp->m + i * CSA__CPU_ROWS;
  t->l = sp->l + i * CSA__CPU_ROWS;
  t->corr = sp->corr + i * CSA__CPU_ROWS;
}

/* Scores and products in float32. */
#define GT_BODY csa__gemmt_f32_body
#define GT_TILE_SCORES csa__gemmt_f32_tile_scores
#define GT_TILE_OUTPUT csa__gemmt_f32_tile_output
#define GT_RUN csa__gemmt_f32_run
#define GT_A float
#define GT_E 1
#define GT_AV csa_v
#define GT_BCAST(p) csa_v_set1(*(p))
#define GT_BV csa_v
#define GT_BLOAD(p) csa_v_load(p)
#define GT_STEP(acc, x, y) csa_v_fma((x), (y), (acc))
#include "gemmt.inc.h"

/* 2^x for x <= 0 (and the few units above 0 that the AMX slack allows;
 * x = -inf gives 0), for N vectors at once: 2^x = 2^n * 2^f with an integer
 * n, f = x - n, and 2^f by a polynomial 1 + f (c1 + f (c2 + ...)) fitted to
 * 2^f on f's interval for least maximum relative error, its constant term
 * held at exactly 1 so that 2^0 = 1: the rescale corr = 2^(m - m) of a
 * block that does not raise the running max is then exactly 1, and the
 * running sum does not drift over thousands of blocks.  Degree 5 for float32 calls (relative error 7e-8 to
 * 9e-8, 1.8e-7 evaluated in float32: below the degree-6 Taylor series, one
 * FMA fewer), degree 3 for fp16/bf16 ones (0.9e-4 to 1.0e-4: their outputs
 * carry 2^-9 .. 2^-11 rounding anyway).
 *
 * Where the ISA scales by powers of two (AVX-512: CSA_V_HAS_SCALEF),
 * n = floor(x) and f = x - n in [0, 1) come from one instruction and
 * p * 2^n from another, zero below x = -126 (so no result is subnormal).
 *
 * Elsewhere n = round(x), f in [-1/2, 1/2], without a round or a
 * float-to-int conversion: t = x + C with C = 1.5 * 2^23 + 127 lies in
 * [2^23, 2^24), where floats step by 1, so the addition itself rounds (to
 * nearest even) and t = C + n exactly; t - C is n as a float, and t's low
 * mantissa bits hold n + 127, which shl23 moves into an exponent field:
 * (bits(C) + n) << 23 = (n + 127) << 23 = 2^n, because 1.5 * 2^23 has no
 * bit below bit 22 and bit 22 shifts out.  (Needs strict float semantics:
 * the kernels are never built with -ffast-math, which may fold (x + C) - C
 * into x.)  x is clamped at -127 first, where 2^n is the bits of a zero
 * float.
 *
 * The N exponentials go side by side, one step of all of them before the
 * next: each is a chain of dependent operations, and N independent ones in
 * program order leave the out-of-order core no gaps to find. */
#define CSA__EXP2_MAGIC 12583039.0f /* 1.5 * 2^23 + 127 */
#ifdef CSA_V_HAS_SCALEF
/* f in [0, 1) (fitted by linear programming on a grid of 4001 points) */
#define CSA__EXP2_C3 {6.9511663913726807e-1f, 2.2764497995376587e-1f, 7.7067241072654724e-2f}
#define CSA__EXP2_C5                                                                            \
  {6.9315105676651001e-1f, 2.4016660451889038e-1f, 5.5794484913349152e-2f,                    \
   9.0226978063583374e-3f, 1.8650337588042021e-3f}
#else
/* f in [-1/2, 1/2] (fitted by iteratively reweighted least squares) */
#define CSA__EXP2_C3 {6.9328290224075317e-1f, 2.4221028387546539e-1f, 5.5008601397275925e-2f}
#define CSA__EXP2_C5                                                                            \
  {6.9314700365066528e-1f, 2.4022242426872253e-1f, 5.5507335811853409e-2f,                    \
   9.6715064719319344e-3f, 1.3264699373394251e-3f}
#endif
static CSA__ALWAYS_INLINE void csa__k_exp2_n(csa_v *x, const int N, const int half) {
  static const float c3[3] = CSA__EXP2_C3, c5[5] = CSA__EXP2_C5;
  const float *c = half ? c3 : c5;
  const int deg = half ? 3 : 5;
  csa_v f[8], p[8];
#ifdef CSA_V_HAS_SCALEF
  CSA__UNROLL for (int u = 0; u < N; u++) f[u] = csa_v_frac_floor(x[u]);
#else
  csa_v t[8];
  const csa_v magic = csa_v_set1(CSA__EXP2_MAGIC);
  CSA__UNROLL for (int u = 0; u < N; u++) {
    x[u] = csa_v_max(x[u], csa_v_set1(-127.0f));
    t[u] = csa_v_add(x[u], magic);
  }
  CSA__UNROLL for (int u = 0; u < N; u++) f[u] = csa_v_sub(x[u], csa_v_sub(t[u], magic));
#endif
  CSA__UNROLL for (int u = 0; u < N; u++)
    p[u] = csa_v_fma(csa_v_set1(c[deg - 1]), f[u], csa_v_set1(c[deg - 2]));
  for (int k = deg - 3; k >= 0; k--)
    CSA__UNROLL for (int u = 0; u < N; u++) p[u] = csa_v_fma(p[u], f[u], csa_v_set1(c[k]));
  CSA__UNROLL for (int u = 0; u < N; u++) p[u] = csa_v_fma(p[u], f[u], csa_v_set1(1.0f));
#ifdef CSA_V_HAS_SCALEF
  CSA__UNROLL for (int u = 0; u < N; u++) x[u] = csa_v_scale2_floor(p[u], x[u], -126.0f);
#else
  CSA__UNROLL for (int u = 0; u < N; u++) x[u] = csa_v_mul(p[u], csa_v_shl23(t[u]));
#endif
}

static CSA__ALWAYS_INLINE csa_v csa__k_exp2(csa_v x, const int half) {
  csa__k_exp2_n(&x, 1, half);
  return x;
}

/* Widens n contiguous elements of dtype to float32. */
static inline void csa__k_to_f32(float *dst, const void *src, int64_t n, int dtype) {
  int64_t i = 0;
  const uint16_t *h = (const uint16_t *)src;
  if (dtype == CSA_FLOAT32) { /* rows are short: a call to memcpy costs as much */
    const float *f = (const float *)src;
    for (; i + CSA_VL <= n; i += CSA_VL) csa_v_store(dst + i, csa_v_load(f + i));
    for (; i < n; i++) dst[i] = f[i];
  } else if (dtype == CSA_BFLOAT16) {
    for (; i + CSA_VL <= n; i += CSA_VL) csa_v_store(dst + i, csa_v_load_bf16(h + i));
    for (; i < n; i++) dst[i] = csa__bf16_to_f32(h[i]);
  } else {
    for (; i + CSA_VL <= n; i += CSA_VL) csa_v_store(dst + i, csa_v_load_f16(h + i));
    for (; i < n; i++) dst[i] = csa__f16_to_f32(h[i]);
  }
}

/* Narrows n float32 values to dtype (round to nearest even). */
static void csa__k_from_f32(void *dst, const float *src, int64_t n, int dtype) {
  if (dtype == CSA_FLOAT32) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return;
  }
  uint16_t *h = (uint16_t *)dst;
  int64_t i = 0;
  if (dtype == CSA_BFLOAT16) {
    for (; i + CSA_VL <= n; i += CSA_VL) csa_v_store_bf16(h + i, csa_v_load(src + i));
    for (; i < n; i++) h[i] = csa__f32_to_bf16(src[i]);
  } else {
    for (; i + CSA_VL <= n; i += CSA_VL) csa_v_store_f16(h + i, csa_v_load(src + i));
    for (; i < n; i++) h[i] = csa__f32_to_f16(src[i]);
  }
}

/* The scratch of one thread, laid out from base (or only sized: base NULL). */
static size_t csa__k_layout(const csa__cpu_call *c, csa__k_scratch *sp, void *base) {
  const size_t R = CSA__CPU_ROWS, LD = CSA__CPU_LD, NK = CSA__CPU_KEYS, NT = (size_t)c->tiles;
  const size_t dp = CSA__VROUND(c->d), dvp = CSA__VROUND(c->dv);
  const size_t qt = CSA__ROUND16(dp * LD), ot = CSA__ROUND16(dvp * LD);
  /* kc doubles as the row buffer of pack_q and finish ([CSA_VL][dp or dvp]);
   * a cached block needs only its keys */
  const size_t kc = CSA__ROUND16(NK * CSA_MAX(dp, dvp));
  const size_t vc = CSA__ROUND16(NK * CSA_MAX(dvp, csa__k_ldv(c)));
  const size_t kblk = CSA__ROUND16(NK * dp);
  const size_t nblk = (size_t)CSA_CEIL_DIV(c->max_kv, (int64_t)CSA__CPU_KEYS);
  const size_t cache = nblk * (kblk + vc) * sizeof(float) <= CSA__CPU_KV_CACHE_BYTES ? nblk : 0;
  /* s also serves the AMX path as [KEYS][dv rounded to 32] bf16 (pack_vt) */
  size_t sizes[10] = {CSA__CPU_SCRATCH_HEAD / sizeof(float),
                      CSA__ROUND16(NK * CSA_MAX(LD, (dvp + 16) / 2)), kc, vc, NT * qt, NT * ot,
                      NT * R, NT * R, NT * R, cache * (kblk + vc)};
  size_t off = 0;
  for (int i = 0; i < 10; i++) {
    if (base) {
      float *at = (float *)base + off;
      float **slot[10] = {NULL, &sp->s, &sp->kc, &sp->vc, &sp->qt, &sp->ot, &sp->m, &sp->l,
                          &sp->corr, &sp->kv};
      if (slot[i])
        *slot[i] = at;
    }
    off += sizes[i];
  }
  if (base) {
    sp->cache = (csa__k_cache *)base;
    sp->qt_size = qt, sp->ot_size = ot, sp->kc_size = kblk, sp->vc_size = vc;
    sp->cache_blocks = (int64_t)cache;
  }
  return off * sizeof(float);
}

static size_t csa__k_scratch_bytes(const csa__cpu_call *c) { return csa__k_layout(c, NULL, NULL); }

/* ---- The float32 steps: the hooks of every kernel without a bf16 product
 * of its own (kernel.inc.h uses them unless the includer names others). */

static void csa__f32_mode(const csa__cpu_call *c, csa__k_mode *m) {
  (void)c;
  memset(m, 0, sizeof *m);
  m->kind = CSA__K_F32;
}

/* The tile's Q rows transposed into qt; rows up to the vector boundary are
 * zero so that their (unused) scores stay finite.  CSA_VL rows at a time:
 * widen into a [CSA_VL][dp] buffer (tmp), transpose blocks into qt. */
static void csa__f32_pack_q(const csa__cpu_call *c, const csa__k_mode *m, const char *qrow0,
                            const csa__k_tile *t, float *tmp) {
  (void)m;
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t d = c->d, nr = t->nr, rows_p = (int64_t)t->nrv * CSA_VL;
  const int64_t dp = (int64_t)CSA__VROUND(d);
  for (int64_t r0 = 0; r0 < rows_p; r0 += CSA_VL) {
    for (int64_t i = 0; i < CSA_VL; i++) {
      float *row = tmp + i * dp;
      int64_t done = 0;
      if (r0 + i < nr) {
        csa__k_to_f32(row, qrow0 + (size_t)((r0 + i) * c->q_st) * esz, d, c->dtype);
        done = d;
      }
      memset(row + done, 0, (size_t)(dp - done) * sizeof(float));
    }
    for (int64_t j = 0; j < dp; j += CSA_VL)
      csa_v_transpose(tmp + j, dp, t->qt + j * CSA__CPU_LD + r0, CSA__CPU_LD);
  }
}

/* The key / value block as float32 rows, keys D apart and values
 * csa__k_ldv apart (also for float32 inputs: rows of a packed [T, H, D]
 * tensor lie H*D apart, often a multiple of 4 KiB, and 64 of them would
 * fight over the same L1 sets). */
static void csa__f32_pack_kv(const csa__cpu_call *c, const csa__k_mode *m, const char *kb,
                             const char *vb, int64_t cn, const csa__k_scratch *sp) {
  (void)m;
  const size_t esz = csa_dtype_size(c->dtype), ldv = csa__k_ldv(c);
  for (int64_t j = 0; j < cn; j++) {
    csa__k_to_f32(sp->kc + j * c->d, kb + (size_t)(j * c->k_st) * esz, c->d, c->dtype);
    csa__k_to_f32(sp->vc + (size_t)j * ldv, vb + (size_t)(j * c->v_st) * esz, c->dv, c->dtype);
  }
}

/* S^T = K Q^T for the tile's first tn keys of the block. */
static void csa__f32_scores(const csa__cpu_call *c, const csa__k_mode *m, const char *kb,
                            const csa__k_scratch *sp, const csa__k_tile *t, int64_t tn) {
  (void)m, (void)kb;
  csa__gemmt_f32_run(0, tn, c->d, sp->kc, c->d, 0, t->qt, sp->s, NULL, t->nrv);
}

/* O^T = O^T * corr + V^T P^T (corr NULL: O^T = V^T P^T). */
static void csa__f32_output(const csa__cpu_call *c, const csa__k_mode *m,
                            const csa__k_scratch *sp, const csa__k_tile *t, int64_t tn,
                            const float *corr) {
  (void)m;
  csa__gemmt_f32_run(1, c->dv, tn, sp->vc, 0, (ptrdiff_t)csa__k_ldv(c), sp->s, t->ot, corr, t->nrv);
}

/* Kernels without tile state to set up. */
static inline void csa__k_no_setup(const csa__k_mode *m) { (void)m; }
