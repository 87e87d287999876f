/*
 * attn_plan.c — the one place that decides how an attention call runs on
 * the GPU: tile kind, heads per CTA, pipeline depth, kernel name, grid and
 * shared memory (the kernels themselves take every choice from the args).
 *
 * Adding a kernel family (e.g. an sm_90a module) is one branch at the top
 * of csa__attn_plan_make that fills the plan from its own table when the
 * device and shape fit, falling through to the mma.sync plan otherwise.
 */
#include "cuda/attn_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "cuda/attn_kernels.h"
#include "cuda/attn_sm90_plan.h"

/* Measured on H200 (bench/RESULTS.md, "Tile variants and what bounds each
 * workload"): below this average query length per sequence the small tiles
 * win (packed short rows, several heads per CTA) over the long-row kernels;
 * with the wide tiles of large-shared-memory GPUs up to 384 rows at D <= 64
 * (256-row sequences still ran faster there, 512-row ones about even) and 128 at
 * D = 128. */
#define CSA__SMALL_AVG_ROWS 96
#define CSA__SMALLW_AVG_ROWS_D64 384
#define CSA__SMALLW_AVG_ROWS_D128 128
/* Where the Hopper kernel takes D = D_v = 64 (fp16 / bf16), the class
 * reads (T_q / B + max_seqlen_q) / 2 against this instead: its long-row
 * tiles win on mixed lengths whose longest sequences carry most of the
 * work (16-512-row windows, mean 264: measured faster than the wide small
 * tiles) and lose on equal lengths up to ~256 rows, and the mean of the
 * average and the longest sequence tells the two apart with no device
 * lengths. */
#define CSA__SM90_MIXED_ROWS_D64 352
/* Shared memory per block (opt-in) from which a GPU takes the wide short-row
 * tiles: 4 of their 55 KiB CTAs per SM need the 227 KiB of sm_90 / sm_100. */
#define CSA__SMALLW_MIN_SMEM (200 * 1024)
/* Most heads one small-tile CTA runs in turn (the plan balances them). */
#define CSA__MAX_HEADS_PER_CTA 8
/* K/V ring depth wanted: big tiles 3 (if it costs no resident CTA), small
 * multi-head tiles 2 (a third stage measured slower there). */
#define CSA__STAGES_BIG 3
#define CSA__STAGES_SMALL 2

typedef struct {
  int dp, bn, mt, mh;
} csa__tile;

#define CSA__ROW(kind, DP, BN, MT, QREG, MINB, MH) {DP, BN, MT, MH},
static const csa__tile csa__tiles_small[] = {CSA__ATTN_TILES_SMALL(CSA__ROW)};
static const csa__tile csa__tiles_smallw[] = {CSA__ATTN_TILES_SMALLW(CSA__ROW)};
static const csa__tile csa__tiles_big[] = {CSA__ATTN_TILES_BIG(CSA__ROW)};
static const csa__tile csa__tiles_x3[] = {CSA__ATTN_TILES_X3(CSA__ROW)};
#undef CSA__ROW

static csa__cuda_knobs csa__knobs;
static volatile int csa__knobs_read;

void csa__cuda_knobs_reload(void) {
  csa__cuda_knobs k = {-1, 0, 0, 1, -1};
  const char *t = getenv("COMFY_SPARSE_ATTN_CUDA_TILE");
  if (t != NULL && strcmp(t, "small") == 0)
    k.tile = 1, k.wide = 0;
  else if (t != NULL && strcmp(t, "smallw") == 0)
    k.tile = 1, k.wide = 1;
  else if (t != NULL && strcmp(t, "big") == 0)
    k.tile = 0;
  t = getenv("COMFY_SPARSE_ATTN_CUDA_HEADS_PER_CTA");
  if (t != NULL && atoi(t) >= 1)
    k.hpc = atoi(t);
  t = getenv("COMFY_SPARSE_ATTN_CUDA_SM90");
  if (t != NULL && strcmp(t, "0") == 0)
    k.sm90 = 0;
  t = getenv("COMFY_SPARSE_ATTN_CUDA_STAGES");
  if (t != NULL && atoi(t) >= 1 && atoi(t) <= 3)
    k.stages = atoi(t);
  csa__knobs = k;
  csa__knobs_read = 1;
}

