/*
 * fuzz_attn_cpu.c — libFuzzer target for csa_attn_cpu.
 *
 * The fuzzer's bytes describe a call: dims, dtype, causal, LSE, strides
 * (including zero and overlapping ones), cu_seqlens values, max_seqlen,
 * softmax_scale, thread count and ISA.  Every buffer is allocated to hold
 * exactly what its shape and strides describe (the contract: validation
 * trusts shapes and strides, and must prove everything else), so ASan flags
 * any read or write the kernel makes outside what the caller described.  The
 * call must return a status, never crash.
 *
 *   CC=clang cmake -S tests/c -B build/fuzz -DCSA_FUZZ=ON && cmake --build build/fuzz
 *   ./build/fuzz/fuzz_attn_cpu -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csa/csa.h"

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static unsigned take(reader *r, unsigned bound) { /* value in [0, bound) */
  unsigned v = 0;
  if (r->n) {
    v = r->p[0];
    r->p++, r->n--;
  }
  return bound ? v % bound : 0;
}

static int64_t extent(const csa_tensor *t) { /* elements spanned, 0 if empty */
  int64_t e = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 0)
      return 0;
    e += (t->shape[i] - 1) * t->strides[i];
  }
  return e;
}

/* A [n0, n1, n2] view with fuzzed (small, possibly zero or overlapping)
 * outer strides; the last stride is usually 1 (sometimes not, to hit the
 * check). */
static csa_tensor view3(reader *r, int dtype, int64_t n0, int64_t n1, int64_t n2) {
  csa_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.device_type = CSA_DEVICE_CPU;
  t.ndim = 3;
  t.shape[0] = n0, t.shape[1] = n1, t.shape[2] = n2;
  t.strides[2] = take(r, 16) == 0 ? take(r, 3) : 1;
  const unsigned mode = take(r, 4);
  if (mode == 0) { /* contiguous */
    t.strides[1] = n2, t.strides[0] = n1 * n2;
  } else if (mode == 1) { /* padded */
    t.strides[1] = n2 + take(r, 5), t.strides[0] = n1 * t.strides[1] + take(r, 7);
  } else if (mode == 2) { /* packed [T, 3, H, D]-like */
    t.strides[1] = n2, t.strides[0] = 3 * n1 * n2;
  } else { /* anything small: zero, overlapping, transposed */
    t.strides[1] = take(r, 70), t.strides[0] = take(r, 200);
  }
  return t;
}

static void *alloc_for(csa_tensor *t) {
  const size_t bytes = (size_t)extent(t) * csa_dtype_size(t->dtype);
  void *p = malloc(bytes ? bytes : 1);
  /* random-ish finite contents: zero bytes are finite in every dtype */
  memset(p, 0, bytes);
  for (size_t i = 0; i + 1 < bytes; i += 7) ((uint8_t *)p)[i + 1] = (uint8_t)(0x3c + (i & 3));
  t->data = p;
  return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size};
  static const int dts[4] = {CSA_FLOAT32, CSA_FLOAT16, CSA_BFLOAT16, CSA_INT32};
  const int dtype = dts[take(&r, 4) % (take(&r, 8) ? 3 : 4)];
  const int64_t hkv = 1 + take(&r, 3), h = hkv * (1 + take(&r, 3)) + (take(&r, 20) == 0);
  const int64_t d = 1 + take(&r, 80) + (take(&r, 30) == 0 ? 200 : 0);
  const int64_t dv = take(&r, 2) ? d : 1 + take(&r, 72);
  const int64_t nb = take(&r, 6);

  int32_t cuq[8], cukv[8];
  cuq[0] = (int32_t)(take(&r, 30) == 0);
  cukv[0] = 0;
  int64_t maxq = 0, maxkv = 0;
  for (int64_t b = 0; b < nb; b++) {
    int lq = (int)take(&r, 90) - (take(&r, 40) == 0 ? 5 : 0);
    int lkv = take(&r, 2) ? lq : (int)take(&r, 90);
    cuq[b + 1] = cuq[b] + lq;
    cukv[b + 1] = cukv[b] + lkv;
    maxq = lq > maxq ? lq : maxq;
    maxkv = lkv > maxkv ? lkv : maxkv;
  }
  int64_t tq = cuq[nb] < 0 ? 0 : cuq[nb], tkv = cukv[nb] < 0 ? 0 : cukv[nb];
  tq += take(&r, 25) == 0 ? (int)take(&r, 3) : 0; /* sometimes disagrees with cu[-1] */

  csa_attn_params p;
  memset(&p, 0, sizeof p);
  p.q = view3(&r, dtype, tq, h, d);
  p.k = view3(&r, dtype, tkv, hkv, d);
  p.v = view3(&r, dtype, tkv, hkv, dv);
  p.out = view3(&r, dtype, tq, h, dv);
  void *bufs[5];
  bufs[0] = alloc_for(&p.q);
  bufs[1] = alloc_for(&p.k);
  bufs[2] = alloc_for(&p.v);
  bufs[3] = alloc_for(&p.out);
  bufs[4] = NULL;

  int32_t *cq = (int32_t *)malloc(sizeof(int32_t) * (size_t)(nb + 1));
  int32_t *ck = (int32_t *)malloc(sizeof(int32_t) * (size_t)(nb + 1));
  memcpy(cq, cuq, sizeof(int32_t) * (size_t)(nb + 1));
  memcpy(ck, cukv, sizeof(int32_t) * (size_t)(nb + 1));
  const int64_t ncu_kv = nb + 1 - (take(&r, 30) == 0);
  p.cu_seqlens_q = (csa_tensor){cq, CSA_INT32, CSA_DEVICE_CPU, 0, 1, {nb + 1}, {1}};
  p.cu_seqlens_kv = (csa_tensor){ck, CSA_INT32, CSA_DEVICE_CPU, 0, 1, {ncu_kv}, {1}};
  p.max_seqlen_q = maxq - (take(&r, 20) == 0);
  p.max_seqlen_kv = maxkv;
  p.causal = (int)take(&r, 2);
  p.softmax_scale = take(&r, 4) == 0 ? 0.01f * (float)take(&r, 200) : 0.0f;
  p.num_threads = (int)take(&r, 4);
  if (take(&r, 2)) {
    p.lse.dtype = take(&r, 20) ? CSA_FLOAT32 : CSA_FLOAT16;
    p.lse.device_type = CSA_DEVICE_CPU;
    p.lse.ndim = 2;
    p.lse.shape[0] = h, p.lse.shape[1] = tq;
    p.lse.strides[1] = 1;
    p.lse.strides[0] = take(&r, 8) ? (tq > 0 ? tq : 1) : take(&r, 50);
    bufs[4] = alloc_for(&p.lse);
  }
  csa_cpu_isa_force((int)take(&r, 5)); /* unsupported ones are refused: keeps the last */

  (void)csa_attn_cpu(&p);

  for (int i = 0; i < 5; i++) free(bufs[i]);
  free(cq);
  free(ck);
  return 0;
}
