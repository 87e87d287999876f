/*
 * no_cuda.c — the CUDA entry points of a build without a CUDA compiler: they
 * answer CSA_ENOTSUP so callers can pick another backend.
 */
#include "internal.h"

int csa_have_cuda(void) { return 0; }

int csa_attn_cuda(const csa_attn_params *p) {
  (void)p;
  return csa__error(CSA_ENOTSUP,
                    "this build of comfy-sparse-attn has no CUDA kernels (built without nvcc "
                    "or with CSA_WITH_CUDA=OFF)");
}
