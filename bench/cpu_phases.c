/*
 * cpu_phases.c — where one thread's time goes inside the CPU kernel's items,
 * phase by phase (kernel.inc.h's CSA_K_PHASE hook, timed with the TSC), on
 * packed [T, H, D] inputs of many sequences of random lengths: what short
 * sequences pay that long ones do not.
 *
 *   cmake -S tests/c -B build/rel -DCSA_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build/rel --target csa_core
 *   cc -O2 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mamx-tile -mamx-bf16 \
 *      -mfma -mf16c -Iinclude -Icsrc -Icsrc/cpu bench/cpu_phases.c build/rel/libcsa_core.a \
 *      -lm -pthread -o cpu_phases     (or -mavx2 -mfma -mf16c: the AVX2 kernel)
 *   ./cpu_phases D H f32|bf16 N LO HI [calls] [packed|heads]
 *
 * N sequences of lengths uniform in [LO, HI] (a fixed generator; self
 * attention, not causal), H heads of dim D = D_v, q, k, v and out packed
 * [T, H, D] (rows of one head H*D elements apart, as torch hands them
 * over) or `heads`: [H, T, D] memory viewed as [T, H, D] (rows of one head
 * adjacent, what the strided rows cost by difference).  Runs every item of the
 * call in order on this thread, `calls` times (default 5, after one
 * warm-up), and prints per phase its share of the TSC cycles and its
 * microseconds per call (median call), then GFLOP/s of the whole.  The
 * driver's prefetch of the next item's rows (attn_cpu.c) is not in this
 * loop; everything else is the kernel as built into the package.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

static uint64_t csa_ph_last, csa_ph_acc[16];
#define CSA_K_PHASE(p)                  \
  do {                                  \
    const uint64_t now_ = __rdtsc();    \
    csa_ph_acc[(p)] += now_ - csa_ph_last; \
    csa_ph_last = now_;                 \
  } while (0)

/* the kernel of the package, built into this file with the phase hook */
#if defined(__AVX512BF16__)
#include "cpu/kernel_avx512bf16.c"
#define KERNEL_ITEM csa__k_item
#define KERNEL_NAME "avx512bf16"
#else
#include "cpu/cpu_attn.h"
#include "cpu/simd_avx2.h"
#include "cpu/kernel_common.inc.h"
#define CSA_K_ISA CSA_ISA_AVX2
#define CSA_K_KERNEL csa__bench_kernel
const csa__cpu_kernel CSA_K_KERNEL;
#include "cpu/kernel.inc.h"
#define KERNEL_ITEM csa__k_item
#define KERNEL_NAME "avx2"
#endif

