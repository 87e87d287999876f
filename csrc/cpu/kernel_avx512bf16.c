/*
 * kernel_avx512bf16.c — the AVX-512 kernel plus bf16 pair dot products
 * (vdpbf16ps: 32 bf16 multiply-adds into 16 float32 lanes per instruction,
 * twice the float32 FMA rate) for bf16 inputs.
 *
 * Scores: lane r of S^T[key] += K[key][2p..2p+1] . Q[r][2p..2p+1], with K's
 * pair broadcast straight from the input and Q^T packed as pairs.
 * Output: P^T is rounded to bf16 (as FlashAttention does for its second
 * product; P is in [0, 1], so the relative error per weight is <= 2^-9) and
 * paired over consecutive keys, and so is each value column; the running sum
 * l keeps the float32 P.  Accumulation stays float32.
 *
 * Where the CPU has AMX (and the OS lets us use it) both products run on
 * tiles instead (kernel_amx.c): Sapphire Rapids does them several times
 * faster than with vdpbf16ps, which it issues at a quarter of the FMA rate.
 */
#include <string.h>

#include "amx.h"
#include "cpu_attn.h"
#include "simd_avx512.h"

#include "kernel_common.inc.h"

static inline uint32_t csa__load_u32(const uint16_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

/* Products over bf16 pairs: A items and B lanes hold two bf16 values each
 * (consecutive d of a key and of a query row for the scores; consecutive keys
 * of a value column and of a P^T column for the output). */
#define GT_BODY csa__gemmt_bf16_body
#define GT_TILE_SCORES csa__gemmt_bf16_tile_scores
#define GT_TILE_OUTPUT csa__gemmt_bf16_tile_output
#define GT_RUN csa__gemmt_bf16_run
#define GT_A uint16_t
#define GT_E 2
#define GT_AV __m512bh
#define GT_BCAST(p) ((__m512bh)_mm512_set1_epi32((int)csa__load_u32(p)))
#define GT_BV __m512bh
#define GT_BLOAD(p) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
#define GT_STEP(acc, x, y) _mm512_dpbf16_ps((acc), (x), (y))
#include "gemmt.inc.h"

/* Two float32 vectors -> 16 lanes of (bf16 lo, bf16 hi) pairs: one
 * conversion gives [lo0..lo15, hi0..hi15], one word permute interleaves. */
static inline __m512i csa__bf16_pairs(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* The softmax's P^T pairs (kernel.inc.h, csa__k_mode.p_pairs): keys 2i
 * and 2i+1 of 16 rows -> row i of (bf16 lo, bf16 hi) lanes. */
static inline csa_v csa__p_pair(csa_v lo, csa_v hi) {
  return _mm512_castsi512_ps(csa__bf16_pairs(lo, hi));
}
#define CSA_K_P_PAIR csa__p_pair

/* Value rows 2i, 2i+1 -> dst[i][dv] = (v[2i][dv], v[2i+1][dv]); an odd last
 * key pairs with zero. */
static void csa__pack_v_pairs(uint32_t *dst, const uint16_t *v, int64_t v_st, int64_t cn,
                              int64_t dv) {
  for (int64_t i = 0; 2 * i < cn; i++) {
    const uint16_t *a = v + 2 * i * v_st;
    const uint16_t *b = 2 * i + 1 < cn ? a + v_st : NULL;
    uint32_t *out = dst + i * dv;
    int64_t j = 0;
    for (; j + 16 <= dv; j += 16) {
      __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + j)));
      __m512i hi = b ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + j)))
                     : _mm512_setzero_si512();
      _mm512_storeu_si512((void *)(out + j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
    for (; j < dv; j++) out[j] = (uint32_t)a[j] | (b ? (uint32_t)b[j] << 16 : 0u);
  }
}

/* ---- The hooks of kernel.inc.h: float32 for fp32 / fp16 inputs and odd D,
 * pairs (vdpbf16ps) or AMX tiles for bf16 inputs with even D. */

/* Where AMX tiles lose to float32 FMAs (measured on an Emerald Rapids Xeon,
 * bench/RESULTS.md "Intel Xeon with AMX"): head dims below 16, where a tile
 * product pads K to 32 and the softmax (one exp per score) is nearly all of
 * the work either way; there the bf16 inputs are widened to float32 (or, on
 * CPUs where vdpbf16ps is fast, paired).  D = 16 and calls of short
 * sequences (one partly empty 64-key block per item) lost to the float32
 * path too until the softmax wrote P^T pairs itself and the rescale pass was
 * skipped (csa__k_mode.p_pairs, .slack); now the tiles win on both. */
#define CSA__AMX_MIN_D 16
/* log2 of the factor by which P may exceed 1 before the running maximum
 * moves (csa__k_mode.slack): 2^8, far inside float32 and bf16 range. */
#define CSA__AMX_SLACK 8.0f

