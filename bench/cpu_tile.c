/*
 * cpu_tile.c — the steps of the float32 attention kernel (AVX2, or AVX-512
 * where built with -mavx512f) on one item's row tiles, with every operand
 * already packed and in cache: how close the products and the softmax come
 * to the FMA peak without any memory traffic from the caller's tensors.
 *
 *   cc -O2 -mavx2 -mfma -mf16c -Iinclude -Icsrc -Icsrc/cpu bench/cpu_tile.c \
 *      build/rel/libcsa_core.a -lm -o cpu_tile   (csa_core: see cpu_kernel.c)
 *   (AVX-512: -mavx512f -mavx512bw -mavx512dq -mavx512vl in place of -mavx2)
 *   ./cpu_tile D [tiles] [iterations] [blocks]
 *
 * For head dims D = D_v, `tiles` row tiles of CSA__CPU_ROWS rows and one
 * block of CSA__CPU_KEYS keys, times (CPU time of this thread, `iterations`
 * block steps per sample) each step of the kernel's inner loop as
 * kernel.inc.h runs it: S^T = K Q^T, the online softmax, O^T = O^T corr +
 * V^T P^T, and the three together over all tiles (the K/V block shared;
 * with `blocks` > 1 each step takes the next of that many packed K/V
 * blocks, as the kernel reads them from its head cache).
 * Each sample is held against the FMA peak measured just before and after
 * it (cpu_peak.h); prints, per step, the median and the best of 15 samples
 * of us per tile step and of its share of that peak (FLOPs: 2*ROWS*KEYS*D
 * per product).  The best is the figure to compare builds by: a core that
 * shares its caches with another guest's thread only ever slows down.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/cpu_attn.h"
#if defined(__AVX512F__)
#include "cpu/simd_avx512.h"
#define CSA_K_ISA CSA_ISA_AVX512
#else
#include "cpu/simd_avx2.h"
#define CSA_K_ISA CSA_ISA_AVX2
#endif

#include "cpu/kernel_common.inc.h"

#define CSA_K_KERNEL csa__bench_kernel
const csa__cpu_kernel CSA_K_KERNEL;
#include "cpu/kernel.inc.h"

#include "bench_tiles.h"
#include "cpu_peak.h"

#define SAMPLES 15

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*s >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

enum { STEP_SCORES, STEP_SOFTMAX, STEP_OUTPUT, STEP_ALL, NSTEPS };
static const char *step_name[NSTEPS] = {"scores", "softmax", "output", "all three"};

int main(int argc, char **argv) {
  const int64_t d = argc > 1 ? atoll(argv[1]) : 64;
  const int ntile = argc > 2 ? atoi(argv[2]) : 4;
  const long iters = argc > 3 ? atol(argv[3]) : 500;
  const int nblk = argc > 4 ? atoi(argv[4]) : 1;
  if (d <= 0 || d > CSA__CPU_MAX_D || ntile < 1 || ntile > CSA__CPU_MAX_TILES || iters <= 0 ||
      nblk < 1 || nblk > 4096) {
    fprintf(stderr, "usage: %s D [tiles 1..%d] [iterations] [blocks]\n", argv[0],
            CSA__CPU_MAX_TILES);
    return 2;
  }
  csa__cpu_call c;
  memset(&c, 0, sizeof c);
  c.d = c.dv = d;
  c.dtype = CSA_FLOAT32;
  c.scale_log2 = CSA__CPU_LOG2E / sqrtf((float)d);
  c.tiles = ntile;
  const size_t bytes = csa__k_scratch_bytes(&c);
  float *base = (float *)aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (base == NULL)
    return 1;
  uint64_t seed = 1;
  for (size_t i = 0; i < bytes / sizeof(float); i++) base[i] = frand(&seed);
  csa__k_scratch sp;
  csa__k_mode mode;
  csa__k_layout(&c, &sp, base);
  /* blocks > 1: the K/V blocks rotate through that many packed blocks, as
   * they come from a head cache of that many blocks (L2, L3) */
  const size_t blk = sp.kc_size + sp.vc_size;
  float *kvs = (float *)aligned_alloc(64, (size_t)nblk * blk * sizeof(float));
  if (kvs == NULL)
    return 1;
  for (size_t i = 0; i < (size_t)nblk * blk; i++) kvs[i] = frand(&seed);
  csa__f32_mode(&c, &mode);
  csa__k_tile tiles[CSA__CPU_MAX_TILES];
  csa_bench_tiles(&sp, tiles, ntile, CSA__CPU_KEYS);
  const int64_t cn = CSA__CPU_KEYS;
  const double flop = 2.0 * CSA__CPU_ROWS * CSA__CPU_KEYS * (double)d; /* one product */
  for (int step = 0; step < NSTEPS; step++) {
    double us[SAMPLES], share[SAMPLES];
    const double f = step == STEP_ALL ? 2 * flop : step == STEP_SOFTMAX ? 0.0 : flop;
    for (int run = 0; run < SAMPLES; run++) {
      const double p0 = csa_bench_fma_peak(200000);
      const double t0 = csa_bench_thread_now();
      for (long n = 0; n < iters; n++) {
        if (nblk > 1) {
          sp.kc = kvs + (size_t)(n % nblk) * blk;
          sp.vc = sp.kc + sp.kc_size;
        }
        for (int i = 0; i < ntile; i++) {
          const csa__k_tile *t = &tiles[i];
          if (step == STEP_SCORES || step == STEP_ALL)
            csa__f32_scores(&c, &mode, NULL, &sp, t, cn);
          if (step == STEP_SOFTMAX || step == STEP_ALL)
            csa__k_softmax_block(&c, &mode, sp.s, t, cn);
          if (step == STEP_OUTPUT || step == STEP_ALL)
            csa__f32_output(&c, &mode, &sp, t, cn, t->corr);
        }
      }
      const double per = (csa_bench_thread_now() - t0) / ((double)iters * ntile);
      const double peak = 0.5 * (p0 + csa_bench_fma_peak(200000));
      us[run] = per * 1e6;
      share[run] = f / per * 1e-9 / peak;
    }
    qsort(us, SAMPLES, sizeof(double), cmp_double);
    qsort(share, SAMPLES, sizeof(double), cmp_double);
    printf("D %3lld, %d tiles: %-9s %7.2f us per tile step (best %7.2f)", (long long)d, ntile,
           step_name[step], us[SAMPLES / 2], us[0]);
    if (step != STEP_SOFTMAX)
      printf(", %5.1f %% of the FMA peak (best %5.1f %%)", 100 * share[SAMPLES / 2],
             100 * share[SAMPLES - 1]);
    printf("\n");
  }
  free(kvs);
  free(base);
  return 0;
}