static const char *phase_name[CSA__K_PH_COUNT] = {"between items", "set-up, Q pack", "K/V pack",
                                                  "prefetch", "scores", "softmax", "output",
                                                  "finish"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 11;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s D H f32|bf16 N LO HI [calls] [packed|heads]\n", argv[0]);
    return 2;
  }
  const int64_t d = atoll(argv[1]), heads = atoll(argv[2]), n = atoll(argv[4]);
  const int dtype = strcmp(argv[3], "bf16") == 0 ? CSA_BFLOAT16 : CSA_FLOAT32;
  const int64_t lo = atoll(argv[5]), hi = atoll(argv[6]);
  const int calls = argc > 7 ? atoi(argv[7]) : 5;
  const int heads_major = argc > 8 && strcmp(argv[8], "heads") == 0;
  if (d < 16 || d > CSA__CPU_MAX_D || d % 2 || heads < 1 || n < 1 || lo < 1 || hi < lo ||
      calls < 1 || calls > 100 || n * hi > INT32_MAX / 2) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  int32_t *cu = (int32_t *)malloc((size_t)(n + 1) * sizeof(int32_t));
  if (cu == NULL)
    return 1;
  uint64_t seed = 7;
  double flops = 0;
  cu[0] = 0;
  for (int64_t b = 0; b < n; b++) {
    const int64_t len = lo + (int64_t)(lcg(&seed) % (uint64_t)(hi - lo + 1));
    cu[b + 1] = cu[b] + (int32_t)len;
    flops += 4.0 * (double)len * (double)len * (double)heads * (double)d;
  }
  const int64_t tokens = cu[n];
  const size_t esz = csa_dtype_size(dtype), elems = (size_t)(tokens * heads * d);
  char *q = (char *)malloc(elems * esz), *k = (char *)malloc(elems * esz);
  char *v = (char *)malloc(elems * esz), *o = (char *)malloc(elems * esz);
  if (!q || !k || !v || !o)
    return 1;
  for (size_t i = 0; i < elems; i++) {
    const float x[3] = {(float)((double)lcg(&seed) * 0x1p-53 * 2 - 1),
                        (float)((double)lcg(&seed) * 0x1p-53 * 2 - 1),
                        (float)((double)lcg(&seed) * 0x1p-53 * 2 - 1)};
    char *dst[3] = {q, k, v};
    for (int t = 0; t < 3; t++) {
      if (dtype == CSA_FLOAT32)
        ((float *)dst[t])[i] = x[t];
      else
        ((uint16_t *)dst[t])[i] = csa__f32_to_bf16(x[t]);
    }
  }
  memset(o, 0, elems * esz);

  csa__cpu_call c;
  memset(&c, 0, sizeof c);
  c.q = q, c.k = k, c.v = v, c.out = o;
  c.q_st = c.k_st = c.v_st = c.o_st = heads_major ? d : heads * d;
  c.q_sh = c.k_sh = c.v_sh = c.o_sh = heads_major ? tokens * d : d;
  c.cu_q = c.cu_kv = cu;
  c.batch = n, c.heads = heads, c.d = c.dv = d, c.group = 1;
  c.dtype = dtype;
  c.scale_log2 = CSA__CPU_LOG2E / sqrtf((float)d);
  c.tiles = csa__cpu_item_tiles(d, d);
  for (int64_t b = 0; b < n; b++) c.max_kv = CSA_MAX(c.max_kv, (int64_t)(cu[b + 1] - cu[b]));
  /* the items in the driver's order: sequence, head, row tile */
  const int64_t rows = (int64_t)c.tiles * CSA__CPU_ROWS;
  int64_t nitems = 0;
  for (int64_t b = 0; b < n; b++) nitems += heads * CSA_CEIL_DIV((int64_t)(cu[b + 1] - cu[b]), rows);
  csa__cpu_item *items = (csa__cpu_item *)malloc((size_t)nitems * sizeof *items);
  const size_t sbytes = (csa__k_scratch_bytes(&c) + 63) / 64 * 64;
  void *scratch = aligned_alloc(64, sbytes);
  if (items == NULL || scratch == NULL)
    return 1;
  int64_t m = 0;
  for (int64_t b = 0; b < n; b++)
    for (int64_t h = 0; h < heads; h++)
      for (int64_t r0 = 0; r0 < cu[b + 1] - cu[b]; r0 += rows, m++) {
        items[m].b = b, items[m].h = h, items[m].r0 = r0;
        items[m].nr = CSA_MIN(rows, (int64_t)(cu[b + 1] - cu[b]) - r0);
      }

  double wall[100], cyc[100][CSA__K_PH_COUNT];
  for (int call = -1; call < calls; call++) {
    memset(scratch, 0, CSA__CPU_SCRATCH_HEAD); /* as the driver does per call */
    memset(csa_ph_acc, 0, sizeof csa_ph_acc);
    const double t0 = now();
    csa_ph_last = __rdtsc();
    for (int64_t i = 0; i < nitems; i++)
      KERNEL_ITEM(&c, &items[i], i + 1 < nitems ? &items[i + 1] : NULL, scratch);
    if (call < 0)
      continue; /* warm-up */
    wall[call] = now() - t0;
    for (int p = 0; p < CSA__K_PH_COUNT; p++) cyc[call][p] = (double)csa_ph_acc[p];
  }
  /* the median call by wall time, and its phases */
  double sorted[100];
  memcpy(sorted, wall, (size_t)calls * sizeof(double));
  qsort(sorted, (size_t)calls, sizeof(double), cmp_double);
  int med = 0;
  for (int i = 0; i < calls; i++)
    if (wall[i] == sorted[calls / 2])
      med = i;
  double total = 0;
  for (int p = 0; p < CSA__K_PH_COUNT; p++) total += cyc[med][p];
  printf("%s, D %lld, H %lld, %s, %s, %lld sequences of %lld-%lld (%lld tokens, %lld items), "
         "1 thread: %.1f ms per call, %.1f GFLOP/s\n",
         KERNEL_NAME, (long long)d, (long long)heads, dtype == CSA_FLOAT32 ? "float32" : "bfloat16",
         heads_major ? "heads" : "packed",
         (long long)n, (long long)lo, (long long)hi, (long long)tokens, (long long)nitems,
         1e3 * wall[med], flops / wall[med] * 1e-9);
  for (int p = 0; p < CSA__K_PH_COUNT; p++)
    printf("  %-16s %5.1f %%  %9.1f us\n", phase_name[p], 100.0 * cyc[med][p] / total,
           1e6 * wall[med] * cyc[med][p] / total);
  free(items), free(scratch), free(cu), free(q), free(k), free(v), free(o);
  return 0;
}
