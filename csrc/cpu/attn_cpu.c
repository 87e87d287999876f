/*
 * attn_cpu.c — csa_attn_cpu in three steps: plan (checks, the call decoded),
 * chunk (items, their costs, the work split) and run (scratch, the workers).
 *
 * Work split (ggml's ith/nth idea with a shared counter):
 *   1. Items: each (sequence, head) is cut into pieces of up to
 *      tiles * CSA__CPU_ROWS query rows (csa__cpu_item_tiles); an item is independent of
 *      every other.
 *   2. Chunks: consecutive items (same head of the same sequence first, so
 *      they share keys in cache) are grouped until their estimated cost
 *      reaches total / (threads * CSA__CHUNKS_PER_THREAD).  Thousands of
 *      16-token windows become a few dozen chunks; a 49k-token sequence
 *      becomes hundreds of row tiles spread over all chunks.
 *   3. Each of the num_threads workers takes the next chunk from an atomic
 *      counter until none is left, so uneven chunks balance themselves.
 */
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "cpu_attn.h"

#define CSA__CHUNKS_PER_THREAD 16
/* An item's fixed cost (packing Q, writing out) in units of one score, per
 * row and per key: cost = (rows + C) * (keys + C).  C is fitted to measured
 * time per item over sequence lengths 8 .. 512 (`bench/bench_cpu.py
 * --cost-model`, numbers in bench/RESULTS.md): with C = 16 small items cost
 * 1.7x more per unit than 256-row ones, with C = 24 the units agree within
 * about 20 %. */
#define CSA__ITEM_OVERHEAD 24
#define CSA__MAX_THREADS 1024

int csa__cpu_item_tiles(int64_t d, int64_t dv) {
  /* Q^T and O^T of one tile: rows of CSA__CPU_LD floats, head dims rounded
   * up to 16 lanes (the widest vector) */
  const int64_t per_tile = ((d + 15) / 16 + (dv + 15) / 16) * 16 * CSA__CPU_LD * 4;
  return (int)CSA_MAX((int64_t)1, CSA_MIN((int64_t)CSA__CPU_MAX_TILES, CSA__CPU_TILE_BYTES / per_tile));
}

/* The largest element offset the kernel forms from this view, sum of
 * (shape_i - 1) * stride_i, must be representable in bytes: then every index
 * the kernel computes (always within the view's shape, which validation tied
 * to cu_seqlens) is free of overflow. */
static int csa__check_extent(const csa_tensor *t, const char *name) {
  const int64_t esz = (int64_t)csa_dtype_size(t->dtype);
  int64_t extent = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0)
      return CSA_OK; /* empty: never read or written */
  for (int i = 0; i < t->ndim; i++) {
    const int64_t n = t->shape[i] - 1, s = t->strides[i];
    if (n == 0 || s == 0)
      continue;
    if (n > (INT64_MAX - extent) / s)
      goto too_big;
    extent += n * s;
  }
  if (extent > (INT64_MAX / esz) - 1 || (uint64_t)(extent + 1) * (uint64_t)esz > (uint64_t)PTRDIFF_MAX)
    goto too_big;
  return CSA_OK;
too_big:
  return csa__error(CSA_ESTRIDE, "%s spans more memory than this machine can address "
                    "(shape times strides overflows)", name);
}

typedef struct csa__attn_job {
  csa__cpu_call call;
  const csa__cpu_kernel *kern;
  const csa__cpu_item *items;
  const int64_t *chunk_start; /* nchunks + 1 item indices */
  int64_t nchunks;
  csa__atomic_i64 next;
  unsigned char *scratch;
  size_t scratch_stride;
} csa__attn_job;

/* Keys of a short sequence at which prefetching the next item pays: below
 * it an item computes for about as long as its rows take to arrive from
 * memory (rows of one head are H*D elements apart, so the hardware sees no
 * stream), above it the kernel's own block loop hides the latency (and asks
 * for the next item's query rows during its last key block). */
#define CSA__PREFETCH_MAX_ROWS 256

static void csa__prefetch_rows(const char *base, int64_t n, int64_t stride_bytes,
                               int64_t row_bytes, int write) {
  for (int64_t r = 0; r < n; r++)
    for (int64_t b = 0; b < row_bytes; b += 64) {
      if (write)
        CSA__PREFETCH(base + r * stride_bytes + b, 1);
      else
        CSA__PREFETCH(base + r * stride_bytes + b, 0);
    }
}

/* Asks for the q, k, v (and out) rows of a small item while the current one
 * runs. */
