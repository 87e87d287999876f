/*
 * peak_cpu.c — this machine's arithmetic peak, measured with register-only
 * loops (no memory traffic): float32 FMA (AVX-512, else AVX2) and, where the
 * CPU has it, AVX512-BF16 vdpbf16ps.  Used by bench_cpu.py for "% of peak".
 *
 *   cc -O2 -march=native -pthread peak_cpu.c -o peak_cpu && ./peak_cpu THREADS [RUNS]
 *
 * Prints one line per kind: "fp32_fma GFLOPS" and "bf16_dot GFLOPS"
 * (FLOPs: an FMA lane is 2, a vdpbf16ps lane is 4) for THREADS cores: the
 * FLOPs each thread did per second of its own CPU time (CLOCK_THREAD_CPUTIME_ID),
 * summed, best of RUNS short runs (default 20).  CPU time, not wall time:
 * on a shared machine the threads are descheduled for whole time slices,
 * which wall time would count as slowness of the core.  bench_cpu.py holds
 * the kernel's FLOPs per CPU second against this.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Independent accumulator chains: enough to cover the FMA latency on every
 * pipe (4 cycles x 2 pipes on Zen 3 and Skylake-X, so >= 8), few enough
 * that they and the two operands stay in registers (16 ymm on AVX2, 32 zmm
 * on AVX-512).  A loop that spills reloads its accumulators from memory
 * and measures the store port, not the FMA units. */
#if defined(__AVX512F__)
#define NACC 24
#else
#define NACC 12
#endif
#define ITERS 10000000L

static volatile float sink;

#if defined(__AVX512F__)
#define VL 16
typedef __m512 vf;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(a) _mm512_reduce_add_ps(a)
#else
#define VL 8
typedef __m256 vf;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float VSUM(__m256 a) {
  float t[8];
  _mm256_storeu_ps(t, a);
  return t[0] + t[7];
}
#endif

static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *fma_loop(void *arg) {
  double t0 = thread_cpu_now();
  vf acc[NACC];
  vf a = VSET(0.999f), b = VSET(1e-7f);
  for (int i = 0; i < NACC; i++) acc[i] = VSET((float)i);
  for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < NACC; i++) acc[i] = VFMA(acc[i], a, b);
  }
  float s = 0;
  for (int i = 0; i < NACC; i++) s += VSUM(acc[i]);
  sink = s;
  *(double *)arg = thread_cpu_now() - t0;
  return NULL;
}

#if defined(__AVX512BF16__)
static void *dot_loop(void *arg) {
  double t0 = thread_cpu_now();
  __m512 acc[NACC];
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33803380);
  for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  float s = 0;
  for (int i = 0; i < NACC; i++) s += _mm512_reduce_add_ps(acc[i]);
  sink = s;
  *(double *)arg = thread_cpu_now() - t0;
  return NULL;
}
#endif

/* GFLOP/s of nth cores: sum over threads of FLOPs per CPU second. */
static double run(void *(*fn)(void *), int nth, double flops_per_thread) {
  pthread_t t[256];
  double cpu[256];
  for (int i = 0; i < nth; i++) pthread_create(&t[i], NULL, fn, &cpu[i]);
  for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
  double g = 0;
  for (int i = 0; i < nth; i++) g += flops_per_thread / cpu[i] * 1e-9;
  return g;
}

int main(int argc, char **argv) {
  int nth = argc > 1 ? atoi(argv[1]) : 1;
  if (nth < 1 || nth > 256)
    nth = 1;
  int runs = argc > 2 ? atoi(argv[2]) : 20;
  if (runs < 1)
    runs = 1;
  double fma = 0, dot = 0;
  for (int r = 0; r < runs; r++) {
    const double g = run(fma_loop, nth, (double)ITERS * NACC * VL * 2);
    fma = g > fma ? g : fma;
#if defined(__AVX512BF16__)
    const double h = run(dot_loop, nth, (double)ITERS * NACC * 16 * 4);
    dot = h > dot ? h : dot;
#endif
  }
  printf("fp32_fma %.1f\n", fma);
#if defined(__AVX512BF16__)
  printf("bf16_dot %.1f\n", dot);
#endif
  (void)dot;
  return 0;
}