static void csa__bf16_mode(const csa__cpu_call *c, csa__k_mode *m) {
  csa__f32_mode(c, m);
  if (c->dtype != CSA_BFLOAT16 || c->d % 2 != 0)
    return; /* a pair would straddle the end of a key row */
  if (csa__cpu_amx_ready() && c->d >= CSA__AMX_MIN_D) {
    m->kind = CSA__K_TILES;
    m->pairs = (c->d + 31) / 32 * 16; /* AMX reads whole tiles of 16 pairs */
    m->p_pairs = 1;
    m->p_pad = 16; /* the output product reads whole tiles of 16 key pairs */
    m->slack = CSA__AMX_SLACK;
    return;
  }
  if (csa__cpu_amx_ready() && !csa__cpu_bf16dot_fast())
    return; /* float32 FMAs */
  m->kind = CSA__K_PAIRS;
  m->pairs = c->d / 2;
  m->p_pairs = 1;
  m->p_pad = 1;
}

static void csa__bf16_begin(const csa__k_mode *m) {
  if (m->kind == CSA__K_TILES)
    csa__amx_begin();
}

static void csa__bf16_end(const csa__k_mode *m) {
  if (m->kind == CSA__K_TILES)
    csa__amx_end();
}

/* Q^T as bf16 pairs, [pairs][ROWS]; zero past d and past the tile's rows. */
static void csa__bf16_pack_q(const csa__cpu_call *c, const csa__k_mode *m, const char *qrow0,
                             const csa__k_tile *t, float *tmp) {
  if (m->kind == CSA__K_F32) {
    csa__f32_pack_q(c, m, qrow0, t, tmp);
    return;
  }
  const int64_t rows_p = (int64_t)t->nrv * CSA_VL, half = c->d / 2;
  uint32_t *qp = (uint32_t *)t->qt;
  for (int64_t r = 0; r < rows_p; r++) {
    const char *row = qrow0 + (size_t)(r * c->q_st) * 2;
    for (int64_t p = 0; p < m->pairs; p++) {
      uint32_t w = 0;
      if (r < t->nr && p < half)
        memcpy(&w, row + (size_t)p * 4, 4);
      qp[p * CSA__CPU_LD + r] = w;
    }
  }
}

/* Pairs: V as key pairs (K's pairs are read in place); tiles: K and V^T. */
static void csa__bf16_pack_kv(const csa__cpu_call *c, const csa__k_mode *m, const char *kb,
                              const char *vb, int64_t cn, const csa__k_scratch *sp) {
  if (m->kind == CSA__K_F32)
    csa__f32_pack_kv(c, m, kb, vb, cn, sp);
  else if (m->kind == CSA__K_PAIRS)
    csa__pack_v_pairs((uint32_t *)sp->vc, (const uint16_t *)vb, c->v_st, cn, c->dv);
  else {
    csa__amx_pack_k((uint16_t *)sp->kc, (const uint16_t *)kb, c->k_st, cn, c->d, m->pairs * 2);
    csa__amx_pack_vt((uint16_t *)sp->vc, (uint16_t *)sp->s, (const uint16_t *)vb, c->v_st, cn,
                     c->dv, (int64_t)CSA__VROUND(c->dv));
  }
}

static void csa__bf16_scores(const csa__cpu_call *c, const csa__k_mode *m, const char *kb,
                             const csa__k_scratch *sp, const csa__k_tile *t, int64_t tn) {
  if (m->kind == CSA__K_F32)
    csa__f32_scores(c, m, kb, sp, t, tn);
  else if (m->kind == CSA__K_PAIRS)
    csa__gemmt_bf16_run(0, tn, c->d / 2, (const uint16_t *)kb, c->k_st, 0, t->qt, sp->s, NULL,
                        t->nrv);
  else
    csa__amx_scores((const uint16_t *)sp->kc, m->pairs * 2, t->qt, sp->s, (tn + 15) / 16 * 16,
                    t->nrv);
}

/* P^T is in bf16 pairs already (the softmax wrote them, csa__k_mode.p_pairs). */
static void csa__bf16_output(const csa__cpu_call *c, const csa__k_mode *m,
                             const csa__k_scratch *sp, const csa__k_tile *t, int64_t tn,
                             const float *corr) {
  if (m->kind == CSA__K_F32)
    csa__f32_output(c, m, sp, t, tn, corr);
  else if (m->kind == CSA__K_PAIRS)
    csa__gemmt_bf16_run(1, c->dv, (tn + 1) / 2, (const uint16_t *)sp->vc, 0, 2 * c->dv, sp->s,
                        t->ot, corr, t->nrv);
  else
    csa__amx_out((const uint16_t *)sp->vc, sp->s, t->ot, (int64_t)CSA__VROUND(c->dv),
                 (tn + 31) / 32 * 32, t->nrv, corr);
}

#define CSA_K_MODE csa__bf16_mode
#define CSA_K_BEGIN csa__bf16_begin
#define CSA_K_END csa__bf16_end
#define CSA_K_PACK_Q csa__bf16_pack_q
#define CSA_K_PACK_KV csa__bf16_pack_kv
#define CSA_K_SCORES csa__bf16_scores
#define CSA_K_OUTPUT csa__bf16_output

#define CSA_K_ISA CSA_ISA_AVX512BF16
#define CSA_K_KERNEL csa__cpu_kernel_avx512bf16
#include "kernel.inc.h"
