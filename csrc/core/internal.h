/*
 * internal.h — helpers shared by every part of the C core (not installed).
 */
#ifndef CSA_CORE_INTERNAL_H
#define CSA_CORE_INTERNAL_H

#include "csa/csa.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CSA__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CSA_LIKELY(x) __builtin_expect(!!(x), 1)
#define CSA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CSA__PRINTF(f, a)
#define CSA_LIKELY(x) (x)
#define CSA_UNLIKELY(x) (x)
#endif

#define CSA_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CSA_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CSA_CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* Records a printf-style detail for csa_errmsg() and returns status, so a
 * failure reads: return csa__error(CSA_ESHAPE, "q must be ...", ...); */
int csa__error(int status, const char *fmt, ...) CSA__PRINTF(2, 3);

/* Head geometry of a validated call, derived once so kernels need not
 * re-derive it. */
typedef struct csa__attn_dims {
  int64_t total_q, total_kv; /* T_q, T_kv */
  int64_t heads, heads_kv;   /* H, H_kv */
  int64_t head_dim, head_dim_v; /* D, D_v */
  int64_t batch;             /* B */
  float scale;               /* resolved softmax scale */
} csa__attn_dims;

/* Validation shared by csa_attn_validate and the kernels' entry points:
 * fills dims on success.  require_device: CSA_DEVICE_CPU / CSA_DEVICE_CUDA,
 * or 0 for "either, as long as every tensor agrees". */
int csa__attn_check(const csa_attn_params *p, int require_device,
                    csa__attn_dims *dims);

/* csa_attn_cuda after its check: dims from csa__attn_check on exactly
 * these params (the caller's own check, so a call is checked once).
 * cu_flags: NULL, or the device-visible address of a violation word
 * (csa_cuda.h's CSA_CU_* bits): the kernel then checks the values of
 * cu_seqlens itself and ORs what is wrong into it (cu_check.cuh), which
 * stands in for the sanitizer launch of a call that reads them raw. */
int csa__attn_cuda_checked(const csa_attn_params *p, const csa__attn_dims *dims,
                           int32_t *cu_flags);

/* Half-precision conversions (exact for bf16 -> f32 and f16 -> f32;
 * round-to-nearest-even for f32 -> bf16 / f16). */
float csa__bf16_to_f32(uint16_t h);
uint16_t csa__f32_to_bf16(float f);
float csa__f16_to_f32(uint16_t h);
uint16_t csa__f32_to_f16(float f);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CORE_INTERNAL_H */
