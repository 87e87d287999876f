/*
 * amx.h — the AMX tile operations of the avx512bf16 kernel (kernel_amx.c).
 *
 * Layouts (bf16 = uint16_t, every operand zero-padded to whole tiles):
 *   kb   [nkeys16][dp32]   key rows, d padded to a multiple of 32
 *   vt   [dvp][KEYS]       V^T, keys padded to a multiple of 32
 *   qp   Q^T as bf16 pairs, rows of CSA__CPU_ROWS lanes CSA__CPU_LD apart (the pair layout of
 *        the vdpbf16ps path), pp likewise P^T as pairs over keys
 *   s, ot                  S^T and O^T, float32 rows of CSA__CPU_ROWS lanes (CSA__CPU_LD apart)
 * Builds without AMX (CSA__CPU_AMX 0) get empty inline stand-ins: the
 * kernel never calls them there, because csa__cpu_amx_ready() is 0.
 */
#ifndef CSA_CPU_AMX_H
#define CSA_CPU_AMX_H

#include <stdint.h>

#include "cpu_attn.h"

#if CSA__CPU_AMX
/* Loads the tile configuration (6 tiles of 16 x 64 bytes) / releases it. */
void csa__amx_begin(void);
void csa__amx_end(void);
/* K block rows -> kb, zero beyond d and beyond cn keys. */
void csa__amx_pack_k(uint16_t *dst, const uint16_t *k, int64_t k_st, int64_t cn, int64_t d,
                     int64_t dp32);
/* V block -> vt; tmp: [KEYS][dv rounded to 32] bf16 of scratch. */
void csa__amx_pack_vt(uint16_t *dst, uint16_t *tmp, const uint16_t *v, int64_t v_st, int64_t cn,
                      int64_t dv, int64_t dvp);
/* S^T for keys [0, nkeys16) over nrv row vectors of 16. */
void csa__amx_scores(const uint16_t *kb, int64_t dp32, const float *qp, float *s, int64_t nkeys16,
                     int nrv);
/* O^T = O^T * corr + V^T P^T (corr NULL: O^T = V^T P^T). */
void csa__amx_out(const uint16_t *vt, const float *pp, float *ot, int64_t dvp, int64_t nkeys32,
                  int nrv, const float *corr);
#else
static inline void csa__amx_begin(void) {}
static inline void csa__amx_end(void) {}
static inline void csa__amx_pack_k(uint16_t *dst, const uint16_t *k, int64_t k_st, int64_t cn,
                                   int64_t d, int64_t dp32) {
  (void)dst, (void)k, (void)k_st, (void)cn, (void)d, (void)dp32;
}
static inline void csa__amx_pack_vt(uint16_t *dst, uint16_t *tmp, const uint16_t *v, int64_t v_st,
                                    int64_t cn, int64_t dv, int64_t dvp) {
  (void)dst, (void)tmp, (void)v, (void)v_st, (void)cn, (void)dv, (void)dvp;
}
static inline void csa__amx_scores(const uint16_t *kb, int64_t dp32, const float *qp, float *s,
                                   int64_t nkeys16, int nrv) {
  (void)kb, (void)dp32, (void)qp, (void)s, (void)nkeys16, (void)nrv;
}
static inline void csa__amx_out(const uint16_t *vt, const float *pp, float *ot, int64_t dvp,
                                int64_t nkeys32, int nrv, const float *corr) {
  (void)vt, (void)pp, (void)ot, (void)dvp, (void)nkeys32, (void)nrv, (void)corr;
}
#endif

#endif /* CSA_CPU_AMX_H */
