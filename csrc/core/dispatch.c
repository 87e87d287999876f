/*
 * dispatch.c — backend constraints as data, and the selection walk.
 *
 * Each backend is one row of csa__caps: what it can take.  A call's facts
 * (csa__dispatch_facts, gathered in Python) are checked against the rows in
 * the priority order of the call's device class; the first failing check of
 * a row is that backend's reason, so "why not flash?" always has a one-line
 * answer.  Nothing here touches a tensor: it is pure, thread-safe and cheap
 * (a few hundred ns), and the Python side caches its answer per input
 * signature anyway.
 */
#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "internal.h"

#define CSA__DEV(d) (1u << (d))
#define CSA__DT(d) (1u << (d))
#define CSA__DT_HALVES (CSA__DT(CSA_FLOAT16) | CSA__DT(CSA_BFLOAT16))
#define CSA__DT_ALL (CSA__DT_HALVES | CSA__DT(CSA_FLOAT32))

/* Every device torch runs on: the torch tier goes wherever torch does. */
#define CSA__DEV_ANY                                                                  \
  (CSA__DEV(CSA_DEVICE_CPU) | CSA__DEV(CSA_DEVICE_CUDA) | CSA__DEV(CSA_DEVICE_METAL) | \
   CSA__DEV(CSA_DEVICE_ROCM) | CSA__DEV(CSA_DEVICE_ONEAPI) | CSA__DEV(CSA_DEVICE_OTHER))

/* SageAttention 1.0.6's varlen kernels exist for these head dims only
 * ("varlen only support head_dim [64, 128]"). */
static const int csa__sage_head_dims[] = {64, 128, 0};

static const csa__backend_caps csa__caps[CSA_BACKEND_COUNT] = {
    /* sage2: sageattention.sageattn_varlen.  Int8 Q.K^T (lossy, ~1e-2),
     * forward only; causal assumes L_q == L_kv (top-left); fp32 inputs run
     * natively (its own casts).  Its 1.x non-causal varlen kernel loads the
     * keys past a sequence's end as zeros but does not mask their scores, so
     * each padded key adds exp(0 - m) to the softmax denominator (wrong
     * whenever L_kv is not a multiple of its key block); its causal kernel
     * masks correctly: with 1.x, causal calls only. */
    [CSA_BACKEND_SAGE2] = {
        .name = "sage2",
        .devices = CSA__DEV(CSA_DEVICE_CUDA),
        .min_sm = 80,
        .dtypes = CSA__DT_ALL,
        .max_head_dim = 128,
        .head_dims = csa__sage_head_dims,
        .gqa = 1,
        .causal = CSA_CAUSAL_TOP_LEFT,
        .noncausal_min_major = 2,
        .lossy = 1,
        .library = "sageattention",
        .noncausal_why = "sageattention 1.x: its non-causal varlen kernel does not mask the keys "
                         "past each sequence's end (wrong results); only causal calls use it",
    },
    /* flash: flash_attn.flash_attn_varlen_func (FA2/FA4) or FA3's
     * flash_attn_interface.  fp16/bf16 only; fp32 runs as bf16 and is cast
     * back (what the original package did), so it is exact only to bf16. */
    [CSA_BACKEND_FLASH] = {
        .name = "flash",
        .devices = CSA__DEV(CSA_DEVICE_CUDA),
        .min_sm = 80,
        .dtypes = CSA__DT_HALVES,
        .dtypes_cast = CSA__DT(CSA_FLOAT32),
        .max_head_dim = 256,
        .gqa = 1,
        .causal = CSA_CAUSAL_BOTTOM_RIGHT,
        .lse = 1,
        .autograd = 1,
        .library = "flash_attn",
    },
    /* xformers: memory_efficient_attention + BlockDiagonalMask (causal:
     * BlockDiagonalCausalFromBottomRightMask); GQA through its 5-D form. */
    [CSA_BACKEND_XFORMERS] = {
        .name = "xformers",
        .devices = CSA__DEV(CSA_DEVICE_CUDA),
        .min_sm = 50,
        .dtypes = CSA__DT_ALL,
        .max_head_dim = 256,
        .dv_differs = 1,
        .gqa = 1,
        .causal = CSA_CAUSAL_BOTTOM_RIGHT,
        .autograd = 1,
        .library = "xformers",
    },
    /* sdpa: the torch tier (torch's varlen kernels on CUDA where they fit,
     * else per-sequence SDPA): works wherever torch does.  torch's GPU
     * kernels (flash, memory-efficient, cuDNN) load 16-bit rows in 16-byte
     * vectors, so with fp16 / bf16 on a GPU they have no kernel for a head
     * dim that is not a multiple of 8 ("cutlassF: no kernel found"). */
    [CSA_BACKEND_SDPA] = {
        .name = "sdpa",
        .devices = CSA__DEV_ANY,
        .dtypes = CSA__DT_ALL,
        .max_head_dim = 1 << 16,
        .gpu_half_head_dim_multiple = 8,
        .dv_differs = 1,
        .gqa = 1,
        .causal = CSA_CAUSAL_BOTTOM_RIGHT,
        .autograd = 1,
        .library = "torch",
    },
    /* native: our C kernel (csrc/cpu) and CUDA C kernel (csrc/cuda). */
    [CSA_BACKEND_NATIVE] = {
        .name = "native",
        .devices = CSA__DEV(CSA_DEVICE_CPU) | CSA__DEV(CSA_DEVICE_CUDA),
        .dtypes = CSA__DT_ALL,
        .max_head_dim = 256,
        .dv_differs = 1,
        .gqa = 1,
        .causal = CSA_CAUSAL_BOTTOM_RIGHT,
        .lse = 1,
        .library = "comfy_sparse_attn._C",
    },
};

