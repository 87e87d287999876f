/*
 * attn_cuda.c — csa_attn_cuda(): validate, turn the borrowed views into the
 * kernels' flat argument struct, let the launch plan (attn_plan.c) choose a
 * kernel, launch it on the caller's stream through the driver API
 * (loader.h).  Failures come back as CSA_ENOTSUP (no driver, old driver, GPU
 * not covered) or CSA_ECUDA with the driver's own words; never aborts, and
 * the driver API keeps no error state, so nothing is left pending.
 */
#include <stdint.h>
#include <string.h>

#include "core/hash.h"
#include "core/internal.h"
#include "cuda/attn_args.h"
#include "cuda/attn_plan.h"
#include "cuda/fatbin.h"
#include "cuda/loader.h"

/* "Built with kernels": the fatbins are embedded (whether this machine can
 * run them is csa_cuda_status's question). */
int csa_have_cuda(void) { return csa__n_fatbins > 0; }

/* 1 if the data pointer and every advancing non-last stride put each row on a
 * 16-byte boundary (the kernels' 16-byte vector loads need it). */
static int csa__rows_aligned16(const csa_tensor *t) {
  size_t es = csa_dtype_size(t->dtype);
  if ((uintptr_t)t->data % 16 != 0)
    return 0;
  for (int i = 0; i < t->ndim - 1; i++)
    if (t->shape[i] > 1 && ((size_t)t->strides[i] * es) % 16 != 0)
      return 0;
  return 1;
}

static int32_t csa__clamp_len(int64_t max_seqlen, int64_t total) {
  return (int32_t)(max_seqlen < 0 ? 0 : (max_seqlen > total ? total : max_seqlen));
}

/* ------------------------------------------------------------------------
 * Launch plans, remembered.
 *
 * csa__attn_plan_make is a function of the device, the dtype, the tuning
 * knobs and the args struct alone (of its pointers only whether lse is
 * written), and what it looks up for a device does not change once made
 * (kernel handles, shared-memory grants, occupancy).  So the plan of a
 * repeated call is taken from a small direct-mapped cache keyed by exactly
 * those inputs (every non-pointer field of the args, whatever the plan reads
 * of them) instead of being made again: no kernel-name lookup, no lock-held
 * string compares, no occupancy queries on the hot path.  Plans that carry
 * their own parameter block (plan.arg, built from this call's pointers) are
 * never remembered.  A slot is read and written under the loader's lock
 * (a few hundred bytes copied); a miss makes the plan outside it.
 * ------------------------------------------------------------------------ */
typedef struct csa__plan_key {
  int ordinal, dtype;
  csa__cuda_knobs knobs;
  csa__cuda_attn_args args; /* pointers cleared; lse = 1 when written */
} csa__plan_key;

typedef struct csa__plan_slot {
  int used;
  csa__plan_key key;
  csa__cuda_attn_args args; /* as the plan left them (its choices filled in) */
  csa__cuda_kernel fn;
  unsigned grid[3], block;
  size_t smem;
} csa__plan_slot;

enum { CSA__PLAN_SLOTS = 128 };
static csa__plan_slot csa__plans[CSA__PLAN_SLOTS];

static void csa__plan_key_make(const csa__cuda_call *c, const csa__cuda_attn_args *a, int dtype,
                               csa__plan_key *k) {
  memset(k, 0, sizeof *k);
  k->ordinal = c->dev->ordinal;
  k->dtype = dtype;
  k->knobs = *csa__cuda_knobs_get();
  k->args = *a; /* a was zeroed before it was filled: padding compares equal */
  k->args.q = k->args.k = k->args.v = NULL;
  k->args.out = NULL;
  k->args.cu_q = k->args.cu_kv = NULL;
  k->args.cu_flags = a->cu_flags != NULL ? (int32_t *)(uintptr_t)1 : NULL;
  k->args.lse = a->lse != NULL ? (float *)(uintptr_t)1 : NULL;
}

static unsigned csa__plan_hash(const csa__plan_key *k) {
  return (unsigned)(csa__hash_bytes(k, sizeof *k) % CSA__PLAN_SLOTS);
}

/* The plan of a call: remembered, or made (and remembered when it can be).
 * On a hit, a's plan fields (tile kind, heads per CTA, stages) are filled
 * from the remembered call; its pointers stay this call's. */
static int csa__attn_plan_get(csa__cuda_call *c, csa__cuda_attn_args *a, int dtype,
                              csa__attn_plan *plan) {
  csa__plan_key key;
  csa__plan_key_make(c, a, dtype, &key);
  const unsigned slot = csa__plan_hash(&key);
  csa__plan_slot *s = &csa__plans[slot];
  int hit = 0;
  csa__cuda_lock();
  if (s->used && memcmp(&s->key, &key, sizeof key) == 0) {
    csa__cuda_attn_args mine = *a;
    *a = s->args;
    a->q = mine.q, a->k = mine.k, a->v = mine.v, a->out = mine.out, a->lse = mine.lse;
    a->cu_q = mine.cu_q, a->cu_kv = mine.cu_kv, a->cu_flags = mine.cu_flags;
    plan->fn = s->fn;
    memcpy(plan->grid, s->grid, sizeof plan->grid);
    plan->block = s->block;
    plan->smem = s->smem;
    plan->arg = NULL;
    hit = 1;
  }
  csa__cuda_unlock();
  if (hit)
    return CSA_OK;
  int st = csa__attn_plan_make(c, a, dtype, plan);
  if (st != CSA_OK || plan->arg != NULL)
    return st;
  csa__cuda_lock();
  s->used = 1;
  s->key = key;
  s->args = *a;
  s->fn = plan->fn;
  memcpy(s->grid, plan->grid, sizeof s->grid);
  s->block = plan->block;
  s->smem = plan->smem;
  csa__cuda_unlock();
  return CSA_OK;
}

