/*
 * kernel.inc.h — the attention kernel of one item (up to CSA__CPU_TILES row
 * tiles of CSA__CPU_ROWS query rows, one sequence and head), written once
 * against the SIMD vocabulary.
 * Each kernel_<isa>.c defines CSA_KNAME / CSA_KISA, includes its simd_*.h and
 * then this file.
 *
 * Math (per query row i, keys j of its sequence, scale s, all in float32):
 *
 *   x_j  = s * log2(e) * q_i . k_j           scores in base 2
 *   m    = max_j x_j,  l = sum_j 2^(x_j - m)
 *   out  = sum_j 2^(x_j - m) v_j / l,  lse = (m + log2 l) * ln 2
 *
 * computed online over blocks of CSA__CPU_KEYS keys (FlashAttention's
 * recurrence): a block with maximum m' > m rescales the running l and O by
 * corr = 2^(m - m').  Only the item's transposed tiles live in scratch (per
 * row tile of CSA__CPU_ROWS rows; an item has up to CSA__CPU_TILES):
 *
 *   qt [D][ROWS]    Q^T (or, for bf16 dot products, [D/2][ROWS] bf16 pairs)
 *   s  [KEYS][ROWS] S^T, then P^T in place
 *   ot [Dv][ROWS]   O^T accumulator
 *   m, l, corr      [ROWS] running max, running sum, this block's rescale
 *   kc, vc          the key / value block as contiguous float32 rows (also
 *                   for float32 inputs: rows of a packed [T, H, D] tensor lie
 *                   H*D apart, often a multiple of 4 KiB, and 64 of them
 *                   would fight over the same L1 sets), or the value block as
 *                   bf16 pairs
 *
 * so memory stays O(TILES * ROWS * (D + Dv) + KEYS * (ROWS + D + Dv)) per
 * thread, whatever the lengths.
 */

#include <math.h>
#include <string.h>

#define K_(x) CSA_KNAME(csa__k_##x)
#define CSA__ROUND16(n) (((n) + 15) & ~(size_t)15)

/* A running max no score reaches, finite so that m_old - m_new never reads
 * (-inf) - (-inf). */
#define CSA__M_INIT (-1.0e30f)

/* Scores and products in float32. */
#define GT_NAME(x) K_(f32_##x)
#define GT_A float
#define GT_E 1
#define GT_AV csa_v
#define GT_BCAST(p) csa_v_set1(*(p))
#define GT_BV csa_v
#define GT_BLOAD(p) csa_v_load(p)
#define GT_STEP(acc, x, y) csa_v_fma((x), (y), (acc))
#include "gemmt.inc.h"

#ifdef CSA_BF16DOT
/* Products over bf16 pairs: A items and B lanes hold two bf16 values each
 * (consecutive d of a key and of a query row for the scores; consecutive keys
 * of a value column and of a P^T column for the output).  The includer
 * defines the CSA_BF16DOT_* operations and csa__pack_p_pairs /
 * csa__pack_v_pairs. */
#define GT_NAME(x) K_(bf16_##x)
#define GT_A uint16_t
#define GT_E 2
#define GT_AV CSA_BF16DOT_AV
#define GT_BCAST(p) CSA_BF16DOT_BCAST(p)
#define GT_BV CSA_BF16DOT_BV
#define GT_BLOAD(p) CSA_BF16DOT_BLOAD(p)
#define GT_STEP(acc, x, y) CSA_BF16DOT_STEP(acc, x, y)
#include "gemmt.inc.h"
#endif

/* 2^x for x <= 0 (x = -inf gives 0): 2^x = 2^n * 2^f with n = round(x),
 * f in [-1/2, 1/2], 2^f by its Taylor series e^(f ln2): to degree 6
 * (relative error < 2e-7) for float32 calls, to degree 4 (< 5e-5) for
 * fp16/bf16 ones, whose outputs carry 2^-8 .. 2^-11 rounding anyway. */
static CSA__ALWAYS_INLINE csa_v K_(exp2)(csa_v x, const int half) {
  x = csa_v_max(x, csa_v_set1(-127.0f));
  csa_v n = csa_v_round(x);
  csa_v f = csa_v_sub(x, n);
  csa_v p;
  if (half) {
    p = csa_v_set1(9.6181291076284772e-3f);
  } else {
    p = csa_v_set1(1.5403530393381606e-4f);
    p = csa_v_fma(p, f, csa_v_set1(1.3333558146428443e-3f));
    p = csa_v_fma(p, f, csa_v_set1(9.6181291076284772e-3f));
  }
  p = csa_v_fma(p, f, csa_v_set1(5.5504108664821580e-2f));
  p = csa_v_fma(p, f, csa_v_set1(2.4022650695910071e-1f));
  p = csa_v_fma(p, f, csa_v_set1(6.9314718055994531e-1f));
  p = csa_v_fma(p, f, csa_v_set1(1.0f));
  return csa_v_mul(p, csa_v_pow2i(n));
}

