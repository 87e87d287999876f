/*
 * test_dispatch.c — the selection walk of csrc/core/dispatch.c, rule by rule:
 * priority per device class, each constraint dropping the backend with its
 * reason, overrides (forced, prefer, disabled), and malformed facts.
 */
#include <string.h>

#include "core/dispatch.h"
#include "csa_test.h"

#define ALL_AVAILABLE ((1u << CSA_BACKEND_COUNT) - 1u)

static csa__dispatch_facts base_cuda(int sm) {
  csa__dispatch_facts f;
  memset(&f, 0, sizeof f);
  f.device_type = CSA_DEVICE_CUDA;
  f.sm = sm;
  f.dtype = CSA_FLOAT16;
  f.head_dim = f.head_dim_v = 64;
  f.heads = f.heads_kv = 8;
  f.available = ALL_AVAILABLE;
  f.prefer = f.forced = -1;
  f.native_cuda = 1;
  return f;
}

static csa__dispatch_facts base_cpu(void) {
  csa__dispatch_facts f = base_cuda(0);
  f.device_type = CSA_DEVICE_CPU;
  f.dtype = CSA_FLOAT32;
  return f;
}

static int first(const csa__dispatch_facts *f) {
  csa__dispatch_result r;
  int st = csa__dispatch_select(f, &r);
  if (st != CSA_OK || r.n == 0)
    return -1;
  return r.order[0];
}

/* Selects and returns whether b is a candidate; *why gets its reason. */
static int chosen(const csa__dispatch_facts *f, int b, char *why) {
  csa__dispatch_result r;
  int st = csa__dispatch_select(f, &r);
  CSA_CHECK(st == CSA_OK, "select failed: %s", csa_errmsg());
  if (why)
    strcpy(why, r.reason[b]);
  for (int i = 0; i < r.n; i++)
    if (r.order[i] == b)
      return 1;
  return 0;
}

static void test_names(void) {
  static const char *names[] = {"sage2", "flash", "xformers", "sdpa", "native"};
  for (int b = 0; b < CSA_BACKEND_COUNT; b++) {
    CSA_CHECK(strcmp(csa__backend_caps_get(b)->name, names[b]) == 0, "name of %d", b);
    CSA_CHECK(csa__backend_from_name(names[b]) == b, "id of %s", names[b]);
  }
  CSA_CHECK(csa__backend_from_name("flash2") == -1, "unknown name");
  CSA_CHECK(csa__backend_from_name(NULL) == -1, "NULL name");
  CSA_CHECK(csa__backend_caps_get(-1) == NULL && csa__backend_caps_get(CSA_BACKEND_COUNT) == NULL,
            "caps out of range");
}

