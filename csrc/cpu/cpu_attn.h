/*
 * cpu_attn.h — the interface between the CPU attention driver (attn_cpu.c:
 * validation, work split, threads) and the per-ISA kernels (kernel_*.c).
 *
 * The driver cuts a call into items: one item is up to tiles *
 * CSA__CPU_ROWS query rows of one sequence and one head.  A kernel computes one item completely
 * (all its keys, online softmax, output and LSE rows) using only the
 * per-thread scratch the driver hands it, so items run in any order on any
 * thread.
 */
#ifndef CSA_CPU_ATTN_H
#define CSA_CPU_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Query rows per item: the row tile every kernel keeps its transposed
 * operands in (Q^T, S^T, O^T are [*, CSA__CPU_ROWS] float arrays). */
#define CSA__CPU_ROWS 64
/* Floats from one row of a transposed tile (Q^T, S^T, O^T: [*][ROWS]) to
 * the next: the ROWS lanes and 64 bytes of padding, so that a row spans an
 * odd number of cache lines (5).  With rows 256 bytes apart, a walk down
 * the rows of one column of vectors, as both products make (128 rows of Q^T
 * at D = 128), lands in 16 of the 64 sets of a 32 KiB 8-way L1 and fills
 * them: the other operand's lines then evict it on every pass. */
#ifndef CSA__CPU_LD
#define CSA__CPU_LD (CSA__CPU_ROWS + 16)
#endif
/* Row tiles per item, at most: they share each K/V block while it is in
 * cache, so K and V are read once per item (from the caller's rows, or from
 * the thread's head cache, CSA__CPU_KV_CACHE_BYTES).  A call uses as many
 * as keep the tiles' Q^T and O^T within CSA__CPU_TILE_BYTES
 * (csa__cpu_item_tiles). */
#define CSA__CPU_MAX_TILES 8
/* Bytes of Q^T + O^T of all tiles of an item: 5/8 of a 512 KiB L2 (Zen 3;
 * larger elsewhere), so that they stay there beside the K/V block, S^T and
 * the caller's rows: 8 tiles at D = D_v = 64, 4 at 128, 2 at 256 with rows
 * CSA__CPU_LD floats apart. */
#define CSA__CPU_TILE_BYTES (320 * 1024)
/* Keys per block of the online softmax. */
#define CSA__CPU_KEYS 64
/* Bytes of one thread's head cache at most: a head's K and V packed whole,
 * as the kernel packs a block, kept for the next items of the same head
 * (row tiles of a long sequence, query heads of one GQA group) that run on
 * the thread.  A longer head packs block by block as before. */
#define CSA__CPU_KV_CACHE_BYTES (4 << 20)
/* Bytes at the start of each thread's scratch that the driver zeroes when a
 * call starts (the head cache's record of what it holds). */
#define CSA__CPU_SCRATCH_HEAD 64
/* Largest head dims the kernels take (scratch is sized from the real dims). */
#define CSA__CPU_MAX_D 256
/* log2(e) and ln(2): scores live in base 2 (exp(x) = 2^(x log2 e)), and the
 * LSE goes back to base e. */
#define CSA__CPU_LOG2E 1.4426950408889634f
#define CSA__CPU_LN2 0.69314718055994531f

/* A hint that the line at p is wanted soon (w = 1: to be written), into
 * every cache level; nothing where the compiler has no such builtin. */
#if defined(__GNUC__) || defined(__clang__)
#define CSA__PREFETCH(p, w) __builtin_prefetch((p), (w), 3)
#else
#define CSA__PREFETCH(p, w) ((void)(p))
#endif

/* One validated call, decoded once: byte pointers and element strides. */
typedef struct csa__cpu_call {
  const char *q, *k, *v;
  char *out;
  float *lse;                 /* NULL when not requested */
  int64_t q_st, q_sh;         /* strides of q over tokens and heads (elements) */
  int64_t k_st, k_sh, v_st, v_sh;
  int64_t o_st, o_sh;
  int64_t lse_sh, lse_st;     /* lse [H, T_q] strides */
  const int32_t *cu_q, *cu_kv;
  int64_t batch, heads;       /* B, H */
  int64_t d, dv;              /* head dims */
  int64_t group;              /* H / H_kv: query heads per kv head */
  int dtype;                  /* CSA_FLOAT32 / CSA_FLOAT16 / CSA_BFLOAT16 */
  int causal;
  float scale_log2;           /* softmax scale * log2(e): scores live in base 2 */
  int tiles;                  /* row tiles per item (csa__cpu_item_tiles) */
  int64_t max_kv;             /* keys of the longest sequence */
} csa__cpu_call;

/* Row tiles per item for head dims d, dv: as many as fit CSA__CPU_TILE_BYTES,
 * 1 .. CSA__CPU_MAX_TILES (4 for D = D_v = 128, 8 for 64). */
int csa__cpu_item_tiles(int64_t d, int64_t dv);

/* One unit of work: rows [r0, r0 + nr) of sequence b, query head h. */
typedef struct csa__cpu_item {
  int64_t b, h, r0, nr;
} csa__cpu_item;

typedef struct csa__cpu_kernel {
  int isa;                    /* CSA_ISA_*: its name is csa_cpu_isa_name(isa) */
  /* Bytes of scratch one thread needs for this call (64-byte aligned use;
   * its first CSA__CPU_SCRATCH_HEAD bytes are zero when the call starts, and
   * the same thread's later items see what earlier ones left in it). */
  size_t (*scratch_bytes)(const csa__cpu_call *c);
  /* Computes item it; next is the item this thread runs after it (NULL if
   * not known), whose rows the kernel may ask for while it works. */
  void (*item)(const csa__cpu_call *c, const csa__cpu_item *it, const csa__cpu_item *next,
               void *scratch);
} csa__cpu_kernel;

/* The kernels compiled into this build (defined by kernel_<isa>.c; which ones
 * exist depends on the target architecture, see isa.c). */
extern const csa__cpu_kernel csa__cpu_kernel_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define CSA__CPU_X86 1
extern const csa__cpu_kernel csa__cpu_kernel_avx2;
extern const csa__cpu_kernel csa__cpu_kernel_avx512;
extern const csa__cpu_kernel csa__cpu_kernel_avx512bf16;
#endif
/* AMX tiles (kernel_amx.c): x86-64 Linux with GCC / Clang only. */
#if defined(CSA__CPU_X86) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define CSA__CPU_AMX 1
#else
#define CSA__CPU_AMX 0
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define CSA__CPU_ARM64 1
extern const csa__cpu_kernel csa__cpu_kernel_neon;
#endif

/* 1 if AMX bf16 tiles are present and this process may use them (x86-64
 * Linux; asked once).  The avx512bf16 kernel then runs its bf16 products on
 * tiles. */
int csa__cpu_amx_ready(void);

/* 1 where vdpbf16ps beats float32 FMAs per FLOP (AMD Zen 4/5; see isa.c). */
int csa__cpu_bf16dot_fast(void);

/* The kernel of an ISA this build has (NULL otherwise). */
const csa__cpu_kernel *csa__cpu_kernel_get(int isa);

/* Runs fn(ctx, ith) for ith = 0 .. nth-1, ith 0 on the calling thread, and
 * returns when all are done.  A thread that cannot be started is skipped, so
 * fn must not rely on every ith running (the attention workers pull work
 * from a shared counter, so any subset finishes the job). */
typedef void (*csa__cpu_worker_fn)(void *ctx, int ith);
void csa__cpu_run_parallel(int nth, csa__cpu_worker_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CPU_ATTN_H */