const csa__cuda_knobs *csa__cuda_knobs_get(void) {
  /* a benign race: two first callers both read the same environment */
  if (!csa__knobs_read)
    csa__cuda_knobs_reload();
  return &csa__knobs;
}

/* Dynamic shared memory of one CTA: Q buffers (as many as stages when
 * several heads run in turn), then the K and V rings, rows padded by 8
 * elements (attn_fwd.cu). */
static size_t csa__smem_bytes(const csa__tile *t, int hpc, int stages, int x3) {
  const int qbufs = hpc > 1 ? stages : 1;
  return (size_t)(qbufs * 64 * t->mt + 2 * stages * t->bn) * (size_t)(t->dp + 8) * 2 *
         (x3 ? 2 : 1); /* x3: hi and lo halves */
}

static const csa__tile *csa__pick(const csa__tile *rows, size_t n, int dmax) {
  for (size_t i = 0; i < n; i++)
    if (dmax <= rows[i].dp)
      return &rows[i];
  return NULL;
}
#define CSA__PICK(rows, dmax) csa__pick(rows, sizeof rows / sizeof rows[0], dmax)

static const char *csa__dtype_tag(int dtype) {
  return dtype == CSA_FLOAT16 ? "f16" : dtype == CSA_BFLOAT16 ? "bf16" : "f32";
}

/* The Hopper kernel's plan (attn_sm90_plan.h) turned into a launch plan:
 * CSA__PLAN_NOT_COVERED when that kernel does not take the call, else the
 * status of looking the kernel up. */
#define CSA__PLAN_NOT_COVERED (-1)
static int csa__attn_plan_sm90(csa__cuda_call *c, csa__cuda_attn_args *a, int dtype,
                               csa__attn_plan *p) {
  csa__sm90_launch l;
  if (!csa__sm90_plan(a, dtype, c->dev->sm / 10, c->dev->sm % 10, &l))
    return CSA__PLAN_NOT_COVERED;
  if ((size_t)l.smem_bytes > (size_t)c->dev->smem_optin)
    return CSA__PLAN_NOT_COVERED;
  p->module = "attn_fwd_sm90";
  snprintf(p->kernel, sizeof p->kernel, "%s", l.kernel);
  int st = csa__cuda_find(c, p->module, p->kernel, &p->fn);
  if (st == CSA_OK)
    st = csa__cuda_set_smem(c, &p->fn, l.smem_bytes);
  if (st != CSA_OK)
    return st;
  a->hpc = 1;
  a->stages = CSA__SM90_STAGES;
  for (int i = 0; i < 3; i++)
    p->grid[i] = l.grid[i];
  p->block = l.block[0];
  p->smem = l.smem_bytes;
  return CSA_OK;
}

/* Tile kind from the average query length T_q / B, known without reading
 * cu_seqlens; fp32 inputs always use big tiles. */
static int csa__want_small(const csa__cuda_knobs *kn, int short_rows, int dtype) {
  int small = short_rows;
  if (kn->tile >= 0)
    small = kn->tile;
  if (dtype == CSA_FLOAT32)
    small = 0;
  return small;
}

/* Hopper: the wgmma kernel (attn_fwd_sm90.cu) takes the long-row fp16 /
 * bf16 calls it covers; everything else falls through to mma.sync. */
static int csa__try_sm90(const csa__cuda_knobs *kn, int small, csa__cuda_call *c) {
  return kn->sm90 && small == 0 && c->dev->sm == 90 &&
         csa__cuda_has_module(c, "attn_fwd_sm90");
}

/* Whether this device takes the wide short-row tiles (knob, else its
 * shared memory per block). */
static int csa__wide_ok(const csa__cuda_knobs *kn, const csa__cuda_call *c) {
  if (kn->wide >= 0)
    return kn->wide;
  return c->dev->smem_optin >= CSA__SMALLW_MIN_SMEM;
}

/* Rows class of the call: short (packed small tiles) when the average query
 * length T_q / B is below the threshold of the tiles this device takes. */
