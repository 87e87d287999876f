/*
 * amx_tile.c — the steps of the bf16 AMX path (kernel_avx512bf16.c on tiles)
 * on one item's row tiles, every operand packed and in cache: where a tile
 * step's time goes between the tile products and the AVX-512 softmax.
 *
 *   cmake -S tests/c -B build/rel -DCSA_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release
 *   cmake --build build/rel --target csa_core
 *   cc -O2 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mamx-tile -mamx-bf16 \
 *      -mfma -mf16c -Iinclude -Icsrc -Icsrc/cpu bench/amx_tile.c build/rel/libcsa_core.a \
 *      -lm -pthread -o amx_tile
 *   ./amx_tile D [tiles] [iterations]
 *
 * For D = D_v, `tiles` row tiles of CSA__CPU_ROWS rows and one block of
 * CSA__CPU_KEYS keys (bf16 inputs), times on this thread (CPU time,
 * `iterations` block steps per sample, 15 samples; median and best):
 *   scores     S^T = K Q^T on tiles, every row tile
 *   copy       the copy of the scores that each softmax sample starts from
 *   softmax    the online softmax of every row tile, writing bf16 P^T pairs
 *              (each from a fresh copy of the scores: the copy is in the time;
 *              subtract the line above)
 *   output     O^T += V^T P^T on tiles
 *   in turn    the three, tile after tile, as the kernel runs them
 *   staggered  the same with the next tile's scores between a tile's softmax
 *              and its output (two score buffers), so that the softmax's P^T
 *              stores and the scores' tile stores have a product's time to
 *              drain before a tile load or a vector load reads them back
 * as microseconds per tile step and GFLOP/s (4 * ROWS * KEYS * D per tile
 * step for the two products); for the copy and the softmax also core cycles
 * per 16 scores, at the clock the FMA peak timed beside the samples implies
 * (cpu_peak.h: 2 FMA units of 16 lanes, 64 FLOPs per cycle).  Needs a CPU with AMX and a kernel that grants
 * the tile state (Linux >= 5.16).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* the kernel of the package, built into this file (its hooks are static) */
#include "cpu/kernel_avx512bf16.c"

#include "bench_tiles.h"
#include "cpu_peak.h"

#define SAMPLES 15

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint16_t bf16_rand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return csa__f32_to_bf16((float)((double)(*s >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0));
}

enum { STEP_SCORES, STEP_COPY, STEP_SOFTMAX, STEP_OUTPUT, STEP_TURN, STEP_STAGGER, NSTEPS };
static const char *step_name[NSTEPS] = {"scores", "copy", "softmax", "output", "in turn",
                                        "staggered"};

