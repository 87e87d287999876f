/*
 * driver.h — the few CUDA driver API types and entry points the host code
 * uses, declared here so the C side compiles without cuda.h and links no
 * CUDA library.  The driver (libcuda.so.1 / nvcuda.dll) is opened at run
 * time by driver.c; a machine without it still runs every CPU path.
 *
 * The values below are the driver ABI (cuda.h of CUDA 12 and 13 agree on
 * all of them); entry points are looked up by their versioned export names
 * (e.g. cuCtxPushCurrent_v2), which is what cuda.h's macros resolve to.
 */
#ifndef CSA_CUDA_DRIVER_H
#define CSA_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CSA__CUAPI __stdcall
#else
#define CSA__CUAPI
#endif

typedef int csa__CUresult; /* 0 = CUDA_SUCCESS */
typedef int csa__CUdevice;
typedef struct csa__CUctx_st *csa__CUcontext;
typedef struct csa__CUmod_st *csa__CUmodule;
typedef struct csa__CUfunc_st *csa__CUfunction;
typedef struct csa__CUstream_st *csa__CUstream;
typedef unsigned long long csa__CUdeviceptr;
/* CUtensorMap: 128 opaque bytes, 64-byte aligned (a by-value kernel
 * parameter of TMA kernels). */
typedef struct csa__CUtensorMap {
  uint64_t opaque[16];
} csa__CUtensorMap;

enum {
  CSA__CUDA_SUCCESS = 0,
  CSA__CUDA_ERROR_INVALID_VALUE = 1,
  CSA__CUDA_ERROR_NOT_INITIALIZED = 3,
  CSA__CUDA_ERROR_NO_DEVICE = 100,
  CSA__CUDA_ERROR_INVALID_DEVICE = 101,
  CSA__CUDA_ERROR_INVALID_IMAGE = 200,
  CSA__CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
  CSA__CUDA_ERROR_INVALID_PTX = 218,
  CSA__CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221,
  CSA__CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
  CSA__CUDA_ERROR_JIT_COMPILATION_DISABLED = 223,
  CSA__CUDA_ERROR_NOT_FOUND = 500
};

enum { /* CUdevice_attribute */
  CSA__CU_DEV_ATTR_MULTIPROCESSOR_COUNT = 16,
  CSA__CU_DEV_ATTR_UNIFIED_ADDRESSING = 41,
  CSA__CU_DEV_ATTR_CC_MAJOR = 75,
  CSA__CU_DEV_ATTR_CC_MINOR = 76,
  CSA__CU_DEV_ATTR_SMEM_PER_BLOCK_OPTIN = 97
};

enum { /* CUfunction_attribute */
  CSA__CU_FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
};

enum { /* CUpointer_attribute */
  CSA__CU_POINTER_ATTR_DEVICE_POINTER = 3
};

/* The driver entry points, filled once by csa__cuda_api(). */
typedef struct csa__cuda_api {
  csa__CUresult(CSA__CUAPI *Init)(unsigned flags);
  csa__CUresult(CSA__CUAPI *DriverGetVersion)(int *version);
  csa__CUresult(CSA__CUAPI *GetErrorName)(csa__CUresult e, const char **s);
  csa__CUresult(CSA__CUAPI *GetErrorString)(csa__CUresult e, const char **s);
  csa__CUresult(CSA__CUAPI *DeviceGetCount)(int *n);
  csa__CUresult(CSA__CUAPI *DeviceGet)(csa__CUdevice *d, int ordinal);
  csa__CUresult(CSA__CUAPI *DeviceGetAttribute)(int *v, int attr, csa__CUdevice d);
  csa__CUresult(CSA__CUAPI *DevicePrimaryCtxRetain)(csa__CUcontext *c, csa__CUdevice d);
  csa__CUresult(CSA__CUAPI *CtxGetCurrent)(csa__CUcontext *c);
  csa__CUresult(CSA__CUAPI *CtxPushCurrent)(csa__CUcontext c);
  csa__CUresult(CSA__CUAPI *CtxPopCurrent)(csa__CUcontext *c);
  csa__CUresult(CSA__CUAPI *ModuleLoadData)(csa__CUmodule *m, const void *image);
  csa__CUresult(CSA__CUAPI *ModuleGetFunction)(csa__CUfunction *f, csa__CUmodule m,
                                               const char *name);
  csa__CUresult(CSA__CUAPI *FuncSetAttribute)(csa__CUfunction f, int attr, int value);
  csa__CUresult(CSA__CUAPI *OccupancyMaxActiveBlocksPerMultiprocessor)(int *n, csa__CUfunction f,
                                                                       int block,
                                                                       size_t dyn_smem);
  csa__CUresult(CSA__CUAPI *PointerGetAttribute)(void *data, int attr, csa__CUdeviceptr ptr);
  csa__CUresult(CSA__CUAPI *LaunchKernel)(csa__CUfunction f, unsigned gx, unsigned gy,
                                          unsigned gz, unsigned bx, unsigned by, unsigned bz,
                                          unsigned smem, csa__CUstream s, void **params,
                                          void **extra);
  /* Optional (NULL where the driver lacks it): TMA descriptors for sm_90
   * kernels, cuTensorMapEncodeTiled (CUDA >= 12.0 drivers). */
  csa__CUresult(CSA__CUAPI *TensorMapEncodeTiled)(
      csa__CUtensorMap *map, int data_type, uint32_t rank, void *global_address,
      const uint64_t *global_dim, const uint64_t *global_strides, const uint32_t *box_dim,
      const uint32_t *element_strides, int interleave, int swizzle, int l2_promotion,
      int oob_fill);
} csa__cuda_api;

/* The driver's entry points, loaded on first use (thread-safe, once per
 * process; cuInit is called then).  NULL when unavailable: *why (static
 * text) says why, e.g. "no NVIDIA driver (libcuda.so.1 not found)". */
const csa__cuda_api *csa__cuda_api_get(const char **why);

/* "CUDA_ERROR_X (description)" for e, into buf. */
void csa__cuda_errtext(csa__CUresult e, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_DRIVER_H */
