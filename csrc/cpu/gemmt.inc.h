/*
 * gemmt.inc.h — the micro-kernel of both attention products, written once
 * against the SIMD vocabulary and included once per operand type.
 *
 * The kernels keep every per-row quantity transposed, one vector lane per
 * query row, so both products have the same shape:
 *
 *     C[j][rows] (=, or = C*cs +)  sum_k  A(j, k) * B[k][rows]
 *
 *   scores   S^T[key][rows]  = sum_d  K[key][d]  * Q^T[d][rows]      (pv = 0)
 *   output   O^T[dv][rows]   = O^T * corr + sum_key V[key][dv] * P^T[key][rows]
 *                                                                     (pv = 1)
 *
 * A(j, k) is broadcast to all lanes; B's rows are vector loads; C stays in
 * registers for all k.  In the score form A's row j is contiguous in k (a key
 * row of K, stride sj between keys); in the output form A's item (j, k) is at
 * a + k*sk + j (a row of V per key).  No operand needs a transpose in memory
 * beyond Q^T, which the caller packs once per query tile.
 *
 * B and C have rows CSA__CPU_LD floats apart; the caller passes nrv row
 * vectors.  A register tile is R row vectors x JT broadcast operands (R <=
 * CSA_RMAX, JT = CSA_JMAX(R), then 4, 2, 1 for the tail), each size a
 * separate inlined copy of the body (constant R and JT) so that the
 * accumulators live in registers.
 *
 * Parameters (macros defined by the includer):
 *   GT_BODY           name of the register-tile body of this instance
 *   GT_TILE_SCORES    name of its score-form tile dispatcher
 *   GT_TILE_OUTPUT    name of its output-form tile dispatcher
 *   GT_RUN            name of its entry point (see the end of the file)
 *   GT_A              element type of A (float, or uint16_t for bf16 pairs)
 *   GT_E              elements of A per broadcast operand (1, or 2 for pairs)
 *   GT_AV, GT_BCAST   broadcast operand type and its load from a GT_A *
 *   GT_BV, GT_BLOAD   B row vector type and its load from a float *
 *   GT_STEP(acc,a,b)  acc + a*b (for pairs: acc + a.lo*b.lo + a.hi*b.hi)
 * The file undefines them at its end, so the next instance starts clean.
 */

#ifndef CSA__ALWAYS_INLINE
#if defined(__GNUC__)
#define CSA__ALWAYS_INLINE inline __attribute__((always_inline))
#define CSA__NOINLINE __attribute__((noinline))
#define CSA__UNROLL _Pragma("GCC unroll 8")
#else
#define CSA__ALWAYS_INLINE inline
#define CSA__NOINLINE
#define CSA__UNROLL
#endif
#endif

#define GT_ARGS                                                                      \
  int64_t K, const GT_A *a, ptrdiff_t sj, ptrdiff_t sk, const float *b, float *c, \
      const float *cs
#define GT_PASS K, a, sj, sk, b, c, cs

static CSA__ALWAYS_INLINE void GT_BODY(const int pv, const int R, const int JT, GT_ARGS) {
  csa_v acc[8][CSA_RMAX];
  CSA__UNROLL for (int j = 0; j < JT; j++)
    CSA__UNROLL for (int r = 0; r < R; r++) acc[j][r] = csa_v_zero();

  if (!pv) {
    const GT_A *aj[8];
    CSA__UNROLL for (int j = 0; j < JT; j++) aj[j] = a + j * sj;
    for (int64_t k = 0; k < K; k++) {
      GT_BV bv[CSA_RMAX];
      CSA__UNROLL for (int r = 0; r < R; r++) bv[r] = GT_BLOAD(b + k * CSA__CPU_LD + r * CSA_VL);
      CSA__UNROLL for (int j = 0; j < JT; j++) {
        GT_AV av = GT_BCAST(aj[j] + k * GT_E);
        CSA__UNROLL for (int r = 0; r < R; r++) acc[j][r] = GT_STEP(acc[j][r], av, bv[r]);
      }
    }
  } else {
    for (int64_t k = 0; k < K; k++) {
      const GT_A *ak = a + k * sk;
      GT_BV bv[CSA_RMAX];
      CSA__UNROLL for (int r = 0; r < R; r++) bv[r] = GT_BLOAD(b + k * CSA__CPU_LD + r * CSA_VL);
      CSA__UNROLL for (int j = 0; j < JT; j++) {
        GT_AV av = GT_BCAST(ak + j * GT_E);
        CSA__UNROLL for (int r = 0; r < R; r++) acc[j][r] = GT_STEP(acc[j][r], av, bv[r]);
      }
    }
  }

  CSA__UNROLL for (int j = 0; j < JT; j++) {
    CSA__UNROLL for (int r = 0; r < R; r++) {
      float *cp = c + j * CSA__CPU_LD + r * CSA_VL;
      csa_v v = acc[j][r];
      if (cs)
        v = csa_v_fma(csa_v_load(cp), csa_v_load(cs + r * CSA_VL), v);
      csa_v_store(cp, v);
    }
  }
}

