/*
 * kernel.inc.h — the attention kernel of one item (up to c->tiles row
 * tiles of CSA__CPU_ROWS query rows, one sequence and head), written once
 * against the SIMD vocabulary.
 *
 * Each kernel_<isa>.c includes its simd_<isa>.h and kernel_common.inc.h,
 * optionally defines its own hooks (the ISA-specific steps), then defines
 *   CSA_K_ISA      its CSA_ISA_* value
 *   CSA_K_KERNEL   the name of its csa__cpu_kernel (declared in cpu_attn.h)
 * and includes this file.  Hooks (functions the includer names; the float32
 * ones of kernel_common.inc.h unless it names others):
 *   CSA_K_MODE(c, &mode)                      how this call computes (once)
 *   CSA_K_BEGIN(&mode) / CSA_K_END(&mode)     around an item (tile set-up)
 *   CSA_K_PACK_Q(c, &mode, qrow0, tile, tmp)  the tile's Q^T into tile->qt
 *   CSA_K_PACK_KV(c, &mode, kb, vb, cn, &sp)  one K/V block into scratch
 *   CSA_K_SCORES(c, &mode, kb, &sp, tile, tn) S^T = K Q^T into sp.s
 *   CSA_K_OUTPUT(c, &mode, &sp, tile, tn, corr)
 *                                             O^T = O^T corr + V^T P^T (P^T
 *                                             in sp.s; corr NULL: no O^T yet)
 *   CSA_K_P_PAIR(lo, hi)                      (optional) two float32 P^T
 *                                             rows as one row of bf16 pairs,
 *                                             for modes with p_pairs set
 *   CSA_K_PHASE(p)                            (optional, benchmarks only:
 *                                             bench/cpu_phases.c) the work
 *                                             since the last call was phase
 *                                             p (CSA__K_PH_*)
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
 * row tile of CSA__CPU_ROWS rows; an item has up to c->tiles):
 *
 *   qt [D][ROWS]    Q^T (or, for bf16 products, [D/2][ROWS] bf16 pairs)
 *   s  [KEYS][ROWS] S^T, then P^T in place
 *   ot [Dv][ROWS]   O^T accumulator
 *                   (rows of these three CSA__CPU_LD floats apart)
 *   m, l, corr      [ROWS] running max, running sum, this block's rescale
 *   kc, vc          the key / value block as the hooks pack it
 *   kv              the head cache: the blocks of a whole kv head, packed
 *                   as kc / vc, for the thread's next items of that head
 *
 * so memory stays O(TILES * ROWS * (D + Dv) + KEYS * (ROWS + D + Dv)) per
 * thread, whatever the lengths, plus the head cache where a head fits
 * CSA__CPU_KV_CACHE_BYTES.
 */

#ifndef CSA_K_MODE
#define CSA_K_MODE csa__f32_mode
#endif
#ifndef CSA_K_BEGIN
#define CSA_K_BEGIN csa__k_no_setup
#endif
#ifndef CSA_K_END
#define CSA_K_END csa__k_no_setup
#endif
#ifndef CSA_K_PACK_Q
#define CSA_K_PACK_Q csa__f32_pack_q
#endif
#ifndef CSA_K_PACK_KV
#define CSA_K_PACK_KV csa__f32_pack_kv
#endif
#ifndef CSA_K_SCORES
#define CSA_K_SCORES csa__f32_scores
#endif
#ifndef CSA_K_OUTPUT
#define CSA_K_OUTPUT csa__f32_output
#endif

/* Phases of an item, for a benchmark that defines CSA_K_PHASE to time them
 * (here it compiles to nothing). */
