/*
 * kernel_amx.c — the two bf16 products of the avx512bf16 kernel on AMX tiles
 * (kernel_avx512bf16.c calls these where csa__cpu_amx_ready()).  Compiled
 * with the avx512bf16 flags (sources.cmake); only x86-64 Linux builds have
 * it (CSA__CPU_AMX, cpu_attn.h): the kernel must grant the tile state
 * through arch_prctl (isa.c), and mingw-w64's _tile_loadd passes its stride
 * as a 32-bit `long` (LLP64) straight into a 64-bit address operand, which
 * the assembler rejects.
 */
#include <string.h>

#include "amx.h"
#include "cpu_attn.h"

#if CSA__CPU_AMX
#include "simd_avx512.h"

/* ---- AMX: the same two bf16 products on tiles (where csa__cpu_amx_ready).
 *
 * Every tile is 16 rows x 64 bytes: tiles 0-3 accumulate C for the item
 * tile's (up to) four row vectors, tile 4 holds A, tile 5 B.  TDPBF16PS
 * computes C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1], so
 *   scores: A = 16 keys x 32 d (bf16 rows), B = 16 d-pairs x 16 query rows
 *           (Q^T as pairs, the layout the dot-product path packs), C = S^T;
 *   output: A = 16 dv x 32 keys (V^T), B = 16 key pairs x 16 rows (P^T as
 *           pairs), C = O^T.
 * Operands are zero-padded to whole tiles, so no tile reads past the data. */
#define CSA__AMX_TILE_K 32 /* bf16 per tile row */

typedef struct csa__tilecfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} csa__tilecfg;

/* The tile configuration and tile loads in inline assembly of our own, with
 * the memory they read declared: GCC's _tile_loadconfig (amxtileintrin.h
 * of GCC 12) hands ldtilecfg an 8-byte memory operand, so the compiler
 * deletes the stores that fill the other 56 bytes of the configuration as
 * dead (GCC 12 -O2 kept the palette byte and a 32-byte clear, leaving the
 * row counts as stack garbage: the CPU faults on ldtilecfg), and its _tile_loadd
 * declares no memory read at all, so stores to a buffer just before a tile
 * load of it may legally move after the load.  "memory" orders a tile load
 * after every store the compiler has seen. */
#ifndef CSA__TILE_LOADD /* (an emulation for tests may stand in for the three below) */
#define CSA__TILE_LOADD(t, base, stride)                                                     \
  __asm__ volatile("tileloadd\t(%0,%1,1), %%tmm" #t                                          \
                   :                                                                        \
                   : "r"((const void *)(base)), "r"((int64_t)(stride))                      \
                   : "memory")
#define CSA__TILE_CONFIG(cfg) __asm__ volatile("ldtilecfg\t%0" : : "m"(*(cfg)))
#define CSA__TILE_RELEASE() _tile_release()
#endif

void csa__amx_begin(void) {
  csa__tilecfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 6; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  CSA__TILE_CONFIG(&cfg);
}

void csa__amx_end(void) { CSA__TILE_RELEASE(); }

#define CSA__AMX_ROWS_STRIDE (CSA__CPU_LD * 4)
/* C tile r (row vector r) += A (tile 4) x B rows at b + r*16 lanes */
#define CSA__AMX_STEP(r, b)                                                    \
  do {                                                                         \
    CSA__TILE_LOADD(5, (b) + (r) * 16, CSA__AMX_ROWS_STRIDE);                \
    _tile_dpbf16ps(r, 4, 5);                                                   \
  } while (0)
#define CSA__AMX_EACH(nrv, MACRO, ...) \
  do {                                 \
    MACRO(0, __VA_ARGS__);             \
    if ((nrv) > 1) MACRO(1, __VA_ARGS__); \
    if ((nrv) > 2) MACRO(2, __VA_ARGS__); \
    if ((nrv) > 3) MACRO(3, __VA_ARGS__); \
  } while (0)
#define CSA__AMX_ZERO(r, unused) _tile_zero(r)
#define CSA__AMX_LOADC(r, c) CSA__TILE_LOADD(r, (c) + (r) * 16, CSA__AMX_ROWS_STRIDE)
#define CSA__AMX_STOREC(r, c) _tile_stored(r, (void *)((c) + (r) * 16), CSA__AMX_ROWS_STRIDE)

/* S^T[key][rows] for keys [0, nkeys16) of kb ([keys][dp32] bf16). */
void csa__amx_scores(const uint16_t *kb, int64_t dp32, const float *qp, float *s,
                            int64_t nkeys16, int nrv) {
  for (int64_t kg = 0; kg < nkeys16; kg += 16) {
    CSA__AMX_EACH(nrv, CSA__AMX_ZERO, 0);
    for (int64_t k = 0; k < dp32; k += CSA__AMX_TILE_K) {
      CSA__TILE_LOADD(4, kb + kg * dp32 + k, dp32 * 2);
      const float *b = qp + (k / 2) * CSA__CPU_LD;
      CSA__AMX_EACH(nrv, CSA__AMX_STEP, b);
    }
    float *c = s + kg * CSA__CPU_LD;
    CSA__AMX_EACH(nrv, CSA__AMX_STOREC, c);
  }
}