/* ------------------------------------------------------------------------ */
/* Priority.                                                                  */
/*                                                                            */
/* The seed's order: SM >= 8.0: sage2 > flash > xformers > sdpa; older GPUs  */
/* and CPU: xformers > sdpa.  Backends a class cannot run stay at the end so */
/* that list_backends() still says why they were not chosen.                 */
/* ------------------------------------------------------------------------ */
static const int csa__order_modern[] = {CSA_BACKEND_SAGE2, CSA_BACKEND_FLASH,
                                        CSA_BACKEND_XFORMERS, CSA_BACKEND_SDPA, -1};
static const int csa__order_other[] = {CSA_BACKEND_XFORMERS, CSA_BACKEND_SDPA,
                                       CSA_BACKEND_SAGE2, CSA_BACKEND_FLASH, -1};

/* ======================================================================== */
/* NATIVE PLACEMENT POLICY, per device class.                                */
/*                                                                            */
/* Rule: `native` is placed by MEASURED EVIDENCE per device class.  Each row */
/* says before which backend native goes (CSA__LAST: after every other one,  */
/* where it is the fallback that always works) and cites the numbers.  A    */
/* row moves native up only when bench/RESULTS.md shows it at >= 0.95x the   */
/* backend it passes on that class's standard workloads.  The lead fills the */
/* CUDA rows from GPU runs; first matching row wins.                         */
/* ======================================================================== */
#define CSA__LAST (-1)
#define CSA__FIRST (-2)
/* Native placement rules: the first row whose conditions hold places the
 * native backend (first, last, or before a named backend).  Conditions:
 * device class (and CUDA compute capability range), the largest head dim,
 * the rows class of the call, and "wgmma shape": fp16 / bf16 with
 * D = D_v in {64, 128}, the calls the Hopper kernel takes.  Every row is a
 * measurement (bench/RESULTS.md in the repository): native goes first only
 * where it led the fastest peer, or where the torch tier's own path for that
 * shape is slower than native. */
typedef struct csa__native_rule {
  int device_type;
  int sm_lo, sm_hi;  /* inclusive, CUDA only */
  int max_head_dim;  /* 0: any; else only when max(D, D_v) <= this */
  int rows;          /* -1: any; else only this csa__rows_class */
  int wgmma_shape;   /* 1: only fp16 / bf16 with D = D_v in {64, 128} */
  int before;        /* backend native is placed before, CSA__FIRST or CSA__LAST */
  const char *evidence;
} csa__native_rule;