/* Widens n contiguous elements of dtype to float32. */
static inline void K_(to_f32)(float *dst, const void *src, int64_t n, int dtype) {
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
static void K_(from_f32)(void *dst, const float *src, int64_t n, int dtype) {
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

/* bf16 inputs take the pair dot-product path when this ISA has one and D is
 * even (a pair never straddles the end of a key row). */
static int K_(use_bf16dot)(const csa__cpu_call *c) {
#ifdef CSA_BF16DOT
  return c->dtype == CSA_BFLOAT16 && c->d % 2 == 0;
#else
  (void)c;
  return 0;
#endif
}

/* The bf16 products on AMX tiles (see kernel_avx512bf16.c). */
static int K_(use_amx)(const csa__cpu_call *c) {
#ifdef CSA_BF16AMX
  return K_(use_bf16dot)(c) && csa__cpu_amx_ready();
#else
  (void)c;
  return 0;
#endif
}

/* Per-thread scratch: the shared block buffers, and per row tile (an item
 * has up to CSA__CPU_TILES of them) its Q^T, O^T and softmax state. */
typedef struct K_(scratch) {
  float *s, *kc, *vc;
  float *qt, *ot, *m, *l, *corr; /* tile t at + t * (its size) */
  size_t qt_size, ot_size;
} K_(scratch);

/* One row tile of an item: rows [r0, r0 + nr) of the sequence. */
typedef struct K_(tile) {
  float *qt, *ot, *m, *l, *corr;
  int64_t r0, nr, kv_end; /* keys [0, kv_end) are visible to some row */
  int nrv;                /* row vectors: ceil(nr / CSA_VL) */
} K_(tile);

/* Rows of qt / ot and the width of the row buffer are rounded up to whole
 * vectors so that the transposes move whole CSA_VL x CSA_VL blocks. */
#define CSA__VROUND(n) (((size_t)(n) + CSA_VL - 1) / CSA_VL * CSA_VL)

static size_t K_(layout)(const csa__cpu_call *c, K_(scratch) *sp, void *base) {
  const size_t R = CSA__CPU_ROWS, NK = CSA__CPU_KEYS, NT = CSA__CPU_TILES;
  const size_t dp = CSA__VROUND(c->d), dvp = CSA__VROUND(c->dv);
  const size_t qt = CSA__ROUND16(dp * R), ot = CSA__ROUND16(dvp * R);
  /* s also serves the AMX path as [KEYS][dv rounded to 32] bf16 (pack_vt) */
  size_t sizes[8] = {CSA__ROUND16(NK * CSA_MAX(R, (dvp + 16) / 2)), CSA__ROUND16(NK * CSA_MAX(dp, dvp)),
                     CSA__ROUND16(NK * dvp), NT * qt, NT * ot, NT * R, NT * R, NT * R};
  size_t off = 0;
  for (int i = 0; i < 8; i++) {
    if (base) {
      float *at = (float *)base + off;
      float **slot[8] = {&sp->s, &sp->kc, &sp->vc, &sp->qt, &sp->ot, &sp->m, &sp->l, &sp->corr};
      *slot[i] = at;
    }
    off += sizes[i];
  }
  if (base)
    sp->qt_size = qt, sp->ot_size = ot;
  return off * sizeof(float);
}

static size_t K_(scratch_bytes)(const csa__cpu_call *c) { return K_(layout)(c, NULL, NULL); }

/* The tile's Q rows transposed into qt; rows up to the vector boundary are
 * zero so that their (unused) scores stay finite. */
static void K_(pack_q)(const csa__cpu_call *c, const char *qrow0, const K_(tile) *t,
                       float *tmp, int64_t pairs_rows) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t d = c->d, nr = t->nr, rows_p = (int64_t)t->nrv * CSA_VL;
  if (K_(use_bf16dot)(c)) {
    /* pairs; AMX reads whole tiles of 16 pairs, zero past d */
    const int64_t np = pairs_rows;
    uint32_t *qp = (uint32_t *)t->qt;
    for (int64_t r = 0; r < rows_p; r++) {
      const char *row = qrow0 + (size_t)(r * c->q_st) * esz;
      for (int64_t p = 0; p < np; p++) {
        uint32_t w = 0;
        if (r < nr && p < d / 2)
          memcpy(&w, row + (size_t)p * 4, 4);
        qp[p * CSA__CPU_ROWS + r] = w;
      }
    }
    return;
  }
  /* CSA_VL rows at a time: widen into a [CSA_VL][dp] buffer, transpose
   * blocks into qt */
  const int64_t dp = (int64_t)CSA__VROUND(d);
  for (int64_t r0 = 0; r0 < rows_p; r0 += CSA_VL) {
    for (int64_t i = 0; i < CSA_VL; i++) {
      float *row = tmp + i * dp;
      int64_t done = 0;
      if (r0 + i < nr) {
        K_(to_f32)(row, qrow0 + (size_t)((r0 + i) * c->q_st) * esz, d, c->dtype);
        done = d;
      }
      memset(row + done, 0, (size_t)(dp - done) * sizeof(float));
    }
    for (int64_t j = 0; j < dp; j += CSA_VL)
      csa_v_transpose(tmp + j, dp, t->qt + j * CSA__CPU_ROWS + r0, CSA__CPU_ROWS);
  }
}

/* Causal mask of a block that crosses the diagonal: key j (absolute index
 * kj in its sequence) is visible to tile row r iff kj <= r0 + r + off, so
 * rows r < kj - off - r0 get -inf. */
static void K_(mask_causal)(float *s, int64_t cn, int64_t kj0, int64_t first_visible_row,
                            int nrv) {
  const csa_v ninf = csa_v_set1(-INFINITY);
  for (int64_t j = 0; j < cn; j++) {
    const int64_t t = kj0 + j - first_visible_row; /* rows < t are masked */
    if (t <= 0)
      continue;
    for (int rv = 0; rv < nrv && rv * CSA_VL < t; rv++) {
      float *p = s + j * CSA__CPU_ROWS + rv * CSA_VL;
      csa_v row = csa_v_add(csa_v_iota(), csa_v_set1((float)(rv * CSA_VL)));
      csa_v_store(p, csa_v_lt_select(row, csa_v_set1((float)t), ninf, csa_v_load(p)));
    }
  }
}

/* Online-softmax step over one block of cn scores per row: new max, corr,
 * P^T in place of S^T, running sums. */
static CSA__ALWAYS_INLINE void K_(softmax_body)(const csa__cpu_call *c, float *s0,
                                                const K_(tile) *t, int64_t cn, const int half) {
  const csa_v k = csa_v_set1(c->scale_log2);
  for (int rv = 0; rv < t->nrv; rv++) {
    float *s = s0 + rv * CSA_VL;
    csa_v mx = csa_v_set1(-INFINITY);
    for (int64_t j = 0; j < cn; j++) mx = csa_v_max(mx, csa_v_load(s + j * CSA__CPU_ROWS));
    csa_v m_old = csa_v_load(t->m + rv * CSA_VL);
    csa_v m_new = csa_v_max(m_old, csa_v_mul(mx, k));
    csa_v corr = K_(exp2)(csa_v_sub(m_old, m_new), half);
    csa_v neg_m = csa_v_sub(csa_v_zero(), m_new);
    csa_v sum = csa_v_zero();
    for (int64_t j = 0; j < cn; j++) {
      csa_v x = csa_v_fma(csa_v_load(s + j * CSA__CPU_ROWS), k, neg_m);
      csa_v p = K_(exp2)(x, half);
      csa_v_store(s + j * CSA__CPU_ROWS, p);
      sum = csa_v_add(sum, p);
    }
    csa_v_store(t->m + rv * CSA_VL, m_new);
    csa_v_store(t->corr + rv * CSA_VL, corr);
    csa_v_store(t->l + rv * CSA_VL, csa_v_fma(csa_v_load(t->l + rv * CSA_VL), corr, sum));
  }
}

static void K_(softmax_block)(const csa__cpu_call *c, float *s0, const K_(tile) *t, int64_t cn) {
  if (c->dtype == CSA_FLOAT32)
    K_(softmax_body)(c, s0, t, cn, 0);
  else
    K_(softmax_body)(c, s0, t, cn, 1);
}

/* out = O^T / l (zeros where l = 0: no visible key), lse = (m + log2 l) ln 2. */
static void K_(finish)(const csa__cpu_call *c, const K_(tile) *t, float *row, int64_t h,
                       int64_t t0) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t nr = t->nr;
  float *inv = t->corr;
  for (int64_t r = 0; r < nr; r++) inv[r] = t->l[r] > 0.0f ? 1.0f / t->l[r] : 0.0f;
  if (c->lse)
    for (int64_t r = 0; r < nr; r++)
      c->lse[h * c->lse_sh + (t0 + r) * c->lse_st] =
          t->l[r] > 0.0f ? (t->m[r] + log2f(t->l[r])) * 0.69314718055994531f : -INFINITY;
  /* CSA_VL rows at a time: transpose blocks of O^T into a [CSA_VL][dvp]
   * buffer, scale each row by 1/l, narrow into out */
  const int64_t dvp = (int64_t)CSA__VROUND(c->dv);
  for (int64_t r0 = 0; r0 < nr; r0 += CSA_VL) {
    for (int64_t j = 0; j < dvp; j += CSA_VL)
      csa_v_transpose(t->ot + j * CSA__CPU_ROWS + r0, CSA__CPU_ROWS, row + j, dvp);
    for (int64_t i = 0; i < CSA_VL && r0 + i < nr; i++) {
      float *o = row + i * dvp;
      const csa_v s = csa_v_set1(inv[r0 + i]);
      for (int64_t j = 0; j < dvp; j += CSA_VL) csa_v_store(o + j, csa_v_mul(csa_v_load(o + j), s));
      K_(from_f32)(c->out + (size_t)((t0 + r0 + i) * c->o_st + h * c->o_sh) * esz, o, c->dv,
                   c->dtype);
    }
  }
}

