/*
 * emu_avx512_amx.h — AVX-512 (F/BW/DQ/VL/BF16) and AMX-BF16 for a CPU that has
 * only AVX2, so that the avx512, avx512bf16 (vdpbf16ps) and AMX paths of the
 * CPU kernel run, and are tested, on any x86-64 machine with AVX2.
 *
 * Force-included (-include) ahead of kernel_avx512.c, kernel_avx512bf16.c and
 * kernel_amx.c (tests/test_cpu_native.py builds them with it; see there):
 *   - the _mm512_* intrinsics and __m512* types the kernels use become SIMDe's
 *     portable versions (simde/x86/avx512.h, the libsimde-dev headers), named
 *     here one by one after GCC's own immintrin.h has been read, so that its
 *     declarations keep their names; the six SIMDe lacks are written below;
 *   - AMX is 8 tiles per thread in C: ldtilecfg checks the configuration as
 *     the CPU does (a bad one aborts, as the CPU faults), tileloadd / tilestored
 *     copy exactly the rows and bytes the tile shape says (so AddressSanitizer
 *     sees every byte a tile reads or writes), TDPBF16PS computes
 *     C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1] in float32 after
 *     checking the three shapes agree.
 * Numerics: the same products and sums in float32, in another order than
 * the hardware; the tests' tolerances do not depend on the order.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <simde/x86/avx512.h>

/* the names the kernels use */
#define __m512 simde__m512
#define __m512bh simde__m512bh
#define __m512i simde__m512i
#define _mm512_add_epi16 simde_mm512_add_epi16
#define _mm512_add_epi32 simde_mm512_add_epi32
#define _mm512_add_ps simde_mm512_add_ps
#define _mm512_and_si512 simde_mm512_and_si512
#define _mm512_castps_si512 simde_mm512_castps_si512
#define _mm512_castsi512_ps simde_mm512_castsi512_ps
#define _mm512_cmp_ps_mask simde_mm512_cmp_ps_mask
#define _mm512_dpbf16_ps simde_mm512_dpbf16_ps
#define _mm512_fmadd_ps simde_mm512_fmadd_ps
#define _mm512_loadu_ps simde_mm512_loadu_ps
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#define _mm512_mask_blend_ps simde_mm512_mask_blend_ps
#define _mm512_max_ps simde_mm512_max_ps
#define _mm512_mul_ps simde_mm512_mul_ps
#define _mm512_or_si512 simde_mm512_or_si512
#define _mm512_permutex2var_epi16 simde_mm512_permutex2var_epi16
#define _mm512_permutex2var_ps simde_mm512_permutex2var_ps
#define _mm512_permutexvar_epi16 simde_mm512_permutexvar_epi16
#define _mm512_set1_epi16 simde_mm512_set1_epi16
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#define _mm512_set1_ps simde_mm512_set1_ps
#define _mm512_set_epi16 simde_mm512_set_epi16
#define _mm512_setr_ps simde_mm512_setr_ps
#define _mm512_setzero_ps simde_mm512_setzero_ps
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#define _mm512_slli_epi32 simde_mm512_slli_epi32
#define _mm512_srli_epi32 simde_mm512_srli_epi32
#define _mm512_storeu_ps simde_mm512_storeu_ps
#define _mm512_storeu_si512 simde_mm512_storeu_si512
#define _mm512_sub_ps simde_mm512_sub_ps
#define _mm512_maskz_scalef_ps simde_mm512_maskz_scalef_ps

static inline simde__m512i csa_emu_cvtepu16_epi32(simde__m256i a) {
  uint16_t s[16]; uint32_t d[16]; memcpy(s, &a, 32);
  for (int i = 0; i < 16; i++) d[i] = s[i];
  simde__m512i r; memcpy(&r, d, 64); return r;
}
static inline simde__m256i csa_emu_cvtepi32_epi16(simde__m512i a) {
  int32_t s[16]; int16_t d[16]; memcpy(s, &a, 64);
  for (int i = 0; i < 16; i++) d[i] = (int16_t)s[i];
  simde__m256i r; memcpy(&r, d, 32); return r;
}
static inline uint16_t csa_emu_bf16(float f) { /* round to nearest even, as vcvtne2ps2bf16 */
  uint32_t u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u); return (uint16_t)(u >> 16);
}
static inline simde__m512bh csa_emu_cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
  float fa[16], fb[16]; uint16_t d[32]; memcpy(fa, &a, 64); memcpy(fb, &b, 64);
  for (int i = 0; i < 16; i++) d[i] = csa_emu_bf16(fb[i]), d[16 + i] = csa_emu_bf16(fa[i]);
  simde__m512bh r; memcpy(&r, d, 64); return r;
}
static inline simde__m512 csa_emu_cvtph_ps(simde__m256i a) {
  __m128i lo, hi; memcpy(&lo, &a, 16); memcpy(&hi, (char *)&a + 16, 16);
  __m256 x = _mm256_cvtph_ps(lo), y = _mm256_cvtph_ps(hi);
  simde__m512 r; memcpy(&r, &x, 32); memcpy((char *)&r + 32, &y, 32); return r;
}
#define csa_emu_cvtps_ph(a, rnd) csa_emu_cvtps_ph_f(a)
static inline simde__m256i csa_emu_cvtps_ph_f(simde__m512 a) {
  __m256 x, y; memcpy(&x, &a, 32); memcpy(&y, (char *)&a + 32, 32);
  __m128i lo = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m128i hi = _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  simde__m256i r; memcpy(&r, &lo, 16); memcpy((char *)&r + 16, &hi, 16); return r;
}
/* vreduceps with M = 0 fraction bits kept: x - round(x) in the imm's
 * rounding mode (the kernels use round down, imm 0x09) */