static void test_priority(void) {
  csa__dispatch_result r;
  /* SM >= 8.0, everything installed: sage2 > flash > xformers > sdpa, native last. */
  csa__dispatch_facts f = base_cuda(90);
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  int want[] = {CSA_BACKEND_SAGE2, CSA_BACKEND_FLASH, CSA_BACKEND_XFORMERS, CSA_BACKEND_SDPA,
                CSA_BACKEND_NATIVE};
  CSA_CHECK(r.n == 5, "n = %d", r.n);
  for (int i = 0; i < 5 && i < r.n; i++)
    CSA_CHECK(r.order[i] == want[i], "sm90 position %d: %d, want %d", i, r.order[i], want[i]);
  CSA_CHECK(strstr(r.policy, "sm90") != NULL, "policy row: %s", r.policy);

  /* sm90, small head dim: the native kernel was measured fastest there, so
   * it goes first; sm80-89 has no numbers yet. */
  f = base_cuda(90);
  f.head_dim = f.head_dim_v = CSA_DISPATCH_SMALL_HEAD;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.n == 4 && r.order[0] == CSA_BACKEND_NATIVE && r.order[1] == CSA_BACKEND_FLASH,
            "sm90 D = 32: native first, got %d (n %d)", r.order[0], r.n);
  CSA_CHECK(strstr(r.policy, "D <= 32") != NULL, "small-head policy row: %s", r.policy);
  f.head_dim = f.head_dim_v = CSA_DISPATCH_SMALL_HEAD + 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "sm90 D = 33: seed order (sage2 takes 64/128 only)");
  f = base_cuda(86);
  f.head_dim = f.head_dim_v = 16;
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "sm86 D = 16: no evidence, native stays last");

  /* Older GPU: xformers > sdpa; sage2 and flash refused for compute capability. */
  f = base_cuda(75);
  char why[CSA_DISPATCH_REASON_MAX];
  CSA_CHECK(first(&f) == CSA_BACKEND_XFORMERS, "sm75 first");
  CSA_CHECK(!chosen(&f, CSA_BACKEND_FLASH, why) && strstr(why, ">= 8.0") && strstr(why, "7.5"),
            "flash on sm75: %s", why);
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why), "sage2 on sm75");
  f.available &= ~(1u << CSA_BACKEND_XFORMERS);
  CSA_CHECK(first(&f) == CSA_BACKEND_SDPA, "sm75 without xformers");

  /* CPU: native first; only native and sdpa run there. */
  f = base_cpu();
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.n == 2 && r.order[0] == CSA_BACKEND_NATIVE && r.order[1] == CSA_BACKEND_SDPA,
            "cpu order n=%d first=%d", r.n, r.order[0]);
  CSA_CHECK(strstr(r.reason[CSA_BACKEND_FLASH], "has no cpu kernel") != NULL, "flash on cpu: %s",
            r.reason[CSA_BACKEND_FLASH]);
  CSA_CHECK(strstr(r.reason[CSA_BACKEND_XFORMERS], "has no cpu kernel") != NULL,
            "xformers on cpu");

  /* Nothing installed on a GPU: the torch tier, then native. */
  f = base_cuda(80);
  f.available = 1u << CSA_BACKEND_SDPA; /* torch only */
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.n == 2 && r.order[0] == CSA_BACKEND_SDPA && r.order[1] == CSA_BACKEND_NATIVE,
            "bare gpu n=%d", r.n);
  CSA_CHECK(strstr(r.reason[CSA_BACKEND_FLASH], "flash_attn is not installed") != NULL,
            "flash reason: %s", r.reason[CSA_BACKEND_FLASH]);

  /* The priority helper always lists every backend once. */
  int order[CSA_BACKEND_COUNT];
  int devs[][2] = {{CSA_DEVICE_CPU, 0}, {CSA_DEVICE_CUDA, 61}, {CSA_DEVICE_CUDA, 80},
                   {CSA_DEVICE_CUDA, 90}, {CSA_DEVICE_CUDA, 120}};
  for (int i = 0; i < 5 * 2 * 4; i++) {
    csa__dispatch_facts pf;
    memset(&pf, 0, sizeof pf);
    pf.device_type = devs[i / 8][0];
    pf.sm = devs[i / 8][1];
    pf.dtype = CSA_BFLOAT16;
    pf.head_dim = pf.head_dim_v = i % 2 ? 16 : 64;
    pf.rows = (i / 2) % 4;
    csa__dispatch_priority(&pf, order);
    unsigned seen = 0;
    for (int j = 0; j < CSA_BACKEND_COUNT; j++)
      seen |= 1u << order[j];
    CSA_CHECK(seen == ALL_AVAILABLE, "priority %d lists every backend once (0x%x)", i, seen);
  }

  /* The rows class reads only B and T_q. */
  CSA_CHECK(csa__dispatch_rows(0, 0) == CSA_ROWS_ONE && csa__dispatch_rows(1, 5000) == CSA_ROWS_ONE,
            "one sequence");
  CSA_CHECK(csa__dispatch_rows(2, 27000) == CSA_ROWS_FEW_LONG, "two long sequences");
  CSA_CHECK(csa__dispatch_rows(1500, 400000) == CSA_ROWS_MANY_LONG, "many long sequences");
  CSA_CHECK(csa__dispatch_rows(20000, 720000) == CSA_ROWS_SHORT, "tiny sequences");

  /* sm90: native first for short rows and for a few long wgmma-shaped
   * sequences, last for one long sequence. */
  csa__dispatch_facts h;
  memset(&h, 0, sizeof h);
  h.device_type = CSA_DEVICE_CUDA;
  h.sm = 90;
  h.dtype = CSA_BFLOAT16;
  h.head_dim = h.head_dim_v = 64;
  h.rows = CSA_ROWS_FEW_LONG;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[0] == CSA_BACKEND_NATIVE, "sm90 few long D64: native first");
  h.head_dim = h.head_dim_v = 96;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[0] != CSA_BACKEND_NATIVE, "sm90 few long D96: not first");
  h.rows = CSA_ROWS_MANY_LONG;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[0] != CSA_BACKEND_NATIVE, "sm90 many long D96: not first");
  h.head_dim = h.head_dim_v = 64;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[0] == CSA_BACKEND_NATIVE, "sm90 many long D64: native first");
  h.head_dim = h.head_dim_v = 96;
  h.rows = CSA_ROWS_SHORT;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[0] == CSA_BACKEND_NATIVE, "sm90 short rows: native first");
  h.rows = CSA_ROWS_ONE;
  h.head_dim = h.head_dim_v = 128;
  csa__dispatch_priority(&h, order);
  CSA_CHECK(order[CSA_BACKEND_COUNT - 1] == CSA_BACKEND_NATIVE, "sm90 one sequence: native last");
}

