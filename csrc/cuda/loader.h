/*
 * loader.h — runs CUDA work through the driver API: the device's primary
 * context (the one torch uses), the embedded modules loaded once per device,
 * kernels looked up by name and cached, launches on the caller's stream.
 *
 * A call site reads:
 *
 *   csa__cuda_call c;
 *   int st = csa__cuda_begin(&c, device_ordinal);   // context current
 *   if (st != CSA_OK) return st;
 *   csa__cuda_kernel k;
 *   st = csa__cuda_find(&c, "attn_fwd", "csa_attn_fwd_f16_d64_big", &k);
 *   if (st == CSA_OK) st = csa__cuda_launch(&c, &k, grid, block, smem, stream, &args);
 *   csa__cuda_end(&c);                               // caller's context back
 *
 * Every failure comes back as a csa status with csa_errmsg() set
 * (CSA_ENOTSUP: no driver / driver too old / GPU not covered; CSA_ECUDA:
 * anything else the driver reports).  The driver API has no "last error"
 * state, so a failed call leaves nothing pending for the caller.
 */
#ifndef CSA_CUDA_LOADER_H
#define CSA_CUDA_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "csa/csa.h"
#include "cuda/driver.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one device offers, read once when its context is first made. */
typedef struct csa__cuda_devinfo {
  int ordinal;
  int sm;         /* 10 * major + minor, e.g. 90 */
  int smem_optin; /* max dynamic + static shared memory per block, bytes */
  int sm_count;
  int uva;        /* unified addressing (pinned host memory is device-visible) */
} csa__cuda_devinfo;

typedef struct csa__cuda_call {
  const csa__cuda_api *api;
  const csa__cuda_devinfo *dev;
  int pushed; /* 1: our context was pushed and must be popped */
  int slot;   /* internal: the device's cache slot */
} csa__cuda_call;

/* A kernel of one module on one device. */
typedef struct csa__cuda_kernel {
  csa__CUfunction fn;
  int *smem_set; /* largest dynamic shared memory already granted (cache) */
} csa__cuda_kernel;

/* Makes device ordinal's primary context current (pushing it when the
 * thread's current context differs) and checks the driver and the GPU
 * against the embedded kernels. */
int csa__cuda_begin(csa__cuda_call *c, int ordinal);
/* Restores the caller's context. */
void csa__cuda_end(csa__cuda_call *c);

/* 1 if module (a fatbin stem) is embedded and loadable on this device
 * (arch-specific modules load only on their architecture). */
int csa__cuda_has_module(const csa__cuda_call *c, const char *module);

/* Kernel `name` of `module`, loading the module on first use. */
int csa__cuda_find(csa__cuda_call *c, const char *module, const char *name,
                   csa__cuda_kernel *k);

/* Grants dyn_smem bytes of dynamic shared memory (above the 48 KiB default). */
int csa__cuda_set_smem(csa__cuda_call *c, csa__cuda_kernel *k, size_t dyn_smem);

/* Launches with one by-value kernel parameter (*arg, e.g. an args struct). */
int csa__cuda_launch(csa__cuda_call *c, const csa__cuda_kernel *k, const unsigned grid[3],
                     unsigned block, size_t dyn_smem, void *stream, const void *arg);

/* The device-visible address of a cu_seqlens violation word (csa_cuda.h):
 * flags is int32 with >= 1 element, on CUDA device `ordinal` or in pinned
 * host memory (its address there, under unified addressing usually the host
 * address itself; valid while the memory stays allocated and pinned, so a
 * caller that keeps the answer keeps the memory alive with it).
 * CSA_EINVAL / CSA_EDEVICE (with the reason) otherwise. */
int csa__cuda_flags_address(const csa_tensor *flags, int ordinal, int32_t **dev);

/* The loader's lock, for caches of its callers that must stay consistent
 * with the kernels it hands out (e.g. attn_cuda.c's launch plans); held
 * only for a few copies, never around a driver call. */
void csa__cuda_lock(void);
void csa__cuda_unlock(void);

/* CSA_ECUDA with "CUDA error in <what>: CUDA_ERROR_X (text)". */
int csa__cuda_fail(csa__CUresult e, const char *what);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_LOADER_H */
