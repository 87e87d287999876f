/*
 * driver.c — opens the NVIDIA driver library at run time and fills the
 * entry-point table of driver.h.  Nothing here runs at import: the first
 * CUDA call (or cuda_status) does it, once per process.
 *
 * Why dlopen instead of linking cudart: the package then needs no CUDA
 * toolkit to install and no CUDA library to import; torch's CUDA wheels
 * already bring the driver's user-space half onto every GPU machine
 * (libcuda.so.1 / nvcuda.dll come with the display driver, not the toolkit).
 */
#include "cuda/driver.h"

#include <stdio.h>
#include <string.h>

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#include <pthread.h>
#endif

static csa__cuda_api csa__api;
static const csa__cuda_api *csa__api_ok; /* set once, by csa__cuda_load */
static const char *csa__api_why = "CUDA driver not loaded";
static char csa__api_why_buf[192];

#if defined(_WIN32)
typedef HMODULE csa__lib;
static csa__lib csa__lib_open(void) { return LoadLibraryA("nvcuda.dll"); }
static void *csa__lib_sym(csa__lib h, const char *name) {
  return (void *)(uintptr_t)GetProcAddress(h, name);
}
#define CSA__DRIVER_NAME "nvcuda.dll"
#else
typedef void *csa__lib;
static csa__lib csa__lib_open(void) {
  /* RTLD_LOCAL: our lookups only; the process's own libcuda (torch's) is
   * the same file, so this only takes a reference on it. */
  return dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
}
static void *csa__lib_sym(csa__lib h, const char *name) { return dlsym(h, name); }
#define CSA__DRIVER_NAME "libcuda.so.1"
#endif

/* Loads every entry point; on failure leaves csa__api_ok NULL and the
 * reason in csa__api_why.  Runs exactly once (see csa__cuda_api_get). */
static void csa__cuda_load(void) {
  csa__lib h = csa__lib_open();
  if (h == NULL) {
    csa__api_why = "no NVIDIA driver (" CSA__DRIVER_NAME " not found)";
    return;
  }
  struct {
    void **slot;
    const char *name;
  } syms[] = {
      {(void **)&csa__api.Init, "cuInit"},
      {(void **)&csa__api.DriverGetVersion, "cuDriverGetVersion"},
      {(void **)&csa__api.GetErrorName, "cuGetErrorName"},
      {(void **)&csa__api.GetErrorString, "cuGetErrorString"},
      {(void **)&csa__api.DeviceGetCount, "cuDeviceGetCount"},
      {(void **)&csa__api.DeviceGet, "cuDeviceGet"},
      {(void **)&csa__api.DeviceGetAttribute, "cuDeviceGetAttribute"},
      {(void **)&csa__api.DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
      {(void **)&csa__api.CtxGetCurrent, "cuCtxGetCurrent"},
      {(void **)&csa__api.CtxPushCurrent, "cuCtxPushCurrent_v2"},
      {(void **)&csa__api.CtxPopCurrent, "cuCtxPopCurrent_v2"},
      {(void **)&csa__api.ModuleLoadData, "cuModuleLoadData"},
      {(void **)&csa__api.ModuleGetFunction, "cuModuleGetFunction"},
      {(void **)&csa__api.FuncSetAttribute, "cuFuncSetAttribute"},
      {(void **)&csa__api.OccupancyMaxActiveBlocksPerMultiprocessor,
       "cuOccupancyMaxActiveBlocksPerMultiprocessor"},
      {(void **)&csa__api.PointerGetAttribute, "cuPointerGetAttribute"},
      /* the legacy-stream flavour: stream 0 means the legacy default
       * stream, as torch's default stream does */
      {(void **)&csa__api.LaunchKernel, "cuLaunchKernel"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *f = csa__lib_sym(h, syms[i].name);
    if (f == NULL) {
      snprintf(csa__api_why_buf, sizeof csa__api_why_buf,
               "the NVIDIA driver is too old: %s lacks %s", CSA__DRIVER_NAME, syms[i].name);
      csa__api_why = csa__api_why_buf;
      return;
    }
    memcpy(syms[i].slot, &f, sizeof f);
  }
  void *opt = csa__lib_sym(h, "cuTensorMapEncodeTiled");
  memcpy((void **)&csa__api.TensorMapEncodeTiled, &opt, sizeof opt);
  csa__CUresult e = csa__api.Init(0);
  if (e != CSA__CUDA_SUCCESS) {
    char t[128];
    csa__cuda_errtext(e, t, sizeof t);
    snprintf(csa__api_why_buf, sizeof csa__api_why_buf, "the NVIDIA driver did not start: %s",
             t);
    csa__api_why = csa__api_why_buf;
    return;
  }
  csa__api_ok = &csa__api;
}

#if defined(_WIN32)
static INIT_ONCE csa__once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK csa__once_cb(PINIT_ONCE o, PVOID p, PVOID *c) {
  (void)o;
  (void)p;
  (void)c;
  csa__cuda_load();
  return TRUE;
}
const csa__cuda_api *csa__cuda_api_get(const char **why) {
  InitOnceExecuteOnce(&csa__once, csa__once_cb, NULL, NULL);
  if (why != NULL)
    *why = csa__api_why;
  return csa__api_ok;
}
#else
static pthread_once_t csa__once = PTHREAD_ONCE_INIT;
const csa__cuda_api *csa__cuda_api_get(const char **why) {
  pthread_once(&csa__once, csa__cuda_load);
  if (why != NULL)
    *why = csa__api_why;
  return csa__api_ok;
}
#endif

void csa__cuda_errtext(csa__CUresult e, char *buf, size_t n) {
  const char *name = NULL, *desc = NULL;
  if (csa__api.GetErrorName != NULL)
    (void)csa__api.GetErrorName(e, &name);
  if (csa__api.GetErrorString != NULL)
    (void)csa__api.GetErrorString(e, &desc);
  if (name != NULL)
    snprintf(buf, n, "%s (%s)", name, desc != NULL ? desc : "no description");
  else
    snprintf(buf, n, "CUDA driver error %d", (int)e);
}