static void csa__prefetch_item(const csa__cpu_call *c, const csa__cpu_item *it) {
  const int64_t esz = (int64_t)csa_dtype_size(c->dtype);
  const int64_t k0 = c->cu_kv[it->b], lkv = c->cu_kv[it->b + 1] - k0;
  if (lkv > CSA__PREFETCH_MAX_ROWS)
    return;
  const int64_t q0 = c->cu_q[it->b] + it->r0, hk = it->h / c->group;
  csa__prefetch_rows(c->q + (q0 * c->q_st + it->h * c->q_sh) * esz, it->nr, c->q_st * esz,
                     c->d * esz, 0);
  csa__prefetch_rows(c->k + (k0 * c->k_st + hk * c->k_sh) * esz, lkv, c->k_st * esz, c->d * esz, 0);
  csa__prefetch_rows(c->v + (k0 * c->v_st + hk * c->v_sh) * esz, lkv, c->v_st * esz, c->dv * esz, 0);
  csa__prefetch_rows(c->out + (q0 * c->o_st + it->h * c->o_sh) * esz, it->nr, c->o_st * esz,
                     c->dv * esz, 1);
}

static void csa__attn_worker(void *vjob, int ith) {
  csa__attn_job *job = (csa__attn_job *)vjob;
  void *scratch = job->scratch + (size_t)ith * job->scratch_stride;
  for (;;) {
    const int64_t ch = csa__atomic_fetch_add_i64(&job->next, 1);
    if (ch >= job->nchunks)
      break;
    const int64_t end = job->chunk_start[ch + 1];
    for (int64_t i = job->chunk_start[ch]; i < end; i++) {
      const csa__cpu_item *next = i + 1 < end ? &job->items[i + 1] : NULL;
      if (next)
        csa__prefetch_item(&job->call, next);
      job->kern->item(&job->call, &job->items[i], next, scratch);
    }
  }
}

/* Keys the rows [r0, r0 + nr) of a sequence see, on average (causal: the
 * middle row's count). */
static int64_t csa__visible_keys(int causal, int64_t lq, int64_t lkv, int64_t r0, int64_t nr) {
  if (!causal)
    return lkv;
  return CSA_MAX((int64_t)0, CSA_MIN(lkv, r0 + nr / 2 + 1 + (lkv - lq)));
}

/* ---- plan: checks, and the call decoded into byte pointers and strides. */
static int csa__cpu_plan(const csa_attn_params *p, csa__cpu_call *c, const csa__cpu_kernel **kern) {
  csa__attn_dims dims;
  int st = csa__attn_check(p, CSA_DEVICE_CPU, &dims);
  if (st)
    return st;
  if (dims.head_dim > CSA__CPU_MAX_D || dims.head_dim_v > CSA__CPU_MAX_D)
    return csa__error(CSA_ENOTSUP,
                      "the CPU kernel takes head dims up to %d, got D = %lld and D_v = %lld",
                      CSA__CPU_MAX_D, (long long)dims.head_dim, (long long)dims.head_dim_v);
  const int has_lse = p->lse.data != NULL || p->lse.ndim != 0;
  if ((st = csa__check_extent(&p->q, "q")) || (st = csa__check_extent(&p->k, "k")) ||
      (st = csa__check_extent(&p->v, "v")) || (st = csa__check_extent(&p->out, "out")) ||
      (has_lse && (st = csa__check_extent(&p->lse, "lse"))))
    return st;
  const int isa = csa_cpu_isa_selected();
  *kern = csa__cpu_kernel_get(isa);
  if (*kern == NULL)
    return csa__error(CSA_EINTERNAL, "no CPU kernel for ISA %s in this build", csa_cpu_isa_name(isa));

  memset(c, 0, sizeof *c);
  c->q = (const char *)p->q.data;
  c->k = (const char *)p->k.data;
  c->v = (const char *)p->v.data;
  c->out = (char *)p->out.data;
  c->lse = has_lse ? (float *)p->lse.data : NULL;
  c->q_st = p->q.strides[0], c->q_sh = p->q.strides[1];
  c->k_st = p->k.strides[0], c->k_sh = p->k.strides[1];
  c->v_st = p->v.strides[0], c->v_sh = p->v.strides[1];
  c->o_st = p->out.strides[0], c->o_sh = p->out.strides[1];
  c->lse_sh = has_lse ? p->lse.strides[0] : 0, c->lse_st = has_lse ? p->lse.strides[1] : 0;
  /* validation read the same values: host copies if given, else the tensors */
  c->cu_q = p->cu_seqlens_q_host ? p->cu_seqlens_q_host : (const int32_t *)p->cu_seqlens_q.data;
  c->cu_kv = p->cu_seqlens_kv_host ? p->cu_seqlens_kv_host : (const int32_t *)p->cu_seqlens_kv.data;
  c->batch = dims.batch, c->heads = dims.heads;
  c->d = dims.head_dim, c->dv = dims.head_dim_v;
  c->group = dims.heads / dims.heads_kv;
  c->dtype = p->q.dtype;
  c->causal = p->causal != 0;
  c->scale_log2 = dims.scale * CSA__CPU_LOG2E;
  c->tiles = csa__cpu_item_tiles(c->d, c->dv);
  for (int64_t b = 0; b < c->batch; b++)
    c->max_kv = CSA_MAX(c->max_kv, (int64_t)c->cu_kv[b + 1] - c->cu_kv[b]);
  return CSA_OK;
}