enum {
  CSA__K_PH_DRIVER,   /* before the item (the caller, prefetching the next) */
  CSA__K_PH_QPACK,    /* set-up: tile state, Q^T packed */
  CSA__K_PH_KVPACK,   /* a K/V block packed */
  CSA__K_PH_PREFETCH, /* rows of the next block / item asked for */
  CSA__K_PH_SCORES,   /* S^T = K Q^T (and the causal mask) */
  CSA__K_PH_SOFTMAX,  /* the online softmax */
  CSA__K_PH_OUTPUT,   /* O^T = O^T corr + V^T P^T */
  CSA__K_PH_FINISH,   /* out = O / l written, lse */
  CSA__K_PH_COUNT
};
#ifndef CSA_K_PHASE
#define CSA_K_PHASE(p) ((void)0)
#endif

/* A running max no score reaches, finite so that m_old - m_new never reads
 * (-inf) - (-inf). */
#define CSA__M_INIT (-1.0e30f)

/* Causal mask of a block that crosses the diagonal: key j (absolute index
 * kj in its sequence) is visible to tile row r iff kj <= r0 + r + off, so
 * rows r < kj - off - r0 get -inf. */
static void csa__k_mask_causal(float *s, int64_t cn, int64_t kj0, int64_t first_visible_row,
                            int nrv) {
  const csa_v ninf = csa_v_set1(-INFINITY);
  for (int64_t j = 0; j < cn; j++) {
    const int64_t t = kj0 + j - first_visible_row; /* rows < t are masked */
    if (t <= 0)
      continue;
    for (int rv = 0; rv < nrv && rv * CSA_VL < t; rv++) {
      float *p = s + j * CSA__CPU_LD + rv * CSA_VL;
      csa_v row = csa_v_add(csa_v_iota(), csa_v_set1((float)(rv * CSA_VL)));
      csa_v_store(p, csa_v_lt_select(row, csa_v_set1((float)t), ninf, csa_v_load(p)));
    }
  }
}

/* Exponentials computed side by side in the softmax (csa__k_exp2_n). */
#ifndef CSA__K_EXPN
#define CSA__K_EXPN 4
#endif

/* bf16 pairs from two float32 P^T rows (the includer's CSA_K_P_PAIR, where
 * its products read pairs; never called elsewhere). */
#ifdef CSA_K_P_PAIR
#define CSA__K_HAS_PAIRS 1
#else
#define CSA__K_HAS_PAIRS 0
#define CSA_K_P_PAIR(lo, hi) (lo)
#endif

/* Online-softmax step over one block of cn scores for the rows of row
 * vector rv: new max, corr, P^T in place of S^T (float32 rows, or bf16 pair
 * rows: keys 2i, 2i+1 into row i, written only after rows 2i..2i+3 are read,
 * every row below 2i already consumed), running sums. */