static const csa__native_rule csa__native_rules[] = {
    /* CPU: no other backend has a CPU kernel but per-sequence SDPA, which
     * has no LSE and loops over sequences in Python. */
    {.device_type = CSA_DEVICE_CPU, .rows = -1, .before = CSA__FIRST,
     .evidence = "cpu: native first (our C kernel leads torch's per-sequence SDPA on every "
                 "measured CPU workload)"},
    /* Hopper.  D <= 32: the short-D path (packed f16x2 exponentials) leads
     * FA2 varlen; short rows: packed multi-sequence tiles lead the
     * mem-efficient op; a few long sequences: the wgmma kernel beats the FA2
     * varlen op and the per-sequence path (which must cut its rows into
     * chunks to keep memory within 1.05x the output), and so do many long
     * ones (FA2 varlen is their fastest peer); one long sequence (cuDNN
     * per-sequence SDPA) and other head dims stay with the torch tier. */
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 90, .sm_hi = 99,
     .max_head_dim = CSA_DISPATCH_SMALL_HEAD, .rows = -1, .before = CSA__FIRST,
     .evidence = "cuda sm90, D <= 32: native first (measured ahead of the fastest peer, "
                 "torch's FA2 varlen op)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 90, .sm_hi = 99, .rows = CSA_ROWS_SHORT,
     .before = CSA__FIRST,
     .evidence = "cuda sm90, short sequences: native first (packed multi-sequence tiles "
                 "measured ahead of torch's mem-efficient varlen op)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 90, .sm_hi = 99, .rows = CSA_ROWS_FEW_LONG,
     .wgmma_shape = 1, .before = CSA__FIRST,
     .evidence = "cuda sm90, 2-8 long sequences, D 64/128: native first (the wgmma kernel "
                 "measured ahead of torch's FA2 varlen op and its memory-bounded "
                 "per-sequence path)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 90, .sm_hi = 99, .rows = CSA_ROWS_MANY_LONG,
     .wgmma_shape = 1, .before = CSA__FIRST,
     .evidence = "cuda sm90, many long sequences, D 64/128: native first (the wgmma kernel "
                 "measured ahead of torch's FA2 varlen op on every wgmma-shaped workload, "
                 "windows included)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 90, .sm_hi = 99, .rows = -1,
     .before = CSA__LAST,
     .evidence = "cuda sm90: native last (one long sequence: cuDNN per-sequence SDPA "
                 "measured ahead; many long sequences of other head dims: torch's FA2 "
                 "varlen op)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 80, .sm_hi = 89, .rows = -1, .before = CSA__LAST,
     .evidence = "cuda sm80-89: native last (not measured on these GPUs)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 100, .sm_hi = 1000, .rows = -1,
     .before = CSA__LAST, .evidence = "cuda sm100+: native last (not measured on these GPUs)"},
    {.device_type = CSA_DEVICE_CUDA, .sm_lo = 0, .sm_hi = 79, .rows = -1, .before = CSA__LAST,
     .evidence = "cuda pre-sm80: native last (not measured on these GPUs)"},
};

int csa__dispatch_rows(int64_t batch, int64_t total_q) {
  if (batch <= 1)
    return CSA_ROWS_ONE;
  if (total_q <= (int64_t)CSA_DISPATCH_SHORT_ROWS * batch)
    return CSA_ROWS_SHORT;
  return batch <= CSA_DISPATCH_FEW ? CSA_ROWS_FEW_LONG : CSA_ROWS_MANY_LONG;
}

static int csa__rule_matches(const csa__native_rule *r, const csa__dispatch_facts *f) {
  if (r->device_type != f->device_type)
    return 0;
  if (f->device_type == CSA_DEVICE_CUDA && (f->sm < r->sm_lo || f->sm > r->sm_hi))
    return 0;
  if (r->max_head_dim > 0 && CSA_MAX(f->head_dim, f->head_dim_v) > r->max_head_dim)
    return 0;
  if (r->rows >= 0 && r->rows != f->rows)
    return 0;
  if (r->wgmma_shape &&
      !((f->dtype == CSA_FLOAT16 || f->dtype == CSA_BFLOAT16) && f->head_dim == f->head_dim_v &&
        (f->head_dim == 64 || f->head_dim == 128)))
    return 0;
  return 1;
}

const csa__backend_caps *csa__backend_caps_get(int b) {
  return b >= 0 && b < CSA_BACKEND_COUNT ? &csa__caps[b] : NULL;
}

int csa__backend_from_name(const char *name) {
  if (name == NULL)
    return -1;
  for (int b = 0; b < CSA_BACKEND_COUNT; b++)
    if (strcmp(name, csa__caps[b].name) == 0)
      return b;
  return -1;
}