static void test_constraints(void) {
  char why[CSA_DISPATCH_REASON_MAX];
  csa__dispatch_facts f;

  /* dtype: flash takes fp32 by casting to bf16; sage2 natively; native too. */
  f = base_cuda(90);
  f.dtype = CSA_FLOAT32;
  CSA_CHECK(chosen(&f, CSA_BACKEND_FLASH, why), "flash fp32 by cast");
  CSA_CHECK(chosen(&f, CSA_BACKEND_SAGE2, why), "sage2 fp32");
  f.dtype = CSA_FLOAT64;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why) && strstr(why, "float64"), "fp64: %s", why);

  /* head dims: sage2 only 64 / 128; flash up to 256; native up to 256. */
  f = base_cuda(90);
  f.head_dim = f.head_dim_v = 96;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why) && strstr(why, "head dim 96"), "sage d96: %s",
            why);
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "d96 goes to flash");
  f.head_dim = f.head_dim_v = 128;
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "d128 goes to sage2");
  f.head_dim = f.head_dim_v = 320;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_FLASH, why) && strstr(why, "exceeds"), "flash d320: %s", why);
  CSA_CHECK(!chosen(&f, CSA_BACKEND_NATIVE, why), "native d320");
  CSA_CHECK(first(&f) == CSA_BACKEND_SDPA, "d320 -> sdpa");

  /* D_v != D: flash and sage2 refuse, xformers takes it. */
  f = base_cuda(90);
  f.head_dim_v = 32;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_FLASH, why) && strstr(why, "D_v == D"), "flash dv: %s", why);
  CSA_CHECK(first(&f) == CSA_BACKEND_XFORMERS, "dv != d -> xformers");

  /* GQA: every backend here takes it. */
  f = base_cuda(90);
  f.heads_kv = 2;
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "gqa -> sage2");

  /* causal: sage2 only when every L_q == L_kv is known. */
  f = base_cuda(90);
  f.causal = 1;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why) && strstr(why, "top-left"), "sage causal: %s",
            why);
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "causal, lengths unknown -> flash");
  f.lengths_equal = 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "causal, equal lengths -> sage2");

  /* LSE: flash and native only. */
  f = base_cuda(90);
  f.lse = 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "lse -> flash");
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why) && strstr(why, "LSE"), "sdpa lse: %s", why);
  f.available &= ~(1u << CSA_BACKEND_FLASH);
  CSA_CHECK(first(&f) == CSA_BACKEND_NATIVE, "lse without flash -> native");
  f = base_cpu();
  f.lse = 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_NATIVE, "cpu lse -> native");

  /* autograd: only backends with a backward. */
  f = base_cuda(90);
  f.grad = 1;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why) && strstr(why, "backward"), "sage grad: %s", why);
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "grad -> flash");
  f = base_cpu();
  f.grad = 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_SDPA, "cpu grad -> sdpa");
  CSA_CHECK(!chosen(&f, CSA_BACKEND_NATIVE, why) && strstr(why, "backward"), "native grad");

  /* exact-only mode drops the lossy sage2. */
  f = base_cuda(90);
  f.exact_only = 1;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why) && strstr(why, "exact-only"), "exact: %s", why);
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "exact -> flash");

  /* native on a CUDA device in a build without CUDA kernels. */
  f = base_cuda(90);
  f.native_cuda = 0;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_NATIVE, why) && strstr(why, "no CUDA kernels"),
            "native no cuda: %s", why);
  /* ... or where the driver says the device cannot run it: its reason. */
  f.native_cuda_why = "CUDA driver too old for this build";
  CSA_CHECK(!chosen(&f, CSA_BACKEND_NATIVE, why) && strstr(why, "driver too old"),
            "native cuda_status reason: %s", why);
  /* native never needs a library. */
  f = base_cpu();
  f.available = 0;
  CSA_CHECK(first(&f) == CSA_BACKEND_NATIVE, "native without libraries");
}