static int csa__short_rows(const csa__cuda_knobs *kn, const csa__cuda_call *c,
                           const csa__cuda_attn_args *a, int dmax, int dtype) {
  if (a->batch <= 0)
    return 0;
  if (kn->sm90 && c->dev->sm == 90 && a->d == 64 && a->dv == 64 &&
      (dtype == CSA_FLOAT16 || dtype == CSA_BFLOAT16))
    /* (T_q / B + max_q) / 2 <= rows, without the division */
    return (int64_t)a->t_q + (int64_t)a->max_q * a->batch <=
           2 * (int64_t)CSA__SM90_MIXED_ROWS_D64 * a->batch;
  int64_t avg = CSA__SMALL_AVG_ROWS;
  if (csa__wide_ok(kn, c) && dmax <= 128)
    avg = dmax <= 64 ? CSA__SMALLW_AVG_ROWS_D64 : CSA__SMALLW_AVG_ROWS_D128;
  return (int64_t)a->t_q <= avg * a->batch;
}

/* The mma.sync tile: small if wanted and one fits D (the wide form where the
 * device takes it and one fits D: *wide set), else big (and *small cleared);
 * for fp32 the x3 tile instead (*x3 set) where it fits. NULL when no tile
 * covers D. */
static const csa__tile *csa__pick_tile(csa__cuda_call *c, const csa__cuda_knobs *kn, int dtype,
                                       int dmax, int *small, int *wide, int *x3) {
  const csa__tile *t = NULL;
  *wide = 0;
  if (*small && csa__wide_ok(kn, c)) {
    t = CSA__PICK(csa__tiles_smallw, dmax);
    *wide = t != NULL;
  }
  if (*small && t == NULL)
    t = CSA__PICK(csa__tiles_small, dmax);
  if (t == NULL) {
    *small = 0;
    t = CSA__PICK(csa__tiles_big, dmax);
  }
  /* fp32: three split bf16 products (exact to ~1e-6), where the doubled
   * shared memory fits even at one stage; else the bf16-rounding kernel
   * (e.g. D > 128 on GPUs granting ~100 KB per block). */
  *x3 = 0;
  if (dtype == CSA_FLOAT32) {
    const csa__tile *tx = CSA__PICK(csa__tiles_x3, dmax);
    if (tx != NULL &&
        csa__smem_bytes(tx, 1, 1, 1) + (size_t)CSA__ATTN_STATIC_SMEM_PER_MT * (size_t)tx->mt <=
            (size_t)c->dev->smem_optin) {
      t = tx;
      *x3 = 1;
    }
  }
  return t;
}

/* Heads per CTA: short rows share one row plan over up to 8 heads, and
 * each head's first copies overlap the previous head's last block. */
static int csa__heads_per_cta(const csa__cuda_knobs *kn, const csa__tile *t,
                              const csa__cuda_attn_args *a, int short_rows) {
  int hpc = 1;
  if (t->mh && short_rows) {
    const int groups = (a->heads + CSA__MAX_HEADS_PER_CTA - 1) / CSA__MAX_HEADS_PER_CTA;
    hpc = (a->heads + groups - 1) / groups;
  }
  if (t->mh && kn->hpc >= 1)
    hpc = kn->hpc < a->heads ? kn->hpc : a->heads;
  return hpc;
}

/* Pipeline depth, shrunk while the CTA does not fit the per-block grant:
 * first fewer stages, then one head per CTA (e.g. SM 7.5's 64 KiB). */
static int csa__fit_stages(const csa__cuda_call *c, const csa__cuda_knobs *kn,
                           const csa__tile *t, int x3, int *hpc, int *stages) {
  int want = kn->stages ? kn->stages : (t->mh ? CSA__STAGES_SMALL : CSA__STAGES_BIG);
  /* x3 stages its copies in registers: at most two shared-memory stages */
  if (x3 && want > 2)
    want = 2;
  const size_t limit =
      (size_t)c->dev->smem_optin - (size_t)CSA__ATTN_STATIC_SMEM_PER_MT * (size_t)t->mt;
  *stages = want;
  while (csa__smem_bytes(t, *hpc, *stages, x3) > limit) {
    if (*stages > 1) {
      --*stages;
    } else if (*hpc > 1) {
      *hpc = 1;
      *stages = want;
    } else {
      return csa__error(CSA_ENOTSUP,
                        "head dims above 128 need more shared memory per block than this GPU "
                        "grants (%d bytes); use D, D_v <= 128 on this device",
                        c->dev->smem_optin);
    }
  }
  return CSA_OK;
}