const char *csa__dispatch_priority(const csa__dispatch_facts *f, int order[CSA_BACKEND_COUNT]) {
  const int *base = f->device_type == CSA_DEVICE_CUDA && f->sm >= 80 ? csa__order_modern
                                                                     : csa__order_other;
  const csa__native_rule *pol = NULL;
  for (size_t i = 0; i < sizeof csa__native_rules / sizeof csa__native_rules[0]; i++) {
    if (csa__rule_matches(&csa__native_rules[i], f)) {
      pol = &csa__native_rules[i];
      break;
    }
  }
  int before = pol ? pol->before : CSA__LAST;
  int n = 0;
  if (before == CSA__FIRST)
    order[n++] = CSA_BACKEND_NATIVE;
  for (int i = 0; base[i] >= 0; i++) {
    if (base[i] == before)
      order[n++] = CSA_BACKEND_NATIVE;
    order[n++] = base[i];
  }
  if (n < CSA_BACKEND_COUNT)
    order[n++] = CSA_BACKEND_NATIVE;
  if (!pol)
    return "no placement rule for this device: native last";
  return pol->evidence;
}

/* Constraints of where the call runs: the caller's choice, what is installed
 * and enabled, and the device itself.  Checked first because a backend that
 * cannot run here at all is best explained by that, not by a shape detail.
 * Returns 1 with the reason in why, or 0. */
static int csa__decline_placement(int b, const csa__dispatch_facts *f, char *why, size_t cap) {
  const csa__backend_caps *c = &csa__caps[b];
  if (f->forced >= 0 && f->forced != b)
    return snprintf(why, cap, "not selected: backend '%s' was requested",
                    csa__caps[f->forced].name), 1;
  if (b != CSA_BACKEND_NATIVE && !(f->available & (1u << b)))
    return snprintf(why, cap, "%s is not installed or does not import", c->library), 1;
  if (f->disabled & (1u << b))
    return snprintf(why, cap, "disabled by a ComfyUI command-line flag"), 1;
  if (!(c->devices & CSA__DEV(f->device_type)))
    return snprintf(why, cap, "has no %s kernel", csa_device_name(f->device_type)), 1;
  if (b == CSA_BACKEND_NATIVE && f->device_type == CSA_DEVICE_CUDA && !f->native_cuda)
    return snprintf(why, cap, "%s",
                    f->native_cuda_why && f->native_cuda_why[0]
                        ? f->native_cuda_why
                        : "this build of comfy-sparse-attn has no CUDA kernels"), 1;
  if (f->device_type == CSA_DEVICE_CUDA && f->sm < c->min_sm)
    return snprintf(why, cap, "needs compute capability >= %d.%d, the device has %d.%d",
                    c->min_sm / 10, c->min_sm % 10, f->sm / 10, f->sm % 10), 1;
  return 0;
}

/* Whether head_dim is in the zero-terminated list of head dims a backend's
 * kernels were instantiated for. */
static int csa__head_dim_listed(const int *head_dims, int64_t head_dim) {
  int ok = 0;
  for (const int *d = head_dims; *d; d++)
    ok |= *d == head_dim;
  return ok;
}

/* Constraints of the tensors: dtype, head dims, D_v != D and grouped-query
 * heads.  Returns 1 with the reason in why, or 0. */
static int csa__decline_shape(int b, const csa__dispatch_facts *f, char *why, size_t cap) {
  const csa__backend_caps *c = &csa__caps[b];
  unsigned dt = CSA__DT(f->dtype);
  if (!((c->dtypes | c->dtypes_cast) & dt))
    return snprintf(why, cap, "does not take %s inputs", csa_dtype_name(f->dtype)), 1;
  if (f->head_dim > c->max_head_dim || f->head_dim_v > c->max_head_dim)
    return snprintf(why, cap, "head dim %lld exceeds its maximum %d",
                    (long long)CSA_MAX(f->head_dim, f->head_dim_v), c->max_head_dim), 1;
  if (c->head_dims && !csa__head_dim_listed(c->head_dims, f->head_dim))
    return snprintf(why, cap, "head dim %lld not supported (only 64 and 128)",
                    (long long)f->head_dim), 1;
  int gpu = f->device_type == CSA_DEVICE_CUDA || f->device_type == CSA_DEVICE_ROCM;
  int m = c->gpu_half_head_dim_multiple;
  if (m > 0 && gpu && (dt & CSA__DT_HALVES) && (f->head_dim % m || f->head_dim_v % m))
    return snprintf(why, cap,
                    "its GPU kernels need head dims that are multiples of %d with %s, got "
                    "D = %lld, D_v = %lld",
                    m, csa_dtype_name(f->dtype), (long long)f->head_dim,
                    (long long)f->head_dim_v), 1;
  if (f->head_dim_v != f->head_dim && !c->dv_differs)
    return snprintf(why, cap, "needs D_v == D, got D = %lld, D_v = %lld",
                    (long long)f->head_dim, (long long)f->head_dim_v), 1;
  if (f->heads_kv != f->heads && !c->gqa)
    return snprintf(why, cap, "no grouped-query attention (H = %lld, H_kv = %lld)",
                    (long long)f->heads, (long long)f->heads_kv), 1;
  return 0;
}