/* ---- items and their estimated costs. */
static int64_t csa__item_rows(const csa__cpu_call *c) { return (int64_t)c->tiles * CSA__CPU_ROWS; }

static int64_t csa__cpu_count_items(const csa__cpu_call *c) {
  int64_t n = 0;
  for (int64_t b = 0; b < c->batch; b++)
    n += c->heads * CSA_CEIL_DIV((int64_t)c->cu_q[b + 1] - c->cu_q[b], csa__item_rows(c));
  return n;
}

/* Fills items[] in order (sequence, head, row tile: consecutive items share
 * keys in cache) and returns the total cost. */
static int64_t csa__cpu_make_items(const csa__cpu_call *c, csa__cpu_item *items, int64_t *costs) {
  int64_t n = 0, total = 0;
  for (int64_t b = 0; b < c->batch; b++) {
    const int64_t lq = (int64_t)c->cu_q[b + 1] - c->cu_q[b];
    const int64_t lkv = (int64_t)c->cu_kv[b + 1] - c->cu_kv[b];
    for (int64_t h = 0; h < c->heads; h++)
      for (int64_t r0 = 0; r0 < lq; r0 += csa__item_rows(c), n++) {
        const int64_t nr = CSA_MIN(csa__item_rows(c), lq - r0);
        items[n].b = b, items[n].h = h, items[n].r0 = r0, items[n].nr = nr;
        costs[n] = (nr + CSA__ITEM_OVERHEAD) *
                   (csa__visible_keys(c->causal, lq, lkv, r0, nr) + CSA__ITEM_OVERHEAD);
        total += costs[n];
      }
  }
  return total;
}

/* ---- chunks: runs of consecutive items of about total / (threads *
 * CSA__CHUNKS_PER_THREAD) cost; starts[] gets nchunks + 1 item indices. */
static int64_t csa__cpu_chunk(const int64_t *costs, int64_t nitems, int64_t total, int nth,
                              int64_t *starts) {
  const int64_t target = CSA_MAX((int64_t)1, total / ((int64_t)nth * CSA__CHUNKS_PER_THREAD));
  int64_t nchunks = 0, acc = 0;
  starts[0] = 0;
  for (int64_t i = 0; i < nitems; i++) {
    acc += costs[i];
    if (acc >= target || i == nitems - 1) {
      starts[++nchunks] = i + 1;
      acc = 0;
    }
  }
  return nchunks;
}

/* ---- run: per-thread scratch (64-byte aligned), then the workers. */
static int csa__cpu_run(csa__attn_job *job, int nth) {
  job->scratch_stride = (job->kern->scratch_bytes(&job->call) + 63) & ~(size_t)63;
  unsigned char *raw = (unsigned char *)malloc(job->scratch_stride * (size_t)nth + 63);
  if (raw == NULL)
    return csa__error(CSA_ENOMEM, "cannot allocate %lld bytes of CPU attention scratch",
                      (long long)(job->scratch_stride * (size_t)nth));
  job->scratch = raw + ((64 - ((uintptr_t)raw & 63)) & 63);
  for (int i = 0; i < nth; i++)
    memset(job->scratch + (size_t)i * job->scratch_stride, 0,
           CSA_MIN(job->scratch_stride, (size_t)CSA__CPU_SCRATCH_HEAD));
  job->next = 0;
  csa__cpu_run_parallel(nth, csa__attn_worker, job);
  free(raw);
  return CSA_OK;
}

int csa_attn_cpu(const csa_attn_params *p) {
  csa__attn_job job;
  memset(&job, 0, sizeof job);
  int st = csa__cpu_plan(p, &job.call, &job.kern);
  if (st)
    return st;
  const int64_t nitems = csa__cpu_count_items(&job.call);
  if (nitems == 0)
    return CSA_OK; /* B = 0, or no query rows: nothing to write */

  csa__cpu_item *items = (csa__cpu_item *)malloc(sizeof(*items) * (size_t)nitems);
  int64_t *costs = (int64_t *)malloc(sizeof(int64_t) * (size_t)nitems);
  int64_t *starts = (int64_t *)malloc(sizeof(int64_t) * (size_t)(nitems + 1));
  if (items == NULL || costs == NULL || starts == NULL) {
    st = csa__error(CSA_ENOMEM, "cannot allocate the CPU work list (%lld items)", (long long)nitems);
  } else {
    const int64_t total = csa__cpu_make_items(&job.call, items, costs);
    int nth = p->num_threads > 0 ? CSA_MIN(p->num_threads, CSA__MAX_THREADS) : 1;
    job.items = items;
    job.chunk_start = starts;
    job.nchunks = csa__cpu_chunk(costs, nitems, total, nth, starts);
    st = csa__cpu_run(&job, (int)CSA_MIN((int64_t)nth, job.nchunks));
  }
  free(items);
  free(costs);
  free(starts);
  return st;
}