/* The register tile of R row vectors and tail slot s (JT = CSA_JMAX(R), 4,
 * 2, 1), one inlined copy of the body per case. */
#define GT_CASES(PV, R)                                                    \
  case 4 * (R - 1) + 0: GT_BODY(PV, R, CSA_JMAX(R), GT_PASS); return;     \
  case 4 * (R - 1) + 1: GT_BODY(PV, R, 4, GT_PASS); return;               \
  case 4 * (R - 1) + 2: GT_BODY(PV, R, 2, GT_PASS); return;               \
  case 4 * (R - 1) + 3: GT_BODY(PV, R, 1, GT_PASS); return;

static CSA__NOINLINE void GT_TILE_SCORES(int R, int slot, GT_ARGS) {
  switch (4 * (R - 1) + slot) {
    GT_CASES(0, 1)
#if CSA_RMAX >= 2
    GT_CASES(0, 2)
#endif
#if CSA_RMAX >= 3
    GT_CASES(0, 3)
#endif
#if CSA_RMAX >= 4
    GT_CASES(0, 4)
#endif
  default: return;
  }
}

static CSA__NOINLINE void GT_TILE_OUTPUT(int R, int slot, GT_ARGS) {
  switch (4 * (R - 1) + slot) {
    GT_CASES(1, 1)
#if CSA_RMAX >= 2
    GT_CASES(1, 2)
#endif
#if CSA_RMAX >= 3
    GT_CASES(1, 3)
#endif
#if CSA_RMAX >= 4
    GT_CASES(1, 4)
#endif
  default: return;
  }
}

/* C[0..J) over nrv row vectors: walks register tiles, largest first. */
static void GT_RUN(int pv, int64_t J, GT_ARGS, int nrv) {
  for (int rv0 = 0; rv0 < nrv; rv0 += CSA_RMAX) {
    const int R = CSA_MIN(CSA_RMAX, nrv - rv0);
    const int jmax = CSA_JMAX(R);
    const float *bb = b + rv0 * CSA_VL;
    const float *cc = cs ? cs + rv0 * CSA_VL : NULL;
    for (int64_t j0 = 0; j0 < J;) {
      const int64_t rem = J - j0;
      const int slot = rem >= jmax ? 0 : rem >= 4 ? 1 : rem >= 2 ? 2 : 3;
      const int jt = slot == 0 ? jmax : slot == 1 ? 4 : slot == 2 ? 2 : 1;
      const GT_A *aa = pv ? a + j0 * GT_E : a + j0 * sj;
      float *cj = c + j0 * CSA__CPU_LD + rv0 * CSA_VL;
      if (pv)
        GT_TILE_OUTPUT(R, slot, K, aa, sj, sk, bb, cj, cc);
      else
        GT_TILE_SCORES(R, slot, K, aa, sj, sk, bb, cj, cc);
      j0 += jt;
    }
  }
}

#undef GT_ARGS
#undef GT_PASS
#undef GT_CASES
#undef GT_BODY
#undef GT_TILE_SCORES
#undef GT_TILE_OUTPUT
#undef GT_RUN
#undef GT_A
#undef GT_E
#undef GT_AV
#undef GT_BCAST
#undef GT_BV
#undef GT_BLOAD
#undef GT_STEP
