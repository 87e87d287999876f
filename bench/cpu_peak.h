/*
 * cpu_peak.h — the FMA peak of this thread right now, for the C benchmarks
 * (cpu_tile.c, cpu_kernel.c) to divide by.
 *
 * On a shared virtual machine the FLOPs a core does per CPU second drift by
 * a third within seconds (the host's clock and its other guests, which CPU
 * time does not see), so a time measured alone compares badly with one
 * measured a minute later.  The benchmarks therefore time a register-only
 * float32 FMA loop (as bench/peak_cpu.c does, 12 accumulators on AVX2, 24
 * on AVX-512) right before and after each sample and report the sample as a
 * fraction of that peak: both see the same core at the same moment.
 */
#ifndef CSA_BENCH_CPU_PEAK_H
#define CSA_BENCH_CPU_PEAK_H
#include <immintrin.h>
#include <time.h>

static double csa_bench_thread_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float csa_bench_sink;

/* GFLOP/s per CPU second of `iters` rounds of independent FMAs. */
static double csa_bench_fma_peak(long iters) {
#if defined(__AVX512F__)
  enum { NACC = 24, VL = 16 };
  __m512 acc[NACC];
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
#else
  enum { NACC = 12, VL = 8 };
  __m256 acc[NACC];
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_ps((float)i);
#endif
  const double t0 = csa_bench_thread_now();
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < NACC; i++)
#if defined(__AVX512F__)
      acc[i] = _mm512_fmadd_ps(acc[i], a, b);
#else
      acc[i] = _mm256_fmadd_ps(acc[i], a, b);
#endif
  }
  const double dt = csa_bench_thread_now() - t0;
  float s = 0;
  for (int i = 0; i < NACC; i++) {
    float lane[16];
#if defined(__AVX512F__)
    _mm512_storeu_ps(lane, acc[i]);
#else
    _mm256_storeu_ps(lane, acc[i]);
#endif
    s += lane[0];
  }
  csa_bench_sink = s;
  return (double)iters * NACC * VL * 2 / dt * 1e-9;
}
#endif
