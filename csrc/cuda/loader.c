/*
 * loader.c — contexts, embedded modules and kernel lookup over the driver
 * API (see loader.h for the call pattern, fatbin.h for what is embedded).
 *
 * Context.  Kernels run in the device's *primary* context: the one the CUDA
 * runtime, and so torch, uses, hence the caller's stream handles and device
 * pointers are valid in it.  It is retained once per device for the life of
 * the process (as the runtime does) and pushed only when the calling thread
 * has another context current; csa__cuda_end pops it again.
 *
 * Minimum driver.  The release fatbin is compiled by CUDA 12.9 (NVRTC; see
 * tools/build-fatbin) and packed uncompressed, so loading it asks nothing
 * of the driver but to read CUDA 12 cubins:
 *   - sm_75 .. sm_90a: cubins of ELF ABI version 7, which every driver of
 *     the CUDA 12 family reads (>= 525.60.13 Linux / 527.41 Windows, "minor
 *     version compatibility"): cuDriverGetVersion() >= 12000;
 *   - sm_100, sm_120: cubins of ELF ABI version 8, which drivers read from
 *     CUDA 12.8 on (R570); Blackwell GPUs need such a driver anyway;
 *   - PTX (GPUs newer than every SASS) is JIT-compiled and needs a driver at
 *     least as new as the compiler (CUDA 12.9: R575).
 * A CUDA 13 build (the nvcc path) writes ELF ABI 8 for every architecture
 * and needs a CUDA 13 driver (>= 580).  The rule is the same for both:
 * driver major >= the compiler's major, with the two refinements above.
 */
#include "cuda/loader.h"

#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "csa/csa_cuda.h"
#include "cuda/fatbin.h"

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
static SRWLOCK csa__lock = SRWLOCK_INIT;
static void csa__lock_take(void) { AcquireSRWLockExclusive(&csa__lock); }
static void csa__lock_give(void) { ReleaseSRWLockExclusive(&csa__lock); }
#else
#include <pthread.h>
static pthread_mutex_t csa__lock = PTHREAD_MUTEX_INITIALIZER;
static void csa__lock_take(void) { pthread_mutex_lock(&csa__lock); }
static void csa__lock_give(void) { pthread_mutex_unlock(&csa__lock); }
#endif

void csa__cuda_lock(void) { csa__lock_take(); }
void csa__cuda_unlock(void) { csa__lock_give(); }

/* Published values read without the lock.  A device slot's state and its
 * kernel count only ever go forward, each written (under the lock) after
 * what it publishes is complete, with release order; a reader that sees
 * the new value with acquire order also sees what it covers.  So a call
 * on a device already opened, looking up a kernel already found, takes no
 * lock.  Compilers without the GNU atomics (MSVC, whose builds carry no
 * kernels: csrc/cuda/sources.cmake) read under the lock instead. */
#if defined(__GNUC__) || defined(__clang__)
static int csa__read_published(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void csa__publish(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
#else
static int csa__read_published(const int *p) {
  csa__lock_take();
  const int v = *p;
  csa__lock_give();
  return v;
}
static void csa__publish(int *p, int v) { *p = v; } /* writers hold the lock */
#endif

enum { CSA__MAX_DEVICES = 64, CSA__MAX_MODULES = 8, CSA__MAX_KERNELS = 96, CSA__NAME = 64 };

typedef struct {
  char name[CSA__NAME];
  int module;
  csa__CUfunction fn;
  int smem_set;
} csa__kslot;

typedef struct {
  int state; /* 0: not tried, 1: ready, -1: failed (status, msg below) */
  int fail_status;
  char fail_msg[256];
  csa__CUcontext ctx;
  csa__cuda_devinfo info;
  csa__CUmodule mod[CSA__MAX_MODULES];
  csa__CUresult mod_err[CSA__MAX_MODULES]; /* 0 and mod NULL: not loaded yet */
  csa__kslot k[CSA__MAX_KERNELS];
  int nk;
} csa__devslot;

static csa__devslot csa__dev[CSA__MAX_DEVICES];

int csa__cuda_fail(csa__CUresult e, const char *what) {
  char t[160];
  csa__cuda_errtext(e, t, sizeof t);
  return csa__error(CSA_ECUDA, "CUDA error in %s: %s", what, t);
}

/* Oldest driver of a CUDA release (NVIDIA's CUDA release notes, table
 * "CUDA Toolkit and Corresponding Driver Versions"), for messages. */
static const char *csa__driver_for(int cuda_version) {
  static const struct {
    int v;
    const char *drv;
  } t[] = {{12000, "525.60.13 (Linux) / 527.41 (Windows)"},
           {12010, "530.30.02 (Linux) / 531.14 (Windows)"},
           {12020, "535.54.03 (Linux) / 536.25 (Windows)"},
           {12030, "545.23.06 (Linux) / 545.84 (Windows)"},
           {12040, "550.54.14 (Linux) / 551.61 (Windows)"},
           {12050, "555.42.02 (Linux) / 555.85 (Windows)"},
           {12060, "560.28.03 (Linux) / 560.76 (Windows)"},
           {12080, "570.26 (Linux) / 570.65 (Windows)"},
           {12090, "575.51.03 (Linux) / 576.02 (Windows)"},
           {13000, "580.65.06 (Linux) / 580.88 (Windows)"}};
  const char *best = "a newer one";
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i].v <= cuda_version)
      best = t[i].drv;
  return best;
}

