/*
 * launch.c — development launcher of the Hopper kernel (not part of the
 * package): loads the sm_90a cubin with the CUDA driver API, asks
 * csa__sm90_plan() for the launch, and launches on the caller's stream,
 * exactly as the package's host side does.  Built into a shared library
 * that check.py loads with ctypes.
 */
#include <cuda.h>
#include <stdio.h>
#include <string.h>

#include "attn_sm90_plan.h"

#define CSA__MODS 8
static struct {
  char path[512];
  CUmodule mod;
} csa__mods[CSA__MODS];

static CUmodule csa__module(const char *path) {
  for (int i = 0; i < CSA__MODS; i++)
    if (csa__mods[i].mod != NULL && strcmp(csa__mods[i].path, path) == 0)
      return csa__mods[i].mod;
  for (int i = 0; i < CSA__MODS; i++)
    if (csa__mods[i].mod == NULL) {
      if (cuModuleLoad(&csa__mods[i].mod, path) != CUDA_SUCCESS)
        return NULL;
      snprintf(csa__mods[i].path, sizeof csa__mods[i].path, "%s", path);
      return csa__mods[i].mod;
    }
  return NULL;
}

/* 0 launched, 1 not covered by the plan, < 0 a driver error (negated). */
int sm90_launch(const csa__cuda_attn_args *a, int dtype, void *stream, const char *cubin) {
  CUdevice dev;
  int major = 0, minor = 0;
  CUresult e = cuCtxGetDevice(&dev);
  if (e == CUDA_SUCCESS)
    e = cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  if (e == CUDA_SUCCESS)
    e = cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  if (e != CUDA_SUCCESS)
    return -(int)e;
  csa__sm90_launch p;
  if (!csa__sm90_plan(a, dtype, major, minor, &p))
    return 1;
  CUmodule mod = csa__module(cubin);
  if (mod == NULL)
    return -1000;
  CUfunction f;
  e = cuModuleGetFunction(&f, mod, p.kernel);
  if (e == CUDA_SUCCESS)
    e = cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)p.smem_bytes);
  if (e != CUDA_SUCCESS)
    return -(int)e;
  void *params[1] = {(void *)a};
  e = cuLaunchKernel(f, p.grid[0], p.grid[1], p.grid[2], p.block[0], p.block[1], p.block[2],
                     p.smem_bytes, (CUstream)stream, params, NULL);
  return e == CUDA_SUCCESS ? 0 : -(int)e;
}