/* Constraints of what the call asks for: the causal mask, the LSE, a
 * backward, and exactness.  Returns 1 with the reason in why, or 0. */
static int csa__decline_semantics(int b, const csa__dispatch_facts *f, char *why, size_t cap) {
  const csa__backend_caps *c = &csa__caps[b];
  if (f->causal && c->causal == CSA_CAUSAL_NONE)
    return snprintf(why, cap, "no causal mask"), 1;
  if (f->causal && c->causal == CSA_CAUSAL_TOP_LEFT && !f->lengths_equal)
    return snprintf(why, cap,
                    "causal mask is top-left aligned: right only when every L_q == L_kv, "
                    "which is not known here"), 1;
  if (!f->causal && c->noncausal_min_major > 0 && f->lib_major[b] > 0 &&
      f->lib_major[b] < c->noncausal_min_major)
    return snprintf(why, cap, "%s", c->noncausal_why ? c->noncausal_why : "causal calls only"), 1;
  if (f->lse && !c->lse)
    return snprintf(why, cap, "does not return the LSE"), 1;
  if (f->grad && !c->autograd)
    return snprintf(why, cap, "has no backward, and autograd is recording"), 1;
  if (f->exact_only && c->lossy)
    return snprintf(why, cap, "lossy (int8-quantized Q.K^T) and exact-only mode is on"), 1;
  return 0;
}

/* The first constraint of caps that the facts break, written into why;
 * returns 0 when every constraint holds.  The groups run placement, then
 * shape, then semantics, and stop at the first that declines, so exactly one
 * reason (the earliest broken constraint) is reported. */
static int csa__decline(int b, const csa__dispatch_facts *f, char *why, size_t cap) {
  return csa__decline_placement(b, f, why, cap) || csa__decline_shape(b, f, why, cap) ||
         csa__decline_semantics(b, f, why, cap);
}

int csa__dispatch_select(const csa__dispatch_facts *f, csa__dispatch_result *r) {
  if (f == NULL || r == NULL)
    return csa__error(CSA_EINVAL, "dispatch facts and result must not be NULL");
  if (f->device_type < 0 || f->device_type > 31 || !(CSA__DEV_ANY & CSA__DEV(f->device_type)))
    return csa__error(CSA_EINVAL, "facts.device_type must be a csa_device_type, got %d",
                      f->device_type);
  if (f->forced < -1 || f->forced >= CSA_BACKEND_COUNT)
    return csa__error(CSA_EINVAL, "facts.forced must be -1 or a backend id < %d, got %d",
                      CSA_BACKEND_COUNT, f->forced);
  if (f->prefer < -1 || f->prefer >= CSA_BACKEND_COUNT)
    return csa__error(CSA_EINVAL, "facts.prefer must be -1 or a backend id < %d, got %d",
                      CSA_BACKEND_COUNT, f->prefer);
  if (f->head_dim < 1 || f->head_dim_v < 1 || f->heads < 1 || f->heads_kv < 1)
    return csa__error(CSA_EINVAL, "facts: head dims and head counts must be >= 1");

  int order[CSA_BACKEND_COUNT];
  if (f->rows < CSA_ROWS_ONE || f->rows > CSA_ROWS_SHORT)
    return csa__error(CSA_EINVAL, "facts.rows must be a csa__rows_class, got %d", f->rows);
  r->policy = csa__dispatch_priority(f, order);
  r->n = 0;
  for (int i = 0; i < CSA_BACKEND_COUNT; i++) {
    int b = order[i];
    if (csa__decline(b, f, r->reason[b], CSA_DISPATCH_REASON_MAX))
      continue;
    r->reason[b][0] = '\0';
    r->order[r->n++] = b;
  }
  /* An explicit ComfyUI flag (--use-sage-attention, ...) moves its backend
   * to the front when that backend can take the call. */
  for (int i = 1; i < r->n; i++) {
    if (r->order[i] == f->prefer) {
      memmove(&r->order[1], &r->order[0], (size_t)i * sizeof r->order[0]);
      r->order[0] = f->prefer;
      break;
    }
  }
  return CSA_OK;
}