/* 1 if a GPU of architecture sm runs fatbin f: SASS of the same major and a
 * minor <= its own, or PTX the driver can JIT (driver >= the compiler). */
static int csa__covers(const csa__fatbin *f, int sm, int driver) {
  if (f->arch_only)
    return sm == f->arch_only;
  const char *s = f->sass;
  while (s != NULL && *s) {
    int a = 0;
    while (*s >= '0' && *s <= '9')
      a = a * 10 + (*s++ - '0');
    if (a / 10 == sm / 10 && a <= sm)
      return 1;
    if (*s == ',')
      s++;
    else
      break;
  }
  return f->ptx != 0 && f->ptx <= sm && driver >= csa__fatbin_cuda_version;
}

/* What this build's kernels need of the driver and of GPU ordinal, without
 * creating a context.  Returns CSA_OK or a status with why filled. */
static int csa__check(const csa__cuda_api **api_out, int ordinal, int *sm_out, char *why,
                      size_t n) {
  if (csa__n_fatbins == 0) {
    snprintf(why, n, "built without CUDA kernels");
    return CSA_ENOTSUP;
  }
  const char *reason;
  const csa__cuda_api *api = csa__cuda_api_get(&reason);
  if (api == NULL) {
    snprintf(why, n, "%s", reason);
    return CSA_ENOTSUP;
  }
  *api_out = api;
  int drv = 0;
  (void)api->DriverGetVersion(&drv);
  const int need = csa__fatbin_cuda_version / 1000 * 1000;
  if (drv < need) {
    snprintf(why, n,
             "NVIDIA driver too old for these kernels (built by CUDA %d.%d): needs driver >= "
             "%s, this one supports CUDA %d.%d",
             csa__fatbin_cuda_version / 1000, csa__fatbin_cuda_version % 1000 / 10,
             csa__driver_for(need), drv / 1000, drv % 1000 / 10);
    return CSA_ENOTSUP;
  }
  int count = 0;
  csa__CUresult e = api->DeviceGetCount(&count);
  if (e != CSA__CUDA_SUCCESS || ordinal < 0 || ordinal >= count) {
    snprintf(why, n, "no CUDA device %d (the driver sees %d)", ordinal, count);
    return CSA_EDEVICE;
  }
  if (ordinal >= CSA__MAX_DEVICES) {
    snprintf(why, n, "CUDA device %d: at most %d devices are supported", ordinal,
             CSA__MAX_DEVICES);
    return CSA_ENOTSUP;
  }
  csa__CUdevice d;
  int major = 0, minor = 0;
  e = api->DeviceGet(&d, ordinal);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DeviceGetAttribute(&major, CSA__CU_DEV_ATTR_CC_MAJOR, d);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DeviceGetAttribute(&minor, CSA__CU_DEV_ATTR_CC_MINOR, d);
  if (e != CSA__CUDA_SUCCESS) {
    char t[160];
    csa__cuda_errtext(e, t, sizeof t);
    snprintf(why, n, "reading CUDA device %d failed: %s", ordinal, t);
    return CSA_ECUDA;
  }
  const int sm = 10 * major + minor;
  *sm_out = sm;
  if (sm >= 100 && drv < 12080) { /* CUDA 12 cubins for Blackwell: ELF ABI 8 */
    snprintf(why, n,
             "GPU sm_%d needs driver >= %s (CUDA 12.8) for its machine code; this one "
             "supports CUDA %d.%d",
             sm, csa__driver_for(12080), drv / 1000, drv % 1000 / 10);
    return CSA_ENOTSUP;
  }
  for (int i = 0; i < csa__n_fatbins; i++) {
    const csa__fatbin *f = &csa__fatbins[i];
    if (f->arch_only || csa__covers(f, sm, drv))
      continue;
    if (f->ptx != 0 && f->ptx <= sm)
      snprintf(why, n,
               "GPU sm_%d needs the embedded PTX (compute_%d), which needs driver >= %s "
               "(CUDA %d.%d); this one supports CUDA %d.%d",
               sm, f->ptx, csa__driver_for(csa__fatbin_cuda_version),
               csa__fatbin_cuda_version / 1000, csa__fatbin_cuda_version % 1000 / 10,
               drv / 1000, drv % 1000 / 10);
    else
      snprintf(why, n, "GPU sm_%d not covered by the embedded kernels (machine code for sm %s%s)",
               sm, f->sass, f->ptx ? ", PTX for newer" : "");
    return CSA_ENOTSUP;
  }
  return CSA_OK;
}

