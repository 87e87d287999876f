/*
 * dispatch.h — which attention backend runs a varlen call, decided in C.
 *
 * Python gathers the facts only Python can see (which libraries import, the
 * compute capability of the tensor's own device, ComfyUI's command-line
 * flags, whether autograd is recording) and the shape of the call; this file
 * holds what each backend can take, as data (dispatch.c), and the walk that
 * turns facts into an ordered candidate list plus, for every backend left
 * out, the reason.  Python then runs the first candidate, falling through to
 * the next if one fails at run time.
 *
 * Internal (not installed): the only caller is the extension module.
 */
#ifndef CSA_CORE_DISPATCH_H
#define CSA_CORE_DISPATCH_H

#include <stdint.h>

#include "csa/csa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backends, one per Python adapter.  The names are the ones users type
 * (backend=, COMFY_SPARSE_ATTN_BACKEND, use_backend): "sdpa" is the torch
 * tier (torch's varlen kernels or per-sequence SDPA, chosen by shape). */
#define CSA_BACKEND_MAP(XX) \
  XX(SAGE2, "sage2")        \
  XX(FLASH, "flash")        \
  XX(XFORMERS, "xformers")  \
  XX(SDPA, "sdpa")          \
  XX(NATIVE, "native")

typedef enum csa__backend {
#define CSA__BACKEND_ENUM(id, name) CSA_BACKEND_##id,
  CSA_BACKEND_MAP(CSA__BACKEND_ENUM)
#undef CSA__BACKEND_ENUM
  CSA_BACKEND_COUNT
} csa__backend;

/* Causal masking a backend implements. */
enum {
  CSA_CAUSAL_NONE = 0,         /* no causal mask at all */
  CSA_CAUSAL_TOP_LEFT = 1,     /* i sees j <= i: right only when every L_q == L_kv */
  CSA_CAUSAL_BOTTOM_RIGHT = 2  /* i sees j <= i + L_kv - L_q (docs/ARCHITECTURE.md) */
};

/* What a backend can take.  One row per backend in dispatch.c, written with
 * designated initializers: a field left out is 0, i.e. "not supported" for
 * the flags and "no rule" for the *_multiple / *_major facts. */
typedef struct csa__backend_caps {
  const char *name;
  unsigned devices;      /* bit (1 << csa_device_type) per device it runs on */
  int min_sm;            /* CUDA: lowest compute capability, major*10+minor */
  unsigned dtypes;       /* bit (1 << csa_dtype) per dtype it runs natively */
  unsigned dtypes_cast;  /* dtypes it takes by running as bf16 and casting back */
  int max_head_dim;      /* largest D (and D_v) */
  const int *head_dims;  /* NULL: any D up to max_head_dim; else a 0-ended list */
  int gpu_half_head_dim_multiple; /* CUDA / ROCm with fp16 / bf16: D and D_v must be
                                     multiples of this (0: any) */
  int dv_differs;        /* D_v != D supported */
  int gqa;               /* H_kv < H supported without copying k / v */
  int causal;            /* CSA_CAUSAL_* */
  int noncausal_min_major; /* library versions below this major take causal calls
                              only (0: no rule); facts.lib_major says the version */
  int lse;               /* can return the log-sum-exp */
  int autograd;          /* has a backward */
  int lossy;             /* quantizes (int8 QK): excluded in exact-only mode */
  const char *library;   /* what must import for it to be available */
  const char *noncausal_why; /* reason given when noncausal_min_major declines */
} csa__backend_caps;

/* The facts of one call.  Python fills this; nothing here touches tensors. */
typedef struct csa__dispatch_facts {
  int device_type;       /* csa_device_type of q (ROCm: CSA_DEVICE_ROCM) */
  int sm;                /* CUDA: major*10+minor of q's own device; 0 elsewhere */
  int dtype;             /* csa_dtype of q */
  int64_t head_dim, head_dim_v, heads, heads_kv;
  int causal;            /* causal mask requested */
  int lengths_equal;     /* every L_q == L_kv is known (top-left causal is right) */
  int lse;               /* LSE requested */
  int grad;              /* autograd is recording and an input requires grad */
  int exact_only;        /* refuse lossy backends */
  unsigned available;    /* bit per backend whose library imports */
  unsigned disabled;     /* bit per backend the environment excludes (ComfyUI flags) */
  int prefer;            /* backend moved to the front if capable (ComfyUI flag), or -1 */
  int forced;            /* only this backend (backend=, env, use_backend), or -1 */
  int native_cuda;       /* the native CUDA kernels can run on q's device */
  const char *native_cuda_why; /* why not (NULL: "this build has no CUDA kernels") */
  int lib_major[CSA_BACKEND_COUNT]; /* major version of each backend's library (0: unknown) */
  int rows;              /* csa__rows_class of the call (csa__dispatch_rows) */
} csa__dispatch_facts;

/* Calls whose head dim is at most this are where the native CUDA kernel was
 * measured ahead of every peer (its short-D path: packed f16x2 exponentials,
 * row sums from the matrix unit); the policy table may place native
 * differently there ("small-head" calls). */
#define CSA_DISPATCH_SMALL_HEAD 32

/* The shape of a call's query rows, known from B and T_q alone (no length
 * is read, so no sync): which kernel family leads depends on it (the
 * native placement rules in dispatch.c). */
typedef enum csa__rows_class {
  CSA_ROWS_ONE = 0,       /* B <= 1: one sequence */
  CSA_ROWS_FEW_LONG = 1,  /* 2 <= B <= CSA_DISPATCH_FEW, mean length above the short bound */
  CSA_ROWS_MANY_LONG = 2, /* B > CSA_DISPATCH_FEW, mean length above the short bound */
  CSA_ROWS_SHORT = 3      /* mean length T_q / B <= CSA_DISPATCH_SHORT_ROWS */
} csa__rows_class;
#define CSA_DISPATCH_SHORT_ROWS 96
#define CSA_DISPATCH_FEW 8
int csa__dispatch_rows(int64_t batch, int64_t total_q);

#define CSA_DISPATCH_REASON_MAX 160

typedef struct csa__dispatch_result {
  int n;                               /* number of candidates */
  int order[CSA_BACKEND_COUNT];        /* candidates, best first */
  char reason[CSA_BACKEND_COUNT][CSA_DISPATCH_REASON_MAX]; /* "" for candidates */
  const char *policy;                  /* the device-class policy row that placed native */
} csa__dispatch_result;

/* The constraint row of backend b (NULL if out of range). */
const csa__backend_caps *csa__backend_caps_get(int b);
/* Backend id from its name, or -1. */
int csa__backend_from_name(const char *name);

/* Priority order for the call's device class (before constraints), the
 * native backend placed by the first native placement rule that matches
 * the facts; fills order[CSA_BACKEND_COUNT] and returns the rule's
 * description. */
const char *csa__dispatch_priority(const csa__dispatch_facts *f, int order[CSA_BACKEND_COUNT]);

/* The walk: for each backend in priority order, every constraint is checked
 * against the facts; the first one that fails becomes that backend's reason
 * and the backend is dropped.  CSA_EINVAL for malformed facts (bad device,
 * forced/prefer out of range).  A result with n == 0 is not an error: the
 * caller raises NoCapableBackendError with the reasons. */
int csa__dispatch_select(const csa__dispatch_facts *f, csa__dispatch_result *r);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CORE_DISPATCH_H */
