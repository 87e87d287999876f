/*
 * kernel.inc.h — the attention kernel of one item (up to CSA__CPU_ROWS query
 * rows of one sequence and head), written once against the SIMD vocabulary.
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
 * corr = 2^(m - m').  Only the item's transposed tiles live in scratch:
 *
 *   qt [D][ROWS]    Q^T (or, for bf16 dot products, [D/2][ROWS] bf16 pairs)
 *   s  [KEYS][ROWS] S^T, then P^T in place
 *   ot [Dv][ROWS]   O^T accumulator
 *   m, l, corr      [ROWS] running max, running sum, this block's rescale
 *   kc, vc          the key / value block widened to float32 (fp16/bf16
 *                   inputs), or the value block as bf16 pairs
 *
 * so memory stays O(ROWS * (D + Dv + KEYS)) per thread, whatever the lengths.
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
#undef GT_NAME
#undef GT_A
#undef GT_E
#undef GT_AV
#undef GT_BCAST
#undef GT_BV
#undef GT_BLOAD
#undef GT_STEP

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
#undef GT_NAME
#undef GT_A
#undef GT_E
#undef GT_AV
#undef GT_BCAST
#undef GT_BV
#undef GT_BLOAD
#undef GT_STEP
#endif

/* 2^x for x <= 0 (x = -inf gives 0): 2^x = 2^n * 2^f with n = round(x),
 * f in [-1/2, 1/2], 2^f by its Taylor series e^(f ln2) to degree 6
 * (relative error < 2e-7). */
static inline csa_v K_(exp2)(csa_v x) {
  x = csa_v_max(x, csa_v_set1(-127.0f));
  csa_v n = csa_v_round(x);
  csa_v f = csa_v_sub(x, n);
  csa_v p = csa_v_set1(1.5403530393381606e-4f);
  p = csa_v_fma(p, f, csa_v_set1(1.3333558146428443e-3f));
  p = csa_v_fma(p, f, csa_v_set1(9.6181291076284772e-3f));
  p = csa_v_fma(p, f, csa_v_set1(5.5504108664821580e-2f));
  p = csa_v_fma(p, f, csa_v_set1(2.4022650695910071e-1f));
  p = csa_v_fma(p, f, csa_v_set1(6.9314718055994531e-1f));
  p = csa_v_fma(p, f, csa_v_set1(1.0f));
  return csa_v_mul(p, csa_v_pow2i(n));
}