int csa_cuda_status(int device_index, char *reason, size_t reason_size) {
  char buf[256];
  const csa__cuda_api *api = NULL;
  int sm = 0;
  int st = csa__check(&api, device_index, &sm, buf, sizeof buf);
  if (reason != NULL && reason_size > 0)
    snprintf(reason, reason_size, "%s", st == CSA_OK ? "" : buf);
  return st == CSA_OK;
}

/* First use of a device (under the lock): checks, retains the primary
 * context, reads the attributes the launch plans need. */
static void csa__dev_init(csa__devslot *s, int ordinal) {
  const csa__cuda_api *api = NULL;
  int sm = 0;
  csa__publish(&s->state, -1);
  s->fail_status = csa__check(&api, ordinal, &sm, s->fail_msg, sizeof s->fail_msg);
  if (s->fail_status != CSA_OK)
    return;
  csa__CUdevice d;
  csa__CUresult e = api->DeviceGet(&d, ordinal);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DevicePrimaryCtxRetain(&s->ctx, d);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DeviceGetAttribute(&s->info.smem_optin, CSA__CU_DEV_ATTR_SMEM_PER_BLOCK_OPTIN, d);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DeviceGetAttribute(&s->info.sm_count, CSA__CU_DEV_ATTR_MULTIPROCESSOR_COUNT, d);
  if (e == CSA__CUDA_SUCCESS)
    e = api->DeviceGetAttribute(&s->info.uva, CSA__CU_DEV_ATTR_UNIFIED_ADDRESSING, d);
  if (e != CSA__CUDA_SUCCESS) {
    char t[160];
    csa__cuda_errtext(e, t, sizeof t);
    snprintf(s->fail_msg, sizeof s->fail_msg, "CUDA error while opening device %d: %s", ordinal,
             t);
    s->fail_status = CSA_ECUDA;
    return;
  }
  s->info.ordinal = ordinal;
  s->info.sm = sm;
  csa__publish(&s->state, 1);
}

int csa__cuda_begin(csa__cuda_call *c, int ordinal) {
  memset(c, 0, sizeof *c);
  if (ordinal < 0 || ordinal >= CSA__MAX_DEVICES) {
    char why[256];
    const csa__cuda_api *api = NULL;
    int sm = 0;
    int st = csa__check(&api, ordinal, &sm, why, sizeof why);
    return csa__error(st == CSA_OK ? CSA_EDEVICE : st, "%s", why);
  }
  csa__devslot *s = &csa__dev[ordinal];
  if (csa__read_published(&s->state) != 1) {
    csa__lock_take();
    if (s->state == 0)
      csa__dev_init(s, ordinal);
    csa__lock_give();
    if (s->state != 1)
      return csa__error(s->fail_status, "%s", s->fail_msg);
  }
  c->api = csa__cuda_api_get(NULL);
  c->dev = &s->info;
  c->slot = ordinal;
  /* Torch keeps the device's primary context current on its threads, so
   * this usually finds it and pushes nothing.  The question is still asked
   * on every call (a thread-local read in the driver): the thread's context
   * can change between two of our calls without our knowing
   * (torch.cuda.set_device, another library's cuCtxPushCurrent), and a
   * launch in the wrong context fails or, worse, runs on another device. */
  csa__CUcontext cur = NULL;
  csa__CUresult e = c->api->CtxGetCurrent(&cur);
  if (e != CSA__CUDA_SUCCESS)
    return csa__cuda_fail(e, "cuCtxGetCurrent");
  if (cur != s->ctx) {
    e = c->api->CtxPushCurrent(s->ctx);
    if (e != CSA__CUDA_SUCCESS)
      return csa__cuda_fail(e, "cuCtxPushCurrent");
    c->pushed = 1;
  }
  return CSA_OK;
}