static CSA__ALWAYS_INLINE void csa__k_softmax_body(const csa__cpu_call *c, const csa__k_mode *md,
                                                   float *s0, const csa__k_tile *t, int64_t cn,
                                                   int rv, const int half, const int pairs) {
  const csa_v k = csa_v_set1(c->scale_log2);
  float *s = s0 + rv * CSA_VL;
  /* the block's max in four chains: in one chain each of the cn maxima
   * would wait for the one before (4 cycles apiece on AVX-512) */
  csa_v mxs[4];
  CSA__UNROLL for (int u = 0; u < 4; u++) mxs[u] = csa_v_set1(-INFINITY);
  int64_t j = 0;
  for (; j + 4 <= cn; j += 4)
    CSA__UNROLL for (int u = 0; u < 4; u++)
      mxs[u] = csa_v_max(mxs[u], csa_v_load(s + (j + u) * CSA__CPU_LD));
  for (; j < cn; j++) mxs[0] = csa_v_max(mxs[0], csa_v_load(s + j * CSA__CPU_LD));
  const csa_v mx = csa_v_max(csa_v_max(mxs[0], mxs[1]), csa_v_max(mxs[2], mxs[3]));
  csa_v m_old = csa_v_load(t->m + rv * CSA_VL);
  csa_v m_new = csa_v_max(m_old, csa_v_mul(mx, k));
  if (md->slack > 0.0f) /* keep m where the block passes it by less than the slack */
    m_new = csa_v_lt_select(csa_v_sub(m_new, m_old), csa_v_set1(md->slack), m_old, m_new);
  csa_v corr = csa__k_exp2(csa_v_sub(m_old, m_new), half);
  csa_v neg_m = csa_v_sub(csa_v_zero(), m_new);
  /* CSA__K_EXPN keys at a time, their exponentials interleaved (see
   * csa__k_exp2_n), each with its own partial sum */
  csa_v x[CSA__K_EXPN], sums[CSA__K_EXPN];
  CSA__UNROLL for (int u = 0; u < CSA__K_EXPN; u++) sums[u] = csa_v_zero();
  for (j = 0; j + CSA__K_EXPN <= cn; j += CSA__K_EXPN) {
    CSA__UNROLL for (int u = 0; u < CSA__K_EXPN; u++)
      x[u] = csa_v_fma(csa_v_load(s + (j + u) * CSA__CPU_LD), k, neg_m);
    csa__k_exp2_n(x, CSA__K_EXPN, half);
    CSA__UNROLL for (int u = 0; u < CSA__K_EXPN; u++) sums[u] = csa_v_add(sums[u], x[u]);
    if (pairs) {
      CSA__UNROLL for (int u = 0; u < CSA__K_EXPN; u += 2)
        csa_v_store(s + (j + u) / 2 * CSA__CPU_LD, CSA_K_P_PAIR(x[u], x[u + 1]));
    } else {
      CSA__UNROLL for (int u = 0; u < CSA__K_EXPN; u++) csa_v_store(s + (j + u) * CSA__CPU_LD, x[u]);
    }
  }
  for (; j < cn; j += pairs ? 2 : 1) { /* j is even here: CSA__K_EXPN is */
    csa_v p = csa__k_exp2(csa_v_fma(csa_v_load(s + j * CSA__CPU_LD), k, neg_m), half);
    sums[0] = csa_v_add(sums[0], p);
    if (pairs) {
      csa_v q = csa_v_zero();
      if (j + 1 < cn)
        q = csa__k_exp2(csa_v_fma(csa_v_load(s + (j + 1) * CSA__CPU_LD), k, neg_m), half);
      sums[1] = csa_v_add(sums[1], q);
      csa_v_store(s + j / 2 * CSA__CPU_LD, CSA_K_P_PAIR(p, q));
    } else {
      csa_v_store(s + j * CSA__CPU_LD, p);
    }
  }
  if (pairs) { /* pair rows past the keys, to the products' whole tiles: 0 */
    const int64_t np = (cn + 1) / 2, np_pad = (np + md->p_pad - 1) / md->p_pad * md->p_pad;
    for (int64_t i = np; i < np_pad; i++) csa_v_store(s + i * CSA__CPU_LD, csa_v_zero());
  }
  csa_v sum = sums[0];
  CSA__UNROLL for (int u = 1; u < CSA__K_EXPN; u++) sum = csa_v_add(sum, sums[u]);
  csa_v_store(t->m + rv * CSA_VL, m_new);
  csa_v_store(t->corr + rv * CSA_VL, corr);
  csa_v_store(t->l + rv * CSA_VL, csa_v_fma(csa_v_load(t->l + rv * CSA_VL), corr, sum));
}

/* The softmax of a tile's row vectors: float32 (exp2 of degree 5) for
 * float32 inputs, degree 3 for 16-bit ones, whose outputs carry 2^-9 ..
 * 2^-11 rounding anyway. */