/* Widens n contiguous elements of dtype to float32. */
static void K_(to_f32)(float *dst, const void *src, int64_t n, int dtype) {
  int64_t i = 0;
  if (dtype == CSA_FLOAT32) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return;
  }
  const uint16_t *h = (const uint16_t *)src;
  if (dtype == CSA_BFLOAT16) {
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
  if (dtype == CSA_BFLOAT16)
    for (int64_t i = 0; i < n; i++) h[i] = csa__f32_to_bf16(src[i]);
  else
    for (int64_t i = 0; i < n; i++) h[i] = csa__f32_to_f16(src[i]);
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

typedef struct K_(scratch) {
  float *qt, *s, *ot, *m, *l, *corr, *kc, *vc;
} K_(scratch);

static size_t K_(layout)(const csa__cpu_call *c, K_(scratch) *sp, void *base) {
  K_(scratch) unused;
  if (sp == NULL)
    sp = &unused;
  const size_t R = CSA__CPU_ROWS, NK = CSA__CPU_KEYS;
  size_t sizes[8] = {
      CSA__ROUND16((size_t)c->d * R), CSA__ROUND16(NK * R), CSA__ROUND16((size_t)c->dv * R),
      R, R, R,
      CSA__ROUND16(NK * (size_t)CSA_MAX(c->d, c->dv)), CSA__ROUND16(NK * (size_t)c->dv)};
  float **slots[8] = {&sp->qt, &sp->s, &sp->ot, &sp->m, &sp->l, &sp->corr, &sp->kc, &sp->vc};
  size_t off = 0;
  for (int i = 0; i < 8; i++) {
    if (base)
      *slots[i] = (float *)base + off;
    off += sizes[i];
  }
  return off * sizeof(float);
}

static size_t K_(scratch_bytes)(const csa__cpu_call *c) { return K_(layout)(c, NULL, NULL); }

/* Q rows [r0, r0 + nr) of the item, transposed into qt; rows up to the
 * vector boundary are zero so their (unused) scores stay finite. */
static void K_(pack_q)(const csa__cpu_call *c, const char *qrow0, int64_t nr, int rows_p,
                       const K_(scratch) *sp) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t d = c->d;
  if (K_(use_bf16dot)(c)) {
    uint32_t *qp = (uint32_t *)sp->qt;
    for (int64_t r = 0; r < rows_p; r++) {
      const char *row = qrow0 + (size_t)(r * c->q_st) * esz;
      for (int64_t p = 0; p < d / 2; p++) {
        uint32_t w = 0;
        if (r < nr)
          memcpy(&w, row + (size_t)p * 4, 4);
        qp[p * CSA__CPU_ROWS + r] = w;
      }
    }
    return;
  }
  for (int64_t r = 0; r < rows_p; r++) {
    float *tmp = sp->kc;
    if (r < nr)
      K_(to_f32)(tmp, qrow0 + (size_t)(r * c->q_st) * esz, d, c->dtype);
    else
      memset(tmp, 0, (size_t)d * sizeof(float));
    for (int64_t j = 0; j < d; j++) sp->qt[j * CSA__CPU_ROWS + r] = tmp[j];
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
static void K_(softmax_block)(const csa__cpu_call *c, const K_(scratch) *sp, int64_t cn, int nrv) {
  const csa_v k = csa_v_set1(c->scale_log2);
  for (int rv = 0; rv < nrv; rv++) {
    float *s = sp->s + rv * CSA_VL;
    csa_v mx = csa_v_set1(-INFINITY);
    for (int64_t j = 0; j < cn; j++) mx = csa_v_max(mx, csa_v_load(s + j * CSA__CPU_ROWS));
    csa_v m_old = csa_v_load(sp->m + rv * CSA_VL);
    csa_v m_new = csa_v_max(m_old, csa_v_mul(mx, k));
    csa_v corr = K_(exp2)(csa_v_sub(m_old, m_new));
    csa_v neg_m = csa_v_sub(csa_v_zero(), m_new);
    csa_v sum = csa_v_zero();
    for (int64_t j = 0; j < cn; j++) {
      csa_v p = K_(exp2)(csa_v_fma(csa_v_load(s + j * CSA__CPU_ROWS), k, neg_m));
      csa_v_store(s + j * CSA__CPU_ROWS, p);
      sum = csa_v_add(sum, p);
    }
    csa_v_store(sp->m + rv * CSA_VL, m_new);
    csa_v_store(sp->corr + rv * CSA_VL, corr);
    csa_v_store(sp->l + rv * CSA_VL, csa_v_fma(csa_v_load(sp->l + rv * CSA_VL), corr, sum));
  }
}

/* out = O^T / l (zeros where l = 0: no visible key), lse = (m + log2 l) ln 2. */
static void K_(finish)(const csa__cpu_call *c, const K_(scratch) *sp, int64_t h, int64_t t0,
                       int64_t nr) {
  const size_t esz = csa_dtype_size(c->dtype);
  float *inv = sp->corr, *row = sp->kc;
  for (int64_t r = 0; r < nr; r++) inv[r] = sp->l[r] > 0.0f ? 1.0f / sp->l[r] : 0.0f;
  if (c->lse)
    for (int64_t r = 0; r < nr; r++)
      c->lse[h * c->lse_sh + (t0 + r) * c->lse_st] =
          sp->l[r] > 0.0f ? (sp->m[r] + log2f(sp->l[r])) * 0.69314718055994531f : -INFINITY;
  for (int64_t r = 0; r < nr; r++) {
    for (int64_t j = 0; j < c->dv; j++) row[j] = sp->ot[j * CSA__CPU_ROWS + r] * inv[r];
    K_(from_f32)(c->out + (size_t)((t0 + r) * c->o_st + h * c->o_sh) * esz, row, c->dv, c->dtype);
  }
}

static void K_(item)(const csa__cpu_call *c, const csa__cpu_item *it, void *scratch) {
  K_(scratch) sp;
  K_(layout)(c, &sp, scratch);
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t h = it->h, r0 = it->r0, nr = it->nr, hk = h / c->group;
  const int64_t q0 = c->cu_q[it->b], lq = c->cu_q[it->b + 1] - q0;
  const int64_t k0 = c->cu_kv[it->b], lkv = c->cu_kv[it->b + 1] - k0;
  const int64_t off = lkv - lq; /* causal: row i sees keys j <= i + off */
  const int nrv = (int)CSA_CEIL_DIV(nr, CSA_VL);
  const int rows_p = nrv * CSA_VL;
  const int bf16dot = K_(use_bf16dot)(c);
  int64_t kv_end = lkv;
  if (c->causal)
    kv_end = CSA_MIN(lkv, r0 + nr + off);

  for (int i = 0; i < rows_p; i++) {
    sp.m[i] = CSA__M_INIT;
    sp.l[i] = 0.0f;
  }
  if (kv_end > 0) {
    K_(pack_q)(c, c->q + (size_t)((q0 + r0) * c->q_st + h * c->q_sh) * esz, nr, rows_p, &sp);
    for (int64_t j = 0; j < c->dv; j++)
      memset(sp.ot + j * CSA__CPU_ROWS, 0, (size_t)rows_p * sizeof(float));
  }

  for (int64_t j0 = 0; j0 < kv_end; j0 += CSA__CPU_KEYS) {
    const int64_t cn = CSA_MIN((int64_t)CSA__CPU_KEYS, kv_end - j0);
    const char *kb = c->k + (size_t)((k0 + j0) * c->k_st + hk * c->k_sh) * esz;
    const char *vb = c->v + (size_t)((k0 + j0) * c->v_st + hk * c->v_sh) * esz;

    /* S^T = K Q^T */
    if (bf16dot) {
#ifdef CSA_BF16DOT
      K_(bf16_run)(0, cn, c->d / 2, (const uint16_t *)kb, c->k_st, 0, sp.qt, sp.s, NULL, nrv);
#endif
    } else if (c->dtype == CSA_FLOAT32) {
      K_(f32_run)(0, cn, c->d, (const float *)kb, c->k_st, 0, sp.qt, sp.s, NULL, nrv);
    } else {
      for (int64_t j = 0; j < cn; j++)
        K_(to_f32)(sp.kc + j * c->d, kb + (size_t)(j * c->k_st) * esz, c->d, c->dtype);
      K_(f32_run)(0, cn, c->d, sp.kc, c->d, 0, sp.qt, sp.s, NULL, nrv);
    }

    if (c->causal && j0 + cn - 1 > r0 + off)
      K_(mask_causal)(sp.s, cn, j0, r0 + off, nrv);
    K_(softmax_block)(c, &sp, cn, nrv);

    /* O^T = O^T * corr + V^T P^T */
    if (bf16dot) {
#ifdef CSA_BF16DOT
      csa__pack_p_pairs(sp.s, cn, nrv);
      csa__pack_v_pairs((uint32_t *)sp.vc, (const uint16_t *)vb, c->v_st, cn, c->dv);
      K_(bf16_run)(1, c->dv, (cn + 1) / 2, (const uint16_t *)sp.vc, 0, 2 * c->dv, sp.s, sp.ot,
                   sp.corr, nrv);
#endif
    } else if (c->dtype == CSA_FLOAT32) {
      K_(f32_run)(1, c->dv, cn, (const float *)vb, 0, c->v_st, sp.s, sp.ot, sp.corr, nrv);
    } else {
      for (int64_t j = 0; j < cn; j++)
        K_(to_f32)(sp.vc + j * c->dv, vb + (size_t)(j * c->v_st) * esz, c->dv, c->dtype);
      K_(f32_run)(1, c->dv, cn, sp.vc, 0, c->dv, sp.s, sp.ot, sp.corr, nrv);
    }
  }

  K_(finish)(c, &sp, h, q0 + r0, nr);
}

const csa__cpu_kernel CSA_KNAME(csa__cpu_kernel) = {CSA_KISA, K_(scratch_bytes), K_(item)};
