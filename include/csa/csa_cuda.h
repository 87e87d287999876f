/*
 * csa_cuda.h — CUDA-specific entry points of the C core (beyond
 * csa_attn_cuda in csa.h): availability with a reason, and the device-side
 * cu_seqlens sanitizer.
 *
 * The CUDA code runs over the driver API, opened at run time; nothing here
 * needs a CUDA header or library to compile or link.  See docs/ARCHITECTURE.md.
 */
#ifndef CSA_CSA_CUDA_H
#define CSA_CSA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "csa/csa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the CUDA kernels can run on CUDA device device_index, else 0 with a
 * reason in reason[0..reason_size), e.g. "built without CUDA kernels",
 * "no NVIDIA driver (libcuda.so.1 not found)", "driver too old for these
 * kernels: needs driver >= 525.60.13 ... (CUDA 12.x)", "GPU sm_61 not
 * covered by the embedded kernels ...".  Loads the driver library on first
 * use but creates no context and allocates nothing on the GPU. */
int csa_cuda_status(int device_index, char *reason, size_t reason_size);

/* Violation bits csa_cuda_sanitize_cu_seqlens ORs into flags[0]. */
#define CSA_CU_Q_START 0x001u    /* cu_seqlens_q[0] != 0 */
#define CSA_CU_Q_DECREASE 0x002u /* cu_seqlens_q decreases somewhere */
#define CSA_CU_Q_TOTAL 0x004u    /* cu_seqlens_q[B] != T_q */
#define CSA_CU_Q_MAXLEN 0x008u   /* a query length exceeds max_seqlen_q */
#define CSA_CU_KV_START 0x100u   /* the same four for cu_seqlens_kv */
#define CSA_CU_KV_DECREASE 0x200u
#define CSA_CU_KV_TOTAL 0x400u
#define CSA_CU_KV_MAXLEN 0x800u

/*
 * Writes sanitized copies of cu_seqlens_q / _kv on the GPU, with one kernel
 * launch on `stream`, no synchronization and no allocation:
 *
 *   out[0] = 0,
 *   out[i] = clamp(cu[i], out[i-1], min(total, out[i-1] + max_len)),
 *
 * (total, max_len = T_q, max_seqlen_q for q; T_kv, max_seqlen_kv for kv)
 * so out is nondecreasing, every length is in [0, max_len] and every index
 * in [0, total]: any kernel reading out stays in bounds, and valid input is
 * copied unchanged.  Violations of the raw input are ORed into flags[0] (the
 * CSA_CU_* bits; nothing is written when there is none), for the caller to
 * read later and report.
 *
 * cu_q, cu_kv, out_q, out_kv: contiguous int32 [B + 1] (B >= 0, one length
 * for all four) on one CUDA device.  flags: int32 with >= 1 element, in
 * device memory of that device or in pinned host memory (device-visible
 * under unified addressing).  max_q / max_kv < 0 count as 0.
 */
int csa_cuda_sanitize_cu_seqlens(const csa_tensor *cu_q, const csa_tensor *cu_kv,
                                 const csa_tensor *out_q, const csa_tensor *out_kv,
                                 const csa_tensor *flags, int64_t total_q, int64_t total_kv,
                                 int64_t max_q, int64_t max_kv, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CSA_CUDA_H */