/* O^T[dv][rows] = O^T * corr + V^T P^T over keys [0, nkeys32) of vt
 * ([dvp][KEYS] bf16) and pp (P^T pairs); corr NULL: O^T starts at zero.
 * The rescale is a pass over O^T of its own (the tiles accumulate from
 * memory), skipped where every corr is 1: no row's running maximum moved
 * (csa__k_mode.slack makes that the usual case). */
void csa__amx_out(const uint16_t *vt, const float *pp, float *ot, int64_t dvp, int64_t nkeys32,
                  int nrv, const float *corr) {
  int rescale = 0;
  if (corr)
    for (int rv = 0; rv < nrv; rv++)
      rescale |= _mm512_cmp_ps_mask(_mm512_loadu_ps(corr + rv * 16), _mm512_set1_ps(1.0f),
                                    _CMP_NEQ_UQ) != 0;
  if (rescale)
    for (int64_t x = 0; x < dvp; x++)
      for (int rv = 0; rv < nrv; rv++) {
        float *o = ot + x * CSA__CPU_LD + rv * 16;
        _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), _mm512_loadu_ps(corr + rv * 16)));
      }
  for (int64_t dg = 0; dg < dvp; dg += 16) {
    float *c = ot + dg * CSA__CPU_LD;
    if (corr)
      CSA__AMX_EACH(nrv, CSA__AMX_LOADC, c);
    else
      CSA__AMX_EACH(nrv, CSA__AMX_ZERO, 0);
    for (int64_t k = 0; k < nkeys32; k += CSA__AMX_TILE_K) {
      CSA__TILE_LOADD(4, vt + dg * CSA__CPU_KEYS + k, CSA__CPU_KEYS * 2);
      const float *b = pp + (k / 2) * CSA__CPU_LD;
      CSA__AMX_EACH(nrv, CSA__AMX_STEP, b);
    }
    CSA__AMX_EACH(nrv, CSA__AMX_STOREC, c);
  }
}

/* K block rows -> [nkeys16][dp32] bf16, zero beyond d and beyond cn keys. */
void csa__amx_pack_k(uint16_t *dst, const uint16_t *k, int64_t k_st, int64_t cn,
                            int64_t d, int64_t dp32) {
  const int64_t n16 = (cn + 15) / 16 * 16;
  for (int64_t j = 0; j < n16; j++) {
    uint16_t *row = dst + j * dp32;
    int64_t done = 0;
    if (j < cn) {
      memcpy(row, k + j * k_st, (size_t)d * 2);
      done = d;
    }
    memset(row + done, 0, (size_t)(dp32 - done) * 2);
  }
}

/* V block -> V^T [dvp][KEYS] bf16, keys beyond cn zero.  tmp: [KEYS][dvp32]
 * bf16, the block zero-padded so that whole 32 x 32 blocks move.
 *
 * A 32-bit view makes it two known steps: the rows of 16 keys x 16 dv-pairs
 * transpose as floats (csa_v_transpose), giving per pair p the keys'
 * (V[j][2p], V[j][2p+1]); one word permute of two such rows (keys 0-15,
 * 16-31) then takes the even words (dv = 2p) and another the odd (2p+1). */
void csa__amx_pack_vt(uint16_t *dst, uint16_t *tmp, const uint16_t *v, int64_t v_st,
                             int64_t cn, int64_t dv, int64_t dvp) {
  const int64_t w = (dv + 31) / 32 * 32; /* tmp row width, bf16 */
  const int64_t n32 = (cn + 31) / 32 * 32;
  for (int64_t j = 0; j < n32; j++) {
    int64_t done = 0;
    if (j < cn) {
      memcpy(tmp + j * w, v + j * v_st, (size_t)dv * 2);
      done = dv;
    }
    memset(tmp + j * w + done, 0, (size_t)(w - done) * 2);
  }
  const __m512i even = _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36,
                                        34, 32, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                        4, 2, 0);
  const __m512i odd = _mm512_add_epi16(even, _mm512_set1_epi16(1));
  float t[2][16 * 16];
  for (int64_t k0 = 0; k0 < n32; k0 += 32)
    for (int64_t x0 = 0; x0 < w; x0 += 32) {
      /* t[h][p][j] = pair p of key k0 + 16h + j, dv x0 + 2p */
      for (int hh = 0; hh < 2; hh++)
        csa_v_transpose((const float *)(tmp + (k0 + 16 * hh) * w + x0), w / 2, t[hh], 16);
      for (int p = 0; p < 16 && x0 + 2 * p < dvp; p++) {
        __m512i a = _mm512_loadu_si512((const void *)(t[0] + p * 16));
        __m512i b = _mm512_loadu_si512((const void *)(t[1] + p * 16));
        _mm512_storeu_si512((void *)(dst + (x0 + 2 * p) * CSA__CPU_KEYS + k0),
                            _mm512_permutex2var_epi16(a, even, b));
        if (x0 + 2 * p + 1 < dvp)
          _mm512_storeu_si512((void *)(dst + (x0 + 2 * p + 1) * CSA__CPU_KEYS + k0),
                              _mm512_permutex2var_epi16(a, odd, b));
      }
    }
  for (int64_t x = 0; x < dvp; x++) /* keys past the block's 32-rounding: 0 */
    memset(dst + x * CSA__CPU_KEYS + n32, 0, (size_t)(CSA__CPU_KEYS - n32) * 2);
}

#else
typedef int csa__amx_not_built; /* ISO C: a translation unit declares something */
#endif /* CSA__CPU_AMX */