int main(int argc, char **argv) {
  const int64_t d = argc > 1 ? atoll(argv[1]) : 64;
  const int ntile = argc > 2 ? atoi(argv[2]) : 4;
  const long iters = argc > 3 ? atol(argv[3]) : 300;
  if (d < 16 || d > CSA__CPU_MAX_D || d % 2 || ntile < 1 || ntile > CSA__CPU_MAX_TILES ||
      iters <= 0) {
    fprintf(stderr, "usage: %s D (even, >= 16) [tiles 1..%d] [iterations]\n", argv[0],
            CSA__CPU_MAX_TILES);
    return 2;
  }
  if (!csa__cpu_amx_ready()) {
    fprintf(stderr, "amx_tile: no AMX tiles usable in this process\n");
    return 2;
  }
  const int64_t lkv = 4 * CSA__CPU_KEYS; /* a sequence of several key blocks */
  csa__cpu_call c;
  memset(&c, 0, sizeof c);
  c.d = c.dv = d;
  c.dtype = CSA_BFLOAT16;
  c.scale_log2 = CSA__CPU_LOG2E / sqrtf((float)d);
  c.tiles = ntile;
  c.max_kv = lkv;
  int32_t cu_q[2] = {0, (int32_t)(ntile * CSA__CPU_ROWS)}, cu_kv[2] = {0, (int32_t)lkv};
  c.cu_q = cu_q, c.cu_kv = cu_kv;
  csa__k_mode mode;
  csa__bf16_mode(&c, &mode);
  if (mode.kind != CSA__K_TILES) {
    fprintf(stderr, "amx_tile: the kernel does not pick AMX tiles for D = %lld\n", (long long)d);
    return 2;
  }
  const size_t bytes = csa__k_scratch_bytes(&c);
  float *base = (float *)aligned_alloc(64, (bytes + 63) / 64 * 64);
  uint16_t *kv = (uint16_t *)malloc((size_t)(CSA__CPU_KEYS * 2 * d) * sizeof(uint16_t));
  float *s0 = (float *)aligned_alloc(64, (size_t)ntile * CSA__CPU_KEYS * CSA__CPU_LD * sizeof(float));
  if (base == NULL || kv == NULL || s0 == NULL)
    return 1;
  memset(base, 0, bytes);
  uint64_t seed = 1;
  for (int64_t i = 0; i < CSA__CPU_KEYS * 2 * d; i++) kv[i] = bf16_rand(&seed);
  csa__k_scratch sp;
  csa__k_layout(&c, &sp, base);
  c.q_st = c.k_st = c.v_st = d; /* rows of one head, as the packing steps read them */
  csa__bf16_begin(&mode);
  /* K and V of one block, packed the way the kernel packs them */
  csa__bf16_pack_kv(&c, &mode, (const char *)kv, (const char *)(kv + CSA__CPU_KEYS * d),
                    CSA__CPU_KEYS, &sp);
  csa__k_tile tiles[CSA__CPU_MAX_TILES];
  uint16_t *qrows = (uint16_t *)malloc((size_t)(CSA__CPU_ROWS * d) * sizeof(uint16_t));
  if (qrows == NULL)
    return 1;
  csa_bench_tiles(&sp, tiles, ntile, lkv);
  for (int i = 0; i < ntile; i++) {
    csa__k_tile *t = &tiles[i];
    for (int64_t x = 0; x < CSA__CPU_ROWS * d; x++) qrows[x] = bf16_rand(&seed);
    csa__bf16_pack_q(&c, &mode, (const char *)qrows, t, sp.kc);
    /* the scores each softmax sample starts from, and a first block so that
     * m is set (later blocks then run as in a long sequence: no rescale) */
    csa__bf16_scores(&c, &mode, NULL, &sp, t, CSA__CPU_KEYS);
    memcpy(s0 + (size_t)i * CSA__CPU_KEYS * CSA__CPU_LD, sp.s,
           (size_t)CSA__CPU_KEYS * CSA__CPU_LD * sizeof(float));
    csa__k_softmax_block(&c, &mode, sp.s, t, CSA__CPU_KEYS);
    csa__bf16_output(&c, &mode, &sp, t, CSA__CPU_KEYS, NULL);
  }
  const double flop = 4.0 * CSA__CPU_ROWS * CSA__CPU_KEYS * (double)d; /* both products */
  const int64_t cn = CSA__CPU_KEYS;
  /* the second score buffer of the staggered order (sized as the layout's) */
  csa__k_scratch sp2 = sp;
  sp2.s = (float *)aligned_alloc(64, (size_t)CSA__CPU_KEYS * 2 * CSA__CPU_LD * sizeof(float));
  if (sp2.s == NULL)
    return 1;
  memset(sp2.s, 0, (size_t)CSA__CPU_KEYS * 2 * CSA__CPU_LD * sizeof(float));
  const csa__k_scratch *buf[2] = {&sp, &sp2};
  for (int step = 0; step < NSTEPS; step++) {
    double us[SAMPLES], ghz[SAMPLES];
    for (int run = 0; run < SAMPLES; run++) {
      const double p0 = csa_bench_fma_peak(200000);
      const double t0 = csa_bench_thread_now();
      for (long n = 0; n < iters && step == STEP_STAGGER; n++) {
        csa__bf16_scores(&c, &mode, NULL, buf[0], &tiles[0], cn);
        for (int i = 0; i < ntile; i++) {
          csa__k_softmax_block(&c, &mode, buf[i & 1]->s, &tiles[i], cn);
          if (i + 1 < ntile)
            csa__bf16_scores(&c, &mode, NULL, buf[(i + 1) & 1], &tiles[i + 1], cn);
          csa__bf16_output(&c, &mode, buf[i & 1], &tiles[i], cn, tiles[i].corr);
        }
      }
      for (long n = 0; n < iters && step != STEP_STAGGER; n++) {
        for (int i = 0; i < ntile; i++) {
          const csa__k_tile *t = &tiles[i];
          if (step == STEP_SCORES || step == STEP_TURN)
            csa__bf16_scores(&c, &mode, NULL, &sp, t, cn);
          if (step == STEP_SOFTMAX || step == STEP_COPY)
            memcpy(sp.s, s0 + (size_t)i * CSA__CPU_KEYS * CSA__CPU_LD,
                   (size_t)CSA__CPU_KEYS * CSA__CPU_LD * sizeof(float));
          if (step == STEP_SOFTMAX || step == STEP_TURN)
            csa__k_softmax_block(&c, &mode, sp.s, t, cn);
          if (step == STEP_OUTPUT || step == STEP_TURN)
            csa__bf16_output(&c, &mode, &sp, t, cn, t->corr);
        }
      }
      us[run] = (csa_bench_thread_now() - t0) / ((double)iters * ntile) * 1e6;
      ghz[run] = 0.5 * (p0 + csa_bench_fma_peak(200000)) / 64.0;
    }
    qsort(us, SAMPLES, sizeof(double), cmp_double);
    qsort(ghz, SAMPLES, sizeof(double), cmp_double);
    const double f = step == STEP_SCORES || step == STEP_OUTPUT ? flop / 2
                     : step == STEP_SOFTMAX || step == STEP_COPY ? 0.0
                                                                : flop;
    printf("D %3lld, %d tiles: %-9s %7.3f us per tile step (best %7.3f)", (long long)d, ntile,
           step_name[step], us[SAMPLES / 2], us[0]);
    if (f > 0)
      printf(", %6.1f GFLOP/s (best %6.1f)", f / us[SAMPLES / 2] * 1e-3, f / us[0] * 1e-3);
    else /* 16-lane vectors of scores per tile step: ROWS / 16 * KEYS */
      printf(", %5.1f cycles per 16 scores at %.2f GHz", us[SAMPLES / 2] * 1e3 * ghz[SAMPLES / 2] /
             (CSA__CPU_ROWS / 16 * CSA__CPU_KEYS), ghz[SAMPLES / 2]);
    printf("\n");
  }
  csa__bf16_end(&mode);
  free(sp2.s);
  free(qrows);
  free(s0);
  free(kv);
  free(base);
  return 0;
}
