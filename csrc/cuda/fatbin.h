/*
 * fatbin.h — the kernel images embedded in the extension.
 *
 * Each csrc/cuda/<stem>.cu is compiled at build time (tools/build-fatbin:
 * nvcc, or for release wheels NVRTC 12.9 + nvFatbin) into <stem>.fatbin:
 * machine code (SASS) for every listed architecture plus PTX of the newest
 * virtual one, which the driver JIT-compiles for GPUs newer
 * than every SASS.  A file named *_sm90.cu is compiled for sm_90a only (the
 * Hopper wgmma / TMA instructions exist nowhere else) and becomes an
 * optional module: GPUs other than CC 9.0 never load it.
 *
 * No NVRTC fallback (compiling at first use where the build had no nvcc):
 * the wheels carry SASS for every supported architecture plus PTX, so only
 * an sdist built without nvcc would need it, at the price of shipping the
 * sources and CUDA headers, finding a matching libnvrtc at run time and a
 * compile of minutes on first use; such builds run the other backends.
 *
 * fatbin_embed.c turns the build's csa_fatbins.inc (one CSA__FATBIN row per
 * module, written by tools/build-fatbin) into the table below.
 */
#ifndef CSA_CUDA_FATBIN_H
#define CSA_CUDA_FATBIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csa__fatbin {
  const char *name;          /* file stem, e.g. "attn_fwd" */
  const unsigned char *data; /* the fatbin image (cuModuleLoadData input) */
  const unsigned char *end;  /* one past its last byte */
  const char *sass; /* architectures with machine code, "75,80,86" */
  int ptx;          /* virtual architecture of the embedded PTX, 0: none */
  int arch_only;    /* 90: an sm_90a module (CC 9.0 only, optional); 0: general */
} csa__fatbin;

/* The embedded modules (n = 0 in a build without CUDA kernels). */
extern const csa__fatbin csa__fatbins[];
extern const int csa__n_fatbins;
/* CUDA version of the compiler that built them (12090 = 12.9), 0 if none:
 * the driver must be of the same major release (loader.c). */
extern const int csa__fatbin_cuda_version;

#ifdef __cplusplus
}
#endif
#endif /* CSA_CUDA_FATBIN_H */
