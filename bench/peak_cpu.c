/*
 * peak_cpu.c — this machine's arithmetic peak, measured with register-only
 * loops (no memory traffic): float32 FMA (AVX-512, else AVX2) and, where the
 * CPU has it, AVX512-BF16 vdpbf16ps.  Used by bench_cpu.py for "% of peak".
 *
 *   cc -O2 -march=native -pthread peak_cpu.c -o peak_cpu && ./peak_cpu THREADS
 *
 * Prints one line per kind: "fp32_fma GFLOPS" and "bf16_dot GFLOPS"
 * (FLOPs: an FMA lane is 2, a vdpbf16ps lane is 4).
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NACC 24
#define ITERS 20000000L

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

static void *fma_loop(void *arg) {
  (void)arg;
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
  return NULL;
}

#if defined(__AVX512BF16__)
static void *dot_loop(void *arg) {
  (void)arg;
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
  return NULL;
}
#endif

static double run(void *(*fn)(void *), int nth, double flops_per_thread) {
  pthread_t t[256];
  double t0 = now();
  for (int i = 0; i < nth; i++) pthread_create(&t[i], NULL, fn, NULL);
  for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
  return flops_per_thread * nth / (now() - t0) * 1e-9;
}

int main(int argc, char **argv) {
  int nth = argc > 1 ? atoi(argv[1]) : 1;
  if (nth < 1 || nth > 256)
    nth = 1;
  printf("fp32_fma %.1f\n", run(fma_loop, nth, (double)ITERS * NACC * VL * 2));
#if defined(__AVX512BF16__)
  printf("bf16_dot %.1f\n", run(dot_loop, nth, (double)ITERS * NACC * 16 * 4));
#endif
  return 0;
}