/* torch's GPU kernels have no 16-bit kernel for head dims that are not a
 * multiple of 8: the torch tier declines those on CUDA and ROCm only. */
static void test_gpu_half_head_dims(void) {
  char why[CSA_DISPATCH_REASON_MAX];
  csa__dispatch_facts f = base_cuda(90);
  f.available = 1u << CSA_BACKEND_SDPA;
  f.head_dim = f.head_dim_v = 31;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why) && strstr(why, "multiples of 8") &&
                strstr(why, "D = 31"),
            "sdpa fp16 d31: %s", why);
  CSA_CHECK(first(&f) == CSA_BACKEND_NATIVE, "fp16 d31 on cuda -> native");
  f.dtype = CSA_BFLOAT16;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why), "sdpa bf16 d31");
  f.dtype = CSA_FLOAT32;
  CSA_CHECK(chosen(&f, CSA_BACKEND_SDPA, why), "sdpa fp32 d31: %s", why);
  f.dtype = CSA_FLOAT16;
  f.head_dim = 40;
  f.head_dim_v = 12; /* D_v counts too */
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why) && strstr(why, "D_v = 12"), "sdpa dv12: %s", why);
  f.head_dim_v = 24;
  CSA_CHECK(chosen(&f, CSA_BACKEND_SDPA, why), "sdpa d40/dv24: %s", why);
  f = base_cpu();
  f.dtype = CSA_FLOAT16;
  f.head_dim = f.head_dim_v = 31;
  CSA_CHECK(chosen(&f, CSA_BACKEND_SDPA, why), "sdpa fp16 d31 on cpu: %s", why);
  f.device_type = CSA_DEVICE_ROCM;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SDPA, why) && strstr(why, "multiples of 8"),
            "sdpa fp16 d31 on rocm: %s", why);
}

/* Devices other than CPU and CUDA: the torch tier only; native CUDA is never
 * offered on ROCm. */
static void test_other_devices(void) {
  char why[CSA_DISPATCH_REASON_MAX];
  csa__dispatch_result r;
  int devs[] = {CSA_DEVICE_ROCM, CSA_DEVICE_METAL, CSA_DEVICE_ONEAPI, CSA_DEVICE_OTHER};
  for (int i = 0; i < 4; i++) {
    csa__dispatch_facts f = base_cuda(0);
    f.device_type = devs[i];
    CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
    CSA_CHECK(r.n == 1 && r.order[0] == CSA_BACKEND_SDPA, "device %d: n %d", devs[i], r.n);
    CSA_CHECK(!chosen(&f, CSA_BACKEND_NATIVE, why) && strstr(why, csa_device_name(devs[i])),
              "native on %s: %s", csa_device_name(devs[i]), why);
  }
}