static void csa__k_softmax_block(const csa__cpu_call *c, const csa__k_mode *md, float *s0,
                                 const csa__k_tile *t, int64_t cn) {
  for (int rv = 0; rv < t->nrv; rv++) {
    if (c->dtype == CSA_FLOAT32)
      csa__k_softmax_body(c, md, s0, t, cn, rv, 0, 0);
    else if (CSA__K_HAS_PAIRS && md->p_pairs)
      csa__k_softmax_body(c, md, s0, t, cn, rv, 1, CSA__K_HAS_PAIRS);
    else
      csa__k_softmax_body(c, md, s0, t, cn, rv, 1, 0);
  }
}

/* out = O^T / l (zeros where l = 0: no visible key), lse = (m + log2 l) ln 2. */
static void csa__k_finish(const csa__cpu_call *c, const csa__k_tile *t, float *row, int64_t h,
                       int64_t t0) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t nr = t->nr;
  float *inv = t->corr;
  for (int64_t r = 0; r < nr; r++) inv[r] = t->l[r] > 0.0f ? 1.0f / t->l[r] : 0.0f;
  if (c->lse)
    for (int64_t r = 0; r < nr; r++)
      c->lse[h * c->lse_sh + (t0 + r) * c->lse_st] =
          t->l[r] > 0.0f ? (t->m[r] + log2f(t->l[r])) * CSA__CPU_LN2 : -INFINITY;
  /* CSA_VL rows at a time: transpose blocks of O^T into a [CSA_VL][dvp]
   * buffer, scale each row by 1/l, narrow into out */
  const int64_t dvp = (int64_t)CSA__VROUND(c->dv);
  for (int64_t r0 = 0; r0 < nr; r0 += CSA_VL) {
    for (int64_t j = 0; j < dvp; j += CSA_VL)
      csa_v_transpose(t->ot + j * CSA__CPU_LD + r0, CSA__CPU_LD, row + j, dvp);
    for (int64_t i = 0; i < CSA_VL && r0 + i < nr; i++) {
      float *o = row + i * dvp;
      const csa_v s = csa_v_set1(inv[r0 + i]);
      for (int64_t j = 0; j < dvp; j += CSA_VL) csa_v_store(o + j, csa_v_mul(csa_v_load(o + j), s));
      csa__k_from_f32(c->out + (size_t)((t0 + r0 + i) * c->o_st + h * c->o_sh) * esz, o, c->dv,
                   c->dtype);
    }
  }
}

/* The item's row tiles: rows, visible keys, softmax state, packed Q^T.
 * Returns the number of keys any tile sees. */
static int64_t csa__k_tiles_init(const csa__cpu_call *c, const csa__k_mode *mode,
                                 const csa__cpu_item *it, const csa__k_scratch *sp,
                                 csa__k_tile *tiles, int ntile) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t q0 = c->cu_q[it->b], lq = c->cu_q[it->b + 1] - q0;
  const int64_t lkv = c->cu_kv[it->b + 1] - c->cu_kv[it->b];
  const int64_t off = lkv - lq; /* causal: row i sees keys j <= i + off */
  int64_t kv_end = 0;
  for (int i = 0; i < ntile; i++) {
    csa__k_tile *t = &tiles[i];
    csa__k_tile_bind(sp, t, i);
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
      CSA_K_PACK_Q(c, mode, c->q + (size_t)((q0 + t->r0) * c->q_st + it->h * c->q_sh) * esz, t,
                   sp->kc);
    else
      memset(t->ot, 0, sp->ot_size * sizeof(float));
  }
  return kv_end;
}

/* Asks for rows [r0, r1) of the next key block of K and V while this one
 * computes.  Rows of one head in a packed [T, H, D] tensor lie H*D elements
 * apart (4 KiB and more), a stride the hardware prefetchers do not follow
 * across pages, so without this every block would start with a burst of
 * misses to L3 or memory.  The item spreads the block's rows over its row
 * tiles so that the requests trickle out with the work. */