void csa__cuda_end(csa__cuda_call *c) {
  if (c->pushed) {
    csa__CUcontext popped;
    (void)c->api->CtxPopCurrent(&popped);
    c->pushed = 0;
  }
}

static int csa__module_index(const char *module) {
  for (int i = 0; i < csa__n_fatbins && i < CSA__MAX_MODULES; i++)
    if (strcmp(csa__fatbins[i].name, module) == 0)
      return i;
  return -1;
}

int csa__cuda_has_module(const csa__cuda_call *c, const char *module) {
  int i = csa__module_index(module);
  if (i < 0)
    return 0;
  const csa__fatbin *f = &csa__fatbins[i];
  return f->arch_only == 0 || f->arch_only == c->dev->sm;
}

/* Loads module mi on the slot's device (under the lock; the caller's
 * context is current).  Maps the driver's refusals to clear messages. */
static int csa__module_load(csa__cuda_call *c, csa__devslot *s, int mi) {
  if (s->mod[mi] != NULL)
    return CSA_OK;
  const csa__fatbin *f = &csa__fatbins[mi];
  csa__CUresult e = s->mod_err[mi];
  if (e == CSA__CUDA_SUCCESS) {
    e = c->api->ModuleLoadData(&s->mod[mi], f->data);
    if (e != CSA__CUDA_SUCCESS) {
      s->mod[mi] = NULL;
      s->mod_err[mi] = e; /* a refused image is not retried per call */
    }
  }
  if (e == CSA__CUDA_SUCCESS)
    return CSA_OK;
  char t[160];
  csa__cuda_errtext(e, t, sizeof t);
  int drv = 0;
  (void)c->api->DriverGetVersion(&drv);
  const int v = csa__fatbin_cuda_version;
  switch (e) {
  case CSA__CUDA_ERROR_NO_BINARY_FOR_GPU:
    return csa__error(CSA_ENOTSUP,
                      "GPU sm_%d not covered by the embedded kernels of %s (machine code for "
                      "sm %s): %s",
                      s->info.sm, f->name, f->sass, t);
  case CSA__CUDA_ERROR_INVALID_IMAGE: /* e.g. a cubin ELF ABI this driver cannot read */
    return csa__error(CSA_ENOTSUP,
                      "the NVIDIA driver cannot read the embedded %s kernels (built by CUDA "
                      "%d.%d for drivers >= %s; this one supports CUDA %d.%d): %s",
                      f->name, v / 1000, v % 1000 / 10, csa__driver_for(v / 1000 * 1000),
                      drv / 1000, drv % 1000 / 10, t);
  case CSA__CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
  case CSA__CUDA_ERROR_INVALID_PTX:
  case CSA__CUDA_ERROR_JIT_COMPILER_NOT_FOUND:
  case CSA__CUDA_ERROR_JIT_COMPILATION_DISABLED:
    return csa__error(CSA_ENOTSUP,
                      "GPU sm_%d runs the embedded PTX, which needs a driver that JIT-compiles "
                      "CUDA %d.%d PTX (>= %s); this one supports CUDA %d.%d: %s",
                      s->info.sm, v / 1000, v % 1000 / 10, csa__driver_for(v), drv / 1000,
                      drv % 1000 / 10, t);
  default:
    return csa__error(CSA_ECUDA, "CUDA error loading the %s kernels: %s", f->name, t);
  }
}