/* One item: its row tiles walk the key blocks together, so each block of K
 * and V is widened (or paired) once and read from L1/L2 by every tile. */
static void K_(item)(const csa__cpu_call *c, const csa__cpu_item *it, void *scratch) {
  K_(scratch) sp;
  K_(layout)(c, &sp, scratch);
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t h = it->h, hk = h / c->group;
  const int64_t q0 = c->cu_q[it->b], lq = c->cu_q[it->b + 1] - q0;
  const int64_t k0 = c->cu_kv[it->b], lkv = c->cu_kv[it->b + 1] - k0;
  const int64_t off = lkv - lq; /* causal: row i sees keys j <= i + off */
  const int bf16dot = K_(use_bf16dot)(c);
  const int amx = K_(use_amx)(c);
  const int64_t dp32 = (c->d + 31) / 32 * 32, dvp = (int64_t)CSA__VROUND(c->dv);
  const int64_t pairs_rows = amx ? dp32 / 2 : c->d / 2;
  (void)dvp; /* AMX only */
  const int ntile = (int)CSA_CEIL_DIV(it->nr, (int64_t)CSA__CPU_ROWS);
  K_(tile) tiles[CSA__CPU_TILES];
  int64_t kv_end = 0;
#ifdef CSA_BF16AMX
  if (amx)
    csa__amx_begin();
#endif

  for (int i = 0; i < ntile; i++) {
    K_(tile) *t = &tiles[i];
    t->qt = sp.qt + i * sp.qt_size;
    t->ot = sp.ot + i * sp.ot_size;
    t->m = sp.m + i * CSA__CPU_ROWS;
    t->l = sp.l + i * CSA__CPU_ROWS;
    t->corr = sp.corr + i * CSA__CPU_ROWS;
    t->r0 = it->r0 + (int64_t)i * CSA__CPU_ROWS;
    t->nr = CSA_MIN((int64_t)CSA__CPU_ROWS, it->r0 + it->nr - t->r0);
    t->nrv = (int)CSA_CEIL_DIV(t->nr, (int64_t)CSA_VL);
    t->kv_end = c->causal ? CSA_MIN(lkv, t->r0 + t->nr + off) : lkv;
    kv_end = CSA_MAX(kv_end, t->kv_end);
    for (int r = 0; r < t->nrv * CSA_VL; r++) {
      t->m[r] = CSA__M_INIT;
      t->l[r] = 0.0f;
    }
    if (t->kv_end > 0) /* else no block runs: O^T must read as zeros */
      K_(pack_q)(c, c->q + (size_t)((q0 + t->r0) * c->q_st + h * c->q_sh) * esz, t, sp.kc,
                 pairs_rows);
    else
      memset(t->ot, 0, sp.ot_size * sizeof(float));
  }

  for (int64_t j0 = 0; j0 < kv_end; j0 += CSA__CPU_KEYS) {
    const int64_t cn = CSA_MIN((int64_t)CSA__CPU_KEYS, kv_end - j0);
    const char *kb = c->k + (size_t)((k0 + j0) * c->k_st + hk * c->k_sh) * esz;
    const char *vb = c->v + (size_t)((k0 + j0) * c->v_st + hk * c->v_sh) * esz;

    /* The block as contiguous float32 rows (or V as bf16 pairs; K's pairs
     * are read in place). */
    if (amx) {
#ifdef CSA_BF16AMX
      csa__amx_pack_k((uint16_t *)sp.kc, (const uint16_t *)kb, c->k_st, cn, c->d, dp32);
      csa__amx_pack_vt((uint16_t *)sp.vc, (uint16_t *)sp.s, (const uint16_t *)vb, c->v_st, cn,
                       c->dv, dvp);
#endif
    } else if (bf16dot) {
#ifdef CSA_BF16DOT
      csa__pack_v_pairs((uint32_t *)sp.vc, (const uint16_t *)vb, c->v_st, cn, c->dv);
#endif
    } else {
      for (int64_t j = 0; j < cn; j++) {
        K_(to_f32)(sp.kc + j * c->d, kb + (size_t)(j * c->k_st) * esz, c->d, c->dtype);
        K_(to_f32)(sp.vc + j * c->dv, vb + (size_t)(j * c->v_st) * esz, c->dv, c->dtype);
      }
    }

    for (int i = 0; i < ntile; i++) {
      const K_(tile) *t = &tiles[i];
      if (j0 >= t->kv_end)
        continue;
      const int64_t tn = CSA_MIN(cn, t->kv_end - j0);
      /* S^T = K Q^T */
      if (amx) {
#ifdef CSA_BF16AMX
        csa__amx_scores((const uint16_t *)sp.kc, dp32, t->qt, sp.s, (tn + 15) / 16 * 16, t->nrv);
#endif
      } else if (bf16dot) {
#ifdef CSA_BF16DOT
        K_(bf16_run)(0, tn, c->d / 2, (const uint16_t *)kb, c->k_st, 0, t->qt, sp.s, NULL, t->nrv);
#endif
      } else {
        K_(f32_run)(0, tn, c->d, sp.kc, c->d, 0, t->qt, sp.s, NULL, t->nrv);
      }
      if (c->causal && j0 + tn - 1 > t->r0 + off)
        K_(mask_causal)(sp.s, tn, j0, t->r0 + off, t->nrv);
      K_(softmax_block)(c, sp.s, t, tn);

      /* O^T = O^T * corr + V^T P^T; the first block writes O^T (rows it
       * masks entirely have P = 0, so they start at 0 too) */
      const float *corr = j0 == 0 ? NULL : t->corr;
      if (amx) {
#ifdef CSA_BF16AMX
        const int64_t n32 = (tn + 31) / 32 * 32;
        csa__pack_p_pairs(sp.s, tn, t->nrv);
        for (int64_t i = (tn + 1) / 2; i < n32 / 2; i++) /* pairs past the keys: 0 */
          memset(sp.s + i * CSA__CPU_ROWS, 0, CSA__CPU_ROWS * sizeof(float));
        if (corr)
          for (int64_t x = 0; x < dvp; x++)
            for (int rv = 0; rv < t->nrv; rv++) {
              float *o = t->ot + x * CSA__CPU_ROWS + rv * CSA_VL;
              csa_v_store(o, csa_v_mul(csa_v_load(o), csa_v_load(corr + rv * CSA_VL)));
            }
        csa__amx_out((const uint16_t *)sp.vc, sp.s, t->ot, dvp, n32, t->nrv, corr == NULL);
#endif
      } else if (bf16dot) {
#ifdef CSA_BF16DOT
        csa__pack_p_pairs(sp.s, tn, t->nrv);
        K_(bf16_run)(1, c->dv, (tn + 1) / 2, (const uint16_t *)sp.vc, 0, 2 * c->dv, sp.s, t->ot,
                     corr, t->nrv);
#endif
      } else {
        K_(f32_run)(1, c->dv, tn, sp.vc, 0, c->dv, sp.s, t->ot, corr, t->nrv);
      }
    }
  }

#ifdef CSA_BF16AMX
  if (amx)
    _tile_release();
#endif
  for (int i = 0; i < ntile; i++) K_(finish)(c, &tiles[i], sp.kc, h, q0 + tiles[i].r0);
}

const csa__cpu_kernel CSA_KNAME(csa__cpu_kernel) = {CSA_KISA, K_(scratch_bytes), K_(item)};