/* A third stage must not cost a resident CTA (latency hiding across CTAs
 * is worth more than depth within one): back to two stages when it does. */
static int csa__keep_third_stage(csa__cuda_call *c, const csa__attn_plan *p, const csa__tile *t,
                                 int hpc, int x3, int *stages, size_t *smem) {
  const size_t smem2 = csa__smem_bytes(t, hpc, 2, x3);
  int n3 = 0, n2 = 0;
  csa__CUresult e = c->api->OccupancyMaxActiveBlocksPerMultiprocessor(
      &n3, p->fn.fn, CSA__ATTN_THREADS, *smem);
  if (e == CSA__CUDA_SUCCESS)
    e = c->api->OccupancyMaxActiveBlocksPerMultiprocessor(&n2, p->fn.fn, CSA__ATTN_THREADS,
                                                          smem2);
  if (e != CSA__CUDA_SUCCESS)
    return csa__cuda_fail(e, "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  if (n3 < n2) {
    *stages = 2;
    *smem = smem2;
  }
  return CSA_OK;
}

int csa__attn_plan_make(csa__cuda_call *c, csa__cuda_attn_args *a, int dtype,
                        csa__attn_plan *p) {
  const csa__cuda_knobs *kn = csa__cuda_knobs_get();
  p->arg = NULL;
  const int dmax = a->d > a->dv ? a->d : a->dv;

  const int short_rows = csa__short_rows(kn, c, a, dmax, dtype);
  int small = csa__want_small(kn, short_rows, dtype);

  if (csa__try_sm90(kn, small, c)) {
    a->small = 0;
    int st = csa__attn_plan_sm90(c, a, dtype, p);
    if (st != CSA__PLAN_NOT_COVERED)
      return st;
  }
  int x3, wide;
  const csa__tile *t = csa__pick_tile(c, kn, dtype, dmax, &small, &wide, &x3);
  /* f16 calls returning the LSE: exact row sums (see attn_kernels.h) */
  const int exact_l = dtype == CSA_FLOAT16 && a->lse != NULL && t != NULL && t->dp <= 32;
  if (t == NULL)
    return csa__error(CSA_ENOTSUP, "the CUDA kernel supports head dims up to 256, got %d", dmax);
  a->small = small;

  int hpc = csa__heads_per_cta(kn, t, a, short_rows);
  int stages;
  int st = csa__fit_stages(c, kn, t, x3, &hpc, &stages);
  if (st != CSA_OK)
    return st;

  p->module = "attn_fwd";
  snprintf(p->kernel, sizeof p->kernel, "csa_attn_fwd_%s_d%d_%s%s", csa__dtype_tag(dtype), t->dp,
           x3 ? "x3" : wide ? "smallw" : small ? "small" : "big", exact_l ? "_lse" : "");
  st = csa__cuda_find(c, p->module, p->kernel, &p->fn);
  if (st != CSA_OK)
    return st;
  size_t smem = csa__smem_bytes(t, hpc, stages, x3);
  st = csa__cuda_set_smem(c, &p->fn, smem);
  if (st != CSA_OK)
    return st;
  if (stages == 3 && !kn->stages) {
    st = csa__keep_third_stage(c, p, t, hpc, x3, &stages, &smem);
    if (st != CSA_OK)
      return st;
  }
  a->hpc = hpc;
  a->stages = stages;
  const int bm = 64 * t->mt;
  p->grid[0] = (unsigned)(((int64_t)a->t_q + bm - 1) / bm);
  p->grid[1] = (unsigned)((a->heads + hpc - 1) / hpc);
  p->grid[2] = 1;
  p->block = CSA__ATTN_THREADS;
  p->smem = smem;
  return CSA_OK;
}