int csa__cuda_find(csa__cuda_call *c, const char *module, const char *name,
                   csa__cuda_kernel *k) {
  csa__devslot *s = &csa__dev[c->slot];
  const int mi = csa__module_index(module);
  if (mi < 0)
    return csa__error(CSA_ENOTSUP, "this build has no %s kernels", module);
  /* Kernels already found: published entries, no lock (csa__publish). */
  const int published = csa__read_published(&s->nk);
  for (int j = 0; j < published; j++)
    if (s->k[j].module == mi && strcmp(s->k[j].name, name) == 0) {
      k->fn = s->k[j].fn;
      k->smem_set = &s->k[j].smem_set;
      return CSA_OK;
    }
  int st = CSA_OK;
  csa__lock_take();
  int i;
  for (i = 0; i < s->nk; i++)
    if (s->k[i].module == mi && strcmp(s->k[i].name, name) == 0)
      break;
  if (i == s->nk) {
    if (s->nk == CSA__MAX_KERNELS || strlen(name) >= CSA__NAME) {
      st = csa__error(CSA_ENOTSUP, "kernel cache full or name too long: %s", name);
    } else {
      st = csa__module_load(c, s, mi);
      if (st == CSA_OK) {
        csa__CUresult e = c->api->ModuleGetFunction(&s->k[i].fn, s->mod[mi], name);
        if (e != CSA__CUDA_SUCCESS) {
          char t[160];
          csa__cuda_errtext(e, t, sizeof t);
          st = csa__error(CSA_ECUDA, "kernel %s not found in the %s module: %s", name, module,
                          t);
        } else {
          memcpy(s->k[i].name, name, strlen(name) + 1);
          s->k[i].module = mi;
          s->k[i].smem_set = 48 * 1024;
          csa__publish(&s->nk, s->nk + 1);
        }
      }
    }
  }
  if (st == CSA_OK) {
    k->fn = s->k[i].fn;
    k->smem_set = &s->k[i].smem_set;
  }
  csa__lock_give();
  return st;
}

int csa__cuda_set_smem(csa__cuda_call *c, csa__cuda_kernel *k, size_t dyn_smem) {
  /* The grant only grows (published like the kernel count): a call within
   * it takes no lock. */
  if ((size_t)csa__read_published(k->smem_set) >= dyn_smem)
    return CSA_OK;
  int st = CSA_OK;
  csa__lock_take();
  if ((size_t)*k->smem_set < dyn_smem) {
    csa__CUresult e = c->api->FuncSetAttribute(
        k->fn, CSA__CU_FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)dyn_smem);
    if (e != CSA__CUDA_SUCCESS)
      st = csa__cuda_fail(e, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    else
      csa__publish(k->smem_set, (int)dyn_smem);
  }
  csa__lock_give();
  return st;
}

int csa__cuda_launch(csa__cuda_call *c, const csa__cuda_kernel *k, const unsigned grid[3],
                     unsigned block, size_t dyn_smem, void *stream, const void *arg) {
  void *params[1] = {(void *)arg};
  csa__CUresult e = c->api->LaunchKernel(k->fn, grid[0], grid[1], grid[2], block, 1, 1,
                                         (unsigned)dyn_smem, (csa__CUstream)stream, params, NULL);
  if (e != CSA__CUDA_SUCCESS)
    return csa__cuda_fail(e, "cuLaunchKernel");
  return CSA_OK;
}

int csa__cuda_flags_address(const csa_tensor *flags, int ordinal, int32_t **dev) {
  if (flags == NULL || flags->data == NULL || flags->dtype != CSA_INT32 || flags->ndim < 1 ||
      flags->shape[0] < 1)
    return csa__error(CSA_EINVAL, "flags must be an int32 tensor with at least one element");
  if (flags->device_type == CSA_DEVICE_CUDA) {
    if (flags->device_id != ordinal)
      return csa__error(CSA_EDEVICE,
                        "flags must be on CUDA device %d or in pinned host memory", ordinal);
    *dev = (int32_t *)flags->data;
    return CSA_OK;
  }
  /* Host memory: only pinned (page-locked) memory has a device address;
   * pageable memory would fault inside a kernel, so it is refused here. */
  csa__cuda_call c;
  const int st = csa__cuda_begin(&c, ordinal);
  if (st != CSA_OK)
    return st;
  csa__CUdeviceptr dp = 0;
  if (flags->device_type == CSA_DEVICE_CPU &&
      c.api->PointerGetAttribute(&dp, CSA__CU_POINTER_ATTR_DEVICE_POINTER,
                                 (csa__CUdeviceptr)(uintptr_t)flags->data) != CSA__CUDA_SUCCESS)
    dp = 0;
  csa__cuda_end(&c);
  if (dp == 0)
    return csa__error(CSA_EDEVICE, "flags must be in device memory or pinned host memory "
                                   "(torch: pin_memory=True)");
  *dev = (int32_t *)(uintptr_t)dp;
  return CSA_OK;
}