static inline simde__m512 csa_emu_reduce_ps(simde__m512 a, int imm) {
  float f[16]; memcpy(f, &a, 64);
  if ((imm & 0xf4) != 0) { /* not written for other forms: fail loudly */
    fprintf(stderr, "AVX-512 emulation: vreduceps imm 0x%02x\n", imm);
    abort();
  }
  for (int i = 0; i < 16; i++) {
    const float r = (imm & 3) == 1 ? floorf(f[i]) : (imm & 3) == 2 ? ceilf(f[i])
                    : (imm & 3) == 3 ? truncf(f[i]) : nearbyintf(f[i]);
    f[i] = f[i] - r;
  }
  simde__m512 r; memcpy(&r, f, 64); return r;
}
#define _mm512_reduce_ps csa_emu_reduce_ps
#define _mm512_cvtepu16_epi32 csa_emu_cvtepu16_epi32
#define _mm512_cvtepi32_epi16 csa_emu_cvtepi32_epi16
#define _mm512_cvtne2ps_pbh csa_emu_cvtne2ps_pbh
#define _mm512_cvtph_ps csa_emu_cvtph_ps
#define _mm512_cvtps_ph csa_emu_cvtps_ph

/* ---- AMX: 8 tiles per thread, palette 1; faults (abort) where the CPU would */
typedef struct { int rows, colsb; uint8_t d[16][64]; } csa_emu_tile;
static __thread csa_emu_tile csa_emu_t[8];
static __thread int csa_emu_configured;
static inline void csa_emu_fault(const char *why) { fprintf(stderr, "AMX emulation: %s\n", why); abort(); }
static inline void csa_emu_ldtilecfg(const void *p) {
  const uint8_t *b = (const uint8_t *)p;
  if (b[0] != 1) csa_emu_fault("palette != 1");
  for (int i = 1; i < 16; i++) if (b[i]) csa_emu_fault("reserved / start_row byte set");
  for (int t = 0; t < 16; t++) {
    uint16_t colsb; memcpy(&colsb, b + 16 + 2 * t, 2);
    uint8_t rows = b[48 + t];
    if (t >= 8) { if (colsb || rows) csa_emu_fault("tile >= 8 configured"); continue; }
    if (rows > 16 || colsb > 64 || (colsb % 4) || (!rows != !colsb)) csa_emu_fault("bad tile shape");
    csa_emu_t[t].rows = rows, csa_emu_t[t].colsb = colsb;
    memset(csa_emu_t[t].d, 0, sizeof csa_emu_t[t].d);
  }
  csa_emu_configured = 1;
}
static inline csa_emu_tile *csa_emu_get(int t) {
  if (!csa_emu_configured) csa_emu_fault("tile use without configuration");
  if (!csa_emu_t[t].rows) csa_emu_fault("tile not configured");
  return &csa_emu_t[t];
}
static inline void csa_emu_load(int t, const void *base, int64_t stride) {
  csa_emu_tile *x = csa_emu_get(t);
  for (int r = 0; r < x->rows; r++) memcpy(x->d[r], (const char *)base + r * stride, x->colsb);
}
static inline void csa_emu_store(int t, void *base, int64_t stride) {
  csa_emu_tile *x = csa_emu_get(t);
  for (int r = 0; r < x->rows; r++) memcpy((char *)base + r * stride, x->d[r], x->colsb);
}
static inline void csa_emu_zero(int t) { memset(csa_emu_get(t)->d, 0, sizeof csa_emu_t[t].d); }
static inline float csa_emu_bf(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline void csa_emu_dp(int c, int a, int b) {
  csa_emu_tile *C = csa_emu_get(c), *A = csa_emu_get(a), *B = csa_emu_get(b);
  if (A->colsb / 4 != B->rows || C->rows != A->rows || C->colsb != B->colsb) csa_emu_fault("dpbf16ps shapes");
  for (int m = 0; m < C->rows; m++)
    for (int n = 0; n < C->colsb / 4; n++) {
      float acc; memcpy(&acc, &C->d[m][4 * n], 4);
      for (int k = 0; k < A->colsb / 4; k++)
        acc += csa_emu_bf(&A->d[m][4 * k]) * csa_emu_bf(&B->d[k][4 * n]) +
               csa_emu_bf(&A->d[m][4 * k + 2]) * csa_emu_bf(&B->d[k][4 * n + 2]);
      memcpy(&C->d[m][4 * n], &acc, 4);
    }
}
#define CSA__TILE_LOADD(t, base, stride) csa_emu_load(t, (base), (stride))
#define CSA__TILE_CONFIG(cfg) csa_emu_ldtilecfg(cfg)
#define CSA__TILE_RELEASE() (csa_emu_configured = 0)
#undef _tile_dpbf16ps
#undef _tile_zero
#undef _tile_stored
#define _tile_dpbf16ps(c, a, b) csa_emu_dp(c, a, b)
#define _tile_zero(t) csa_emu_zero(t)
#define _tile_stored(t, base, stride) csa_emu_store(t, (base), (stride))