static void csa__k_prefetch_kv(const csa__cpu_call *c, const char *kb, const char *vb, int64_t r0,
                               int64_t r1) {
  const size_t esz = csa_dtype_size(c->dtype);
  const size_t kst = (size_t)c->k_st * esz, vst = (size_t)c->v_st * esz;
  const size_t kbytes = (size_t)c->d * esz, vbytes = (size_t)c->dv * esz;
  for (int64_t r = r0; r < r1; r++) {
    for (size_t b = 0; b < kbytes; b += 64) CSA__PREFETCH(kb + (size_t)r * kst + b, 0);
    for (size_t b = 0; b < vbytes; b += 64) CSA__PREFETCH(vb + (size_t)r * vst + b, 0);
  }
}

/* Asks for rows [r0, r1) of an item's query rows (write 0) or output rows
 * (write 1).  An item of several key blocks spends its last one asking for
 * the next item's Q rows and its own output rows: both are one page per row
 * in a packed [T, H, D] tensor, so packing Q^T and writing out would
 * otherwise wait on a page walk and a miss per row, with nothing to overlap
 * them. */
static void csa__k_prefetch_item_rows(const csa__cpu_call *c, const csa__cpu_item *it, int write,
                                      int64_t r0, int64_t r1) {
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t t0 = c->cu_q[it->b] + it->r0;
  const char *base = write ? c->out + (size_t)(t0 * c->o_st + it->h * c->o_sh) * esz
                           : c->q + (size_t)(t0 * c->q_st + it->h * c->q_sh) * esz;
  const size_t st = (size_t)(write ? c->o_st : c->q_st) * esz;
  const size_t bytes = (size_t)(write ? c->dv : c->d) * esz;
  for (int64_t r = r0; r < r1; r++)
    for (size_t b = 0; b < bytes; b += 64) {
      if (write)
        CSA__PREFETCH(base + (size_t)r * st + b, 1);
      else
        CSA__PREFETCH(base + (size_t)r * st + b, 0);
    }
}

/* Whether the item packs its K/V blocks into the thread's head cache (and
 * reuses what an earlier item of the same head left there): where the head
 * fits it and other items may share it, i.e. the sequence has more row
 * tiles than one item holds, or several query heads read this kv head.  A
 * head that only this item reads packs into the one block buffer, which
 * stays in L1/L2. */
static int csa__k_use_cache(const csa__cpu_call *c, const csa__k_scratch *sp,
                            const csa__cpu_item *it) {
  const int64_t lq = c->cu_q[it->b + 1] - c->cu_q[it->b];
  return sp->cache_blocks > 0 && (it->nr < lq || c->group > 1);
}

/* One item: its row tiles walk the key blocks together, so each block of K
 * and V is packed once (per item, or once per head and thread through the
 * head cache) and read from cache by every tile. */