/* sageattention 1.x: causal calls only, a fact (lib_major), not a rewrite. */
static void test_library_version_rule(void) {
  char why[CSA_DISPATCH_REASON_MAX];
  csa__dispatch_facts f = base_cuda(90);
  f.lib_major[CSA_BACKEND_SAGE2] = 1;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_SAGE2, why) && strstr(why, "sageattention 1.x"),
            "sage 1.x non-causal: %s", why);
  CSA_CHECK(first(&f) == CSA_BACKEND_FLASH, "sage 1.x non-causal -> flash");
  f.causal = 1;
  f.lengths_equal = 1;
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "sage 1.x causal");
  f.causal = 0;
  f.lib_major[CSA_BACKEND_SAGE2] = 2;
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "sage 2.x non-causal");
  f.lib_major[CSA_BACKEND_SAGE2] = 0; /* unknown version: no rule */
  CSA_CHECK(first(&f) == CSA_BACKEND_SAGE2, "sage unknown version");
  CSA_CHECK(csa__backend_caps_get(CSA_BACKEND_SAGE2)->noncausal_min_major == 2, "caps field");
}

static void test_overrides(void) {
  char why[CSA_DISPATCH_REASON_MAX];
  csa__dispatch_result r;
  csa__dispatch_facts f = base_cuda(90);

  f.forced = CSA_BACKEND_XFORMERS;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.n == 1 && r.order[0] == CSA_BACKEND_XFORMERS, "forced xformers");
  CSA_CHECK(strstr(r.reason[CSA_BACKEND_SAGE2], "'xformers' was requested") != NULL,
            "forced reason: %s", r.reason[CSA_BACKEND_SAGE2]);
  /* A forced backend that cannot take the call leaves no candidate, and
   * its own reason says why. */
  f.forced = CSA_BACKEND_SAGE2;
  f.head_dim = f.head_dim_v = 40;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.n == 0 && strstr(r.reason[CSA_BACKEND_SAGE2], "head dim 40"), "forced sage d40");

  /* ComfyUI's --use-flash-attention: flash to the front. */
  f = base_cuda(90);
  f.prefer = CSA_BACKEND_FLASH;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_OK);
  CSA_CHECK(r.order[0] == CSA_BACKEND_FLASH && r.order[1] == CSA_BACKEND_SAGE2 && r.n == 5,
            "prefer flash: %d %d", r.order[0], r.order[1]);
  /* ... but not when it cannot take the call. */
  f.head_dim_v = 32;
  CSA_CHECK(first(&f) == CSA_BACKEND_XFORMERS, "prefer flash, dv != d");
  /* --use-pytorch-cross-attention on CPU. */
  f = base_cpu();
  f.prefer = CSA_BACKEND_SDPA;
  CSA_CHECK(first(&f) == CSA_BACKEND_SDPA, "prefer sdpa on cpu");

  /* --disable-xformers */
  f = base_cuda(75);
  f.disabled = 1u << CSA_BACKEND_XFORMERS;
  CSA_CHECK(!chosen(&f, CSA_BACKEND_XFORMERS, why) && strstr(why, "ComfyUI"), "disabled: %s",
            why);
  CSA_CHECK(first(&f) == CSA_BACKEND_SDPA, "disabled xformers -> sdpa");
}

static void test_bad_facts(void) {
  csa__dispatch_result r;
  csa__dispatch_facts f = base_cpu();
  CSA_CHECK_STATUS(csa__dispatch_select(NULL, &r), CSA_EINVAL);
  CSA_CHECK_STATUS(csa__dispatch_select(&f, NULL), CSA_EINVAL);
  f.device_type = 7; /* DLPack Vulkan: not in the device table */
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_EINVAL);
  CSA_CHECK(strstr(csa_errmsg(), "device_type") != NULL, "message: %s", csa_errmsg());
  f = base_cpu();
  f.forced = CSA_BACKEND_COUNT;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_EINVAL);
  f = base_cpu();
  f.prefer = -2;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_EINVAL);
  f = base_cpu();
  f.heads_kv = 0;
  CSA_CHECK_STATUS(csa__dispatch_select(&f, &r), CSA_EINVAL);
}

int main(void) {
  test_names();
  test_priority();
  test_constraints();
  test_gpu_half_head_dims();
  test_other_devices();
  test_library_version_rule();
  test_overrides();
  test_bad_facts();
  return csa_test_finish("test_dispatch");
}
