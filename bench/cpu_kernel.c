/*
 * cpu_kernel.c — the native CPU kernel alone (csa_attn_cpu, no Python), timed
 * per CPU second on one shape, for comparing builds and variants of the
 * kernel with nothing else in the measurement.
 *
 *   cmake -S tests/c -B build/rel -DCSA_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build/rel --target csa_core
 *   cc -O2 -mavx2 -mfma -Iinclude -Icsrc bench/cpu_kernel.c build/rel/libcsa_core.a -lm -pthread \
 *      -o build/cpu_kernel
 *   build/cpu_kernel LQ LKV H D [dtype f32|bf16] [threads] [calls] [packed|heads|kvheads] [B]
 *
 * B sequences (default 1) of LQ queries against LKV keys each, H heads of
 * dim D (D_v = D), not causal; q, k, v in one of three layouts:
 *   packed  [T, H, D] rows (how torch hands over a [tokens, heads, dim]
 *           tensor): rows of one head lie H*D elements apart
 *   heads   [H, T, D] memory viewed as [T, H, D]: rows of one head adjacent
 *   kvheads k and v as `heads`, q as `packed`
 * so the differences are what the strided rows cost.
 *
 * Prints the median and best of `calls` calls: ms of wall time, ms of CPU
 * time of the process (all threads), GFLOP/s per CPU second (4*LQ*LKV*H*D
 * FLOPs per sequence), and that rate as a share of the FMA peak of the calling thread
 * measured just before and after each call (cpu_peak.h; meaningful for one
 * thread, where the call runs on the thread measured).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "csa/csa.h"
#include "cpu_peak.h"

static double now(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* [T, H, D] view of n*h*d elements: packed rows, or per-head blocks */
static csa_tensor view(void *data, int dtype, int64_t t, int64_t h, int64_t d, int heads_major) {
  csa_tensor v;
  memset(&v, 0, sizeof v);
  v.data = data;
  v.dtype = dtype;
  v.device_type = CSA_DEVICE_CPU;
  v.ndim = 3;
  v.shape[0] = t, v.shape[1] = h, v.shape[2] = d;
  v.strides[0] = heads_major ? d : h * d;
  v.strides[1] = heads_major ? t * d : d;
  v.strides[2] = 1;
  return v;
}

static void *fill(int64_t n, int dtype, uint64_t seed) {
  const size_t es = csa_dtype_size(dtype);
  unsigned char *p = (unsigned char *)malloc((size_t)n * es);
  if (p == NULL)
    return NULL;
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const float x = (float)((double)(seed >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
    if (dtype == CSA_FLOAT32)
      ((float *)p)[i] = x;
    else
      ((uint16_t *)p)[i] = csa__f32_to_bf16(x);
  }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s LQ LKV H D [f32|bf16] [threads] [calls] [packed|heads|kvheads] [B]\n",
            argv[0]);
    return 2;
  }
  const int64_t lq = atoll(argv[1]), lkv = atoll(argv[2]), h = atoll(argv[3]), d = atoll(argv[4]);
  const int dtype = argc > 5 && strcmp(argv[5], "bf16") == 0 ? CSA_BFLOAT16 : CSA_FLOAT32;
  const int threads = argc > 6 ? atoi(argv[6]) : 1;
  const int calls = argc > 7 ? atoi(argv[7]) : 5;
  const char *layout = argc > 8 ? argv[8] : "packed";
  const int64_t nb = argc > 9 ? atoll(argv[9]) : 1;
  const int heads_major = strcmp(layout, "heads") == 0, kv_heads = heads_major || strcmp(layout, "kvheads") == 0;
  if (lq <= 0 || lkv <= 0 || h <= 0 || d <= 0 || calls <= 0 || calls > 1000 || nb <= 0 ||
      nb * (lq > lkv ? lq : lkv) > INT32_MAX) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  const int64_t tq = nb * lq, tkv = nb * lkv;
  void *q = fill(tq * h * d, dtype, 1), *k = fill(tkv * h * d, dtype, 2),
       *v = fill(tkv * h * d, dtype, 3), *o = fill(tq * h * d, dtype, 4);
  int32_t *cu_q = (int32_t *)malloc((size_t)(nb + 1) * sizeof(int32_t));
  int32_t *cu_kv = (int32_t *)malloc((size_t)(nb + 1) * sizeof(int32_t));
  if (!q || !k || !v || !o || !cu_q || !cu_kv) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (int64_t b = 0; b <= nb; b++) cu_q[b] = (int32_t)(b * lq), cu_kv[b] = (int32_t)(b * lkv);
  csa_attn_params p;
  memset(&p, 0, sizeof p);
  p.q = view(q, dtype, tq, h, d, heads_major);
  p.k = view(k, dtype, tkv, h, d, kv_heads);
  p.v = view(v, dtype, tkv, h, d, kv_heads);
  p.out = view(o, dtype, tq, h, d, 0);
  csa_tensor cq = view(cu_q, CSA_INT32, nb + 1, 1, 1, 0), ck = view(cu_kv, CSA_INT32, nb + 1, 1, 1, 0);
  cq.ndim = ck.ndim = 1;
  p.cu_seqlens_q = cq, p.cu_seqlens_kv = ck;
  p.max_seqlen_q = lq, p.max_seqlen_kv = lkv;
  p.num_threads = threads;
  double wall[1000], cpu[1000], share[1000];
  int st = csa_attn_cpu(&p); /* warm-up: pages of out, caches */
  for (int i = 0; i < calls && st == CSA_OK; i++) {
    const double p0 = csa_bench_fma_peak(1000000);
    const double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    st = csa_attn_cpu(&p);
    cpu[i] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    wall[i] = now(CLOCK_MONOTONIC) - w0;
    share[i] = cpu[i] * (0.5 * (p0 + csa_bench_fma_peak(1000000))); /* CPU s x peak GFLOP/s */
  }
  if (st != CSA_OK) {
    fprintf(stderr, "csa_attn_cpu: %s (%s)\n", csa_status_name(st), csa_errmsg());
    return 1;
  }
  qsort(wall, (size_t)calls, sizeof(double), cmp_double);
  qsort(cpu, (size_t)calls, sizeof(double), cmp_double);
  qsort(share, (size_t)calls, sizeof(double), cmp_double);
  const double flops = 4.0 * (double)nb * (double)lq * (double)lkv * (double)h * (double)d;
  printf("%s B %lld lq %lld lkv %lld H %lld D %lld %s %d threads: wall %.1f ms (best %.1f), cpu %.1f ms "
         "(best %.1f), %.1f GFLOP/s per CPU second (best %.1f), %.1f %% of the FMA peak (best %.1f %%)\n",
         csa_cpu_isa_name(csa_cpu_isa_selected()), (long long)nb, (long long)lq, (long long)lkv, (long long)h,
         (long long)d, layout, threads, 1e3 * wall[calls / 2],
         1e3 * wall[0], 1e3 * cpu[calls / 2], 1e3 * cpu[0], flops / cpu[calls / 2] * 1e-9,
         flops / cpu[0] * 1e-9, 100 * flops * 1e-9 / share[calls / 2], 100 * flops * 1e-9 / share[0]);
  free(q), free(k), free(v), free(o), free(cu_q), free(cu_kv);
  return 0;
}
