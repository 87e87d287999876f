/*
 * peak_amx.c — the bf16 AMX tile peak of this machine, measured with a
 * register-only loop: TDPBF16PS on tiles loaded once, no memory traffic in
 * the timed loop.  The AMX counterpart of peak_cpu.c (float32 FMA,
 * vdpbf16ps); bench_cpu.py holds the bf16 rows of the AMX kernel against it.
 *
 *   cc -O2 -mamx-tile -mamx-bf16 -pthread peak_amx.c -o peak_amx && ./peak_amx THREADS [RUNS]
 *
 * Prints "bf16_amx GFLOPS" for THREADS cores (FLOPs each thread did per
 * second of its own CPU time, summed, best of RUNS runs; default 10), or,
 * where the CPU lacks AMX-BF16 or the OS does not grant the tile state,
 * "bf16_amx unavailable (why)" and exits 0, so that a script can run it
 * anywhere.
 *
 * One TDPBF16PS on full tiles (A: 16 rows x 32 bf16, B: 16 rows of 16 bf16
 * pairs, C: 16 x 16 float32) does 16 * 16 * 32 multiply-adds:
 *   FLOPs = 2 * 16 * 16 * 32 = 16384.
 * Two loops, the better one reported (each on stderr):
 *   1x6  six accumulator tiles (0-5) on the same A (6) and B (7): the
 *        products are independent (each C depends only on its own previous
 *        value), six chains to cover the latency of TDPBF16PS, which Intel
 *        documents as several times its issue interval;
 *   2x2  the blocking a matrix product uses: C tiles 0-3 = A tiles 4, 5
 *        times B tiles 6, 7 (four chains, two operand tiles of each kind).
 * All 8 tiles of palette 1, loaded once before the timed loop.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NACC 6
#define ITERS 400000L
#define FLOPS_PER_OP (2.0 * 16 * 16 * 32)

typedef struct tilecfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tilecfg;

static volatile float sink;

static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Why AMX-BF16 cannot run here, or NULL if it can (asks Linux for the tile
 * data state, arch_prctl ARCH_REQ_XCOMP_PERM with XTILEDATA = feature 18:
 * without it the first tile instruction faults). */
static const char *amx_unavailable(char *buf, size_t n) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7)
    return "no CPUID leaf 7";
  __cpuid_count(7, 0, a, b, c, d);
  if (!((d >> 22) & 1) || !((d >> 24) & 1))
    return "CPUID: no AMX-BF16 / AMX-TILE";
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) {
    snprintf(buf, n, "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): %s", strerror(errno));
    return buf;
  }
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0x60000) != 0x60000) {
    snprintf(buf, n, "XCR0 = %#x: tile state not enabled", lo);
    return buf;
  }
  return NULL;
}

static int variant_2x2;

static void *amx_loop(void *arg) {
  /* operands: A rows of bf16 in [-1, 1), B likewise (never zeros: a unit may
   * take a shortcut on them); 64-byte rows */
  static _Thread_local uint16_t a[16 * 32] __attribute__((aligned(64)));
  static _Thread_local uint16_t bm[16 * 32] __attribute__((aligned(64)));
  static _Thread_local float c[16 * 16] __attribute__((aligned(64)));
  uint32_t x = 12345u + (uint32_t)(uintptr_t)arg;
  for (int i = 0; i < 16 * 32; i++) {
    x = x * 1664525u + 1013904223u;
    float fa = (float)(int32_t)(x >> 8) / 8388608.0f; /* [-1, 1) */
    x = x * 1664525u + 1013904223u;
    float fb = (float)(int32_t)(x >> 8) / 8388608.0f;
    uint32_t ua, ub;
    memcpy(&ua, &fa, 4), memcpy(&ub, &fb, 4);
    a[i] = (uint16_t)(ua >> 16), bm[i] = (uint16_t)(ub >> 16);
  }
  tilecfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  /* not _tile_loadconfig / _tile_loadd: GCC's declare too little of the
   * memory they read (csrc/cpu/kernel_amx.c says more) */
  __asm__ volatile("ldtilecfg\t%0" : : "m"(cfg));
  __asm__ volatile("tileloadd\t(%0,%1,1), %%tmm6" : : "r"(a), "r"((int64_t)64) : "memory");
  __asm__ volatile("tileloadd\t(%0,%1,1), %%tmm7" : : "r"(bm), "r"((int64_t)64) : "memory");
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  if (variant_2x2) {
    __asm__ volatile("tileloadd\t(%0,%1,1), %%tmm4" : : "r"(bm), "r"((int64_t)64) : "memory");
    __asm__ volatile("tileloadd\t(%0,%1,1), %%tmm5" : : "r"(a), "r"((int64_t)64) : "memory");
  } else {
    _tile_zero(4);
    _tile_zero(5);
  }
  const double t0 = thread_cpu_now();
  if (variant_2x2) /* 6 products per round as in 1x6: the same FLOPs */
    for (long it = 0; it < ITERS / 2 * 3; it++) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  else
    for (long it = 0; it < ITERS; it++) {
      _tile_dpbf16ps(0, 6, 7);
      _tile_dpbf16ps(1, 6, 7);
      _tile_dpbf16ps(2, 6, 7);
      _tile_dpbf16ps(3, 6, 7);
      _tile_dpbf16ps(4, 6, 7);
      _tile_dpbf16ps(5, 6, 7);
    }
  const double dt = thread_cpu_now() - t0;
  /* keep the results alive */
  float s = 0;
  _tile_stored(0, c, 64);
  s += c[0];
  _tile_stored(5, c, 64);
  s += c[255];
  _tile_release();
  sink = s;
  *(double *)arg = dt;
  return NULL;
}

int main(int argc, char **argv) {
  int nth = argc > 1 ? atoi(argv[1]) : 1;
  if (nth < 1 || nth > 256)
    nth = 1;
  int runs = argc > 2 ? atoi(argv[2]) : 10;
  if (runs < 1)
    runs = 1;
  char why[160];
  const char *no = amx_unavailable(why, sizeof why);
  if (no) {
    printf("bf16_amx unavailable (%s)\n", no);
    return 0;
  }
  double best = 0, per_op_ns = 0, vbest[2] = {0, 0};
  for (int r = 0; r < 2 * runs; r++) {
    variant_2x2 = r & 1;
    pthread_t t[256];
    double cpu[256];
    for (int i = 0; i < nth; i++) pthread_create(&t[i], NULL, amx_loop, &cpu[i]);
    for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
    double g = 0, worst = 0;
    for (int i = 0; i < nth; i++) {
      g += (double)ITERS * NACC * FLOPS_PER_OP / cpu[i] * 1e-9;
      worst = cpu[i] > worst ? cpu[i] : worst;
    }
    if (g > best) {
      best = g;
      per_op_ns = worst / ((double)ITERS * NACC) * 1e9;
    }
    vbest[variant_2x2] = g > vbest[variant_2x2] ? g : vbest[variant_2x2];
  }
  fprintf(stderr, "peak_amx: 1x6 %.1f, 2x2 %.1f GFLOP/s\n", vbest[0], vbest[1]);
  printf("bf16_amx %.1f\n", best);
  /* on stderr: what one tile product costs (cycles = ns x GHz) */
  fprintf(stderr, "peak_amx: %d threads, %.2f ns per TDPBF16PS per thread\n", nth, per_op_ns);
  return 0;
}