static void csa__k_item(const csa__cpu_call *c, const csa__cpu_item *it,
                        const csa__cpu_item *next, void *scratch) {
  csa__k_scratch sp;
  csa__k_mode mode;
  csa__k_layout(c, &sp, scratch);
  CSA_K_MODE(c, &mode);
  const size_t esz = csa_dtype_size(c->dtype);
  const int64_t h = it->h, hk = h / c->group;
  const int64_t q0 = c->cu_q[it->b], lq = c->cu_q[it->b + 1] - q0;
  const int64_t k0 = c->cu_kv[it->b], lkv = c->cu_kv[it->b + 1] - k0;
  const int64_t off = lkv - lq; /* causal: row i sees keys j <= i + off */
  const int ntile = (int)CSA_CEIL_DIV(it->nr, (int64_t)CSA__CPU_ROWS);
  csa__k_tile tiles[CSA__CPU_MAX_TILES];
  /* keys already packed where this item reads its blocks (none without the
   * cache); the cache is taken over for this head if it held another */
  const int cached = csa__k_use_cache(c, &sp, it);
  csa__k_cache *hc = sp.cache;
  if (cached && !(hc->valid && hc->b == it->b && hc->hk == hk)) {
    hc->valid = 1, hc->b = it->b, hc->hk = hk;
    hc->keys = 0;
  }

  CSA_K_PHASE(CSA__K_PH_DRIVER);
  CSA_K_BEGIN(&mode);
  const int64_t kv_end = csa__k_tiles_init(c, &mode, it, &sp, tiles, ntile);
  CSA_K_PHASE(CSA__K_PH_QPACK);
  for (int64_t j0 = 0; j0 < kv_end; j0 += CSA__CPU_KEYS) {
    const int64_t cn = CSA_MIN((int64_t)CSA__CPU_KEYS, kv_end - j0);
    const char *kb = c->k + (size_t)((k0 + j0) * c->k_st + hk * c->k_sh) * esz;
    const char *vb = c->v + (size_t)((k0 + j0) * c->v_st + hk * c->v_sh) * esz;
    csa__k_scratch bsp = sp; /* this block's K/V: the block buffer or the cache's */
    int64_t packed = 0;
    if (cached) {
      bsp.kc = sp.kv + (size_t)(j0 / CSA__CPU_KEYS) * (sp.kc_size + sp.vc_size);
      bsp.vc = bsp.kc + sp.kc_size;
      packed = hc->keys;
    }
    /* a cached block packed for fewer keys (an earlier causal item's last
     * block) is packed again */
    if (j0 + cn > packed) {
      CSA_K_PACK_KV(c, &mode, kb, vb, cn, &bsp);
      if (cached)
        hc->keys = packed = j0 + cn;
      CSA_K_PHASE(CSA__K_PH_KVPACK);
    }
    /* the next block's rows, a share before each tile, where it is still to
     * be packed */
    int64_t nn = CSA_MAX((int64_t)0, CSA_MIN((int64_t)CSA__CPU_KEYS, kv_end - j0 - cn));
    if (j0 + cn + nn <= packed)
      nn = 0;
    const char *kn = kb + (size_t)(cn * c->k_st) * esz, *vn = vb + (size_t)(cn * c->v_st) * esz;
    const int last = j0 > 0 && j0 + cn >= kv_end;
    for (int i = 0; i < ntile; i++) {
      const csa__k_tile *t = &tiles[i];
      csa__k_prefetch_kv(c, kn, vn, nn * i / ntile, nn * (i + 1) / ntile);
      if (last) {
        if (next)
          csa__k_prefetch_item_rows(c, next, 0, next->nr * i / ntile, next->nr * (i + 1) / ntile);
        csa__k_prefetch_item_rows(c, it, 1, it->nr * i / ntile, it->nr * (i + 1) / ntile);
      }
      CSA_K_PHASE(CSA__K_PH_PREFETCH);
      if (j0 >= t->kv_end)
        continue;
      const int64_t tn = CSA_MIN(cn, t->kv_end - j0);
      CSA_K_SCORES(c, &mode, kb, &bsp, t, tn);
      if (c->causal && j0 + tn - 1 > t->r0 + off)
        csa__k_mask_causal(bsp.s, tn, j0, t->r0 + off, t->nrv);
      CSA_K_PHASE(CSA__K_PH_SCORES);
      csa__k_softmax_block(c, &mode, bsp.s, t, tn);
      CSA_K_PHASE(CSA__K_PH_SOFTMAX);
      /* the first block writes O^T (rows it masks entirely have P = 0, so
       * they start at 0 too) */
      CSA_K_OUTPUT(c, &mode, &bsp, t, tn, j0 == 0 ? NULL : t->corr);
      CSA_K_PHASE(CSA__K_PH_OUTPUT);
    }
  }
  CSA_K_END(&mode);
  for (int i = 0; i < ntile; i++) csa__k_finish(c, &tiles[i], sp.kc, h, q0 + tiles[i].r0);
  CSA_K_PHASE(CSA__K_PH_FINISH);
}

const csa__cpu_kernel CSA_K_KERNEL = {CSA_K_ISA, csa__k_scratch_bytes, csa__k_item};