static int csa__no_kernels(void) {
  return csa__error(CSA_ENOTSUP,
                    "this build of comfy-sparse-attn has no CUDA kernels (built without nvcc "
                    "or prebuilt fatbins, or with CSA_WITH_CUDA=OFF)");
}

int csa_attn_cuda(const csa_attn_params *p) {
  if (csa__n_fatbins == 0)
    return csa__no_kernels();
  csa__attn_dims dims;
  int st = csa__attn_check(p, CSA_DEVICE_CUDA, &dims);
  if (st != CSA_OK)
    return st;
  return csa__attn_cuda_checked(p, &dims, NULL);
}

static int32_t csa__clamp_nonneg32(int64_t x) {
  return (int32_t)(x < 0 ? 0 : (x > INT32_MAX ? INT32_MAX : x));
}

int csa__attn_cuda_checked(const csa_attn_params *p, const csa__attn_dims *d,
                           int32_t *cu_flags) {
  if (csa__n_fatbins == 0)
    return csa__no_kernels();
  if (p->q.device_type != CSA_DEVICE_CUDA)
    return csa__error(CSA_EDEVICE, "this backend needs cuda tensors, but q is on %s",
                      csa_device_name(p->q.device_type));
  const csa__attn_dims dims = *d;
  int st;
  if (dims.head_dim > 256 || dims.head_dim_v > 256)
    return csa__error(CSA_ENOTSUP,
                      "the CUDA kernel supports head dims up to 256, got D = %lld, D_v = %lld",
                      (long long)dims.head_dim, (long long)dims.head_dim_v);
  if (dims.heads > 65535)
    return csa__error(CSA_ENOTSUP, "the CUDA kernel supports up to 65535 heads, got %lld",
                      (long long)dims.heads);
  if (dims.total_q > INT32_MAX || dims.total_kv > INT32_MAX)
    return csa__error(CSA_ENOTSUP, "the CUDA kernel needs T_q, T_kv < 2^31 (int32 cu_seqlens)");
  if (dims.total_q == 0)
    return CSA_OK; /* nothing to write: out and lse are empty */

  csa__cuda_attn_args a;
  memset(&a, 0, sizeof a);
  a.q = p->q.data;
  a.k = p->k.data;
  a.v = p->v.data;
  a.out = p->out.data;
  a.lse = (float *)p->lse.data;
  a.cu_q = (const int32_t *)p->cu_seqlens_q.data;
  a.cu_kv = (const int32_t *)p->cu_seqlens_kv.data;
  a.q_st_t = p->q.strides[0];
  a.q_st_h = p->q.strides[1];
  a.k_st_t = p->k.strides[0];
  a.k_st_h = p->k.strides[1];
  a.v_st_t = p->v.strides[0];
  a.v_st_h = p->v.strides[1];
  a.o_st_t = p->out.strides[0];
  a.o_st_h = p->out.strides[1];
  a.lse_st_h = a.lse ? p->lse.strides[0] : 0;
  a.lse_st_t = a.lse ? p->lse.strides[1] : 0;
  a.t_q = (int32_t)dims.total_q;
  a.t_kv = (int32_t)dims.total_kv;
  a.heads = (int32_t)dims.heads;
  a.heads_kv = (int32_t)dims.heads_kv;
  a.d = (int32_t)dims.head_dim;
  a.dv = (int32_t)dims.head_dim_v;
  a.batch = (int32_t)dims.batch;
  a.max_q = csa__clamp_len(p->max_seqlen_q, dims.total_q);
  a.max_kv = csa__clamp_len(p->max_seqlen_kv, dims.total_kv);
  a.causal = p->causal != 0;
  a.vec = csa__rows_aligned16(&p->q) && csa__rows_aligned16(&p->k) &&
          csa__rows_aligned16(&p->v) && csa__rows_aligned16(&p->out);
  a.scale = dims.scale;
  a.scale_log2 = dims.scale * 1.4426950408889634f; /* scale * log2(e): exp(x) = 2^(x log2 e) */
  a.cu_flags = cu_flags;
  a.cu_max_q = cu_flags != NULL ? csa__clamp_nonneg32(p->max_seqlen_q) : 0;
  a.cu_max_kv = cu_flags != NULL ? csa__clamp_nonneg32(p->max_seqlen_kv) : 0;

  /* Plan and launch in the tensors' device's primary context; the caller's
   * context is current again afterwards. */
  csa__cuda_call c;
  st = csa__cuda_begin(&c, p->q.device_id);
  if (st != CSA_OK)
    return st;
  csa__attn_plan plan;
  st = csa__attn_plan_get(&c, &a, p->q.dtype, &plan);
  if (st == CSA_OK)
    st = csa__cuda_launch(&c, &plan.fn, plan.grid, plan.block, plan.smem, p->stream,
                          plan.arg != NULL ? plan.arg : (const void *)&a);
  csa__cuda_end(&c);
  return st;
}
