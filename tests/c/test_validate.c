/*
 * test_validate.c — csa_attn_validate: every bad-input rule of docs/ARCHITECTURE.md (the contract),
 * and the status table.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "csa_test.h"

static float qbuf[64 * 4 * 8], kbuf[64 * 2 * 8], vbuf[64 * 2 * 6], obuf[64 * 4 * 6];
static float lsebuf[4 * 64];
static int32_t cuq[3] = {0, 3, 8}, cukv[3] = {0, 4, 10};

/* contiguous [a, b, c] */
static csa_tensor t3(void *data, int dtype, int64_t a, int64_t b, int64_t c) {
  return csa_test_view3(data, dtype, a, b, c, b * c, c);
}

#define t1 csa_test_view1_i32

/* q [8,4,8], k [10,2,8], v [10,2,6], out [8,4,6], B = 2 */
static csa_attn_params good(void) {
  csa_attn_params p;
  memset(&p, 0, sizeof p);
  p.q = t3(qbuf, CSA_FLOAT32, 8, 4, 8);
  p.k = t3(kbuf, CSA_FLOAT32, 10, 2, 8);
  p.v = t3(vbuf, CSA_FLOAT32, 10, 2, 6);
  p.out = t3(obuf, CSA_FLOAT32, 8, 4, 6);
  p.cu_seqlens_q = t1(cuq, 3);
  p.cu_seqlens_kv = t1(cukv, 3);
  p.max_seqlen_q = 5;
  p.max_seqlen_kv = 6;
  return p;
}

static void expect(csa_attn_params p, int want, const char *needle) {
  int st = csa_attn_validate(&p);
  CSA_CHECK(st == want, "got %s (%s), want %s", csa_status_name(st), csa_errmsg(),
            csa_status_name(want));
  if (needle)
    CSA_CHECK(strstr(csa_errmsg(), needle) != NULL, "message '%s' lacks '%s'", csa_errmsg(),
              needle);
}

int main(void) {
  csa_attn_params p = good();
  expect(p, CSA_OK, NULL);

  p = good(); p.q.ndim = 2; expect(p, CSA_ESHAPE, "q must have 3 dimensions");
  p = good(); p.k.dtype = CSA_FLOAT16; expect(p, CSA_EDTYPE, "share one dtype");
  p = good(); p.q.dtype = p.k.dtype = p.v.dtype = p.out.dtype = CSA_FLOAT64;
  expect(p, CSA_EDTYPE, "q must be float32");
  p = good(); p.out.dtype = CSA_BFLOAT16; expect(p, CSA_EDTYPE, "out must have q's dtype");
  p = good(); p.k.device_type = CSA_DEVICE_CUDA; expect(p, CSA_EDEVICE, "k is on cuda");
  p = good(); p.q.device_type = 7; expect(p, CSA_EDEVICE, "unsupported device");
  p = good(); p.k.shape[1] = 3; p.v.shape[1] = 3; expect(p, CSA_ESHAPE, "H % H_kv");
  p = good(); p.k.shape[2] = 7; expect(p, CSA_ESHAPE, "k must be [T_kv, H_kv, D]");
  p = good(); p.v.shape[0] = 9; expect(p, CSA_ESHAPE, "v must be");
  p = good(); p.out.shape[2] = 5; expect(p, CSA_ESHAPE, "out must be");
  p = good(); p.q.strides[2] = 2; expect(p, CSA_ESTRIDE, "last dimension");
  p = good(); p.q.strides[0] = -32; expect(p, CSA_ESTRIDE, "negative stride");
  p = good(); p.out.strides[0] = 0; expect(p, CSA_ESTRIDE, "overlapping");
  p = good(); p.q.data = NULL; expect(p, CSA_EINVAL, "NULL data");

  /* cu_seqlens */
  int32_t bad0[3] = {1, 3, 8}, badlast[3] = {0, 3, 9}, dec[4] = {0, 5, 3, 8},
          cukv4[4] = {0, 4, 4, 10};
  p = good(); p.cu_seqlens_q.data = bad0; expect(p, CSA_ECUSEQ, "cu_seqlens_q[0] must be 0");
  p = good(); p.cu_seqlens_q.data = badlast; expect(p, CSA_ECUSEQ, "cu_seqlens_q[-1]");
  p = good(); p.cu_seqlens_q = t1(dec, 4); p.cu_seqlens_kv = t1(cukv4, 4);
  expect(p, CSA_ECUSEQ, "non-decreasing");
  p = good(); p.cu_seqlens_kv = t1(cukv4, 4); expect(p, CSA_ECUSEQ, "same length");
  p = good(); p.max_seqlen_q = 4; expect(p, CSA_ECUSEQ, "max_seqlen_q");
  p = good(); p.max_seqlen_kv = -1; expect(p, CSA_EINVAL, "max_seqlen_kv");
  p = good(); p.cu_seqlens_q.dtype = CSA_INT64; expect(p, CSA_EDTYPE, "int32, got int64");
  p = good(); p.cu_seqlens_q.shape[0] = 0; p.cu_seqlens_kv.shape[0] = 0;
  expect(p, CSA_ECUSEQ, "at least one element");

  /* Device tensors without host copies: values unchecked here (the kernels
   * clamp), with host copies: checked. */
  p = good();
  p.q.device_type = p.k.device_type = p.v.device_type = p.out.device_type = CSA_DEVICE_CUDA;
  p.cu_seqlens_q.device_type = p.cu_seqlens_kv.device_type = CSA_DEVICE_CUDA;
  p.cu_seqlens_q.data = bad0;
  expect(p, CSA_OK, NULL);
  p.cu_seqlens_q_host = bad0;
  expect(p, CSA_ECUSEQ, "cu_seqlens_q[0]");

  /* The torch tier's devices (ROCm, Metal, oneAPI) validate like CUDA; a
   * device DLPack has no code for does not, and mixing devices names both. */
  int other_devs[] = {CSA_DEVICE_ROCM, CSA_DEVICE_METAL, CSA_DEVICE_ONEAPI};
  for (int i = 0; i < 3; i++) {
    p = good();
    p.q.device_type = p.k.device_type = p.v.device_type = p.out.device_type = other_devs[i];
    p.cu_seqlens_q.device_type = p.cu_seqlens_kv.device_type = other_devs[i];
    expect(p, CSA_OK, NULL);
    p.cu_seqlens_q_host = bad0;
    expect(p, CSA_ECUSEQ, "cu_seqlens_q[0]");
    p.cu_seqlens_q_host = NULL;
    p.k.device_type = CSA_DEVICE_CPU;
    expect(p, CSA_EDEVICE, csa_device_name(other_devs[i]));
  }
  p = good();
  p.q.device_type = p.k.device_type = p.v.device_type = p.out.device_type = CSA_DEVICE_OTHER;
  p.cu_seqlens_q.device_type = p.cu_seqlens_kv.device_type = CSA_DEVICE_OTHER;
  expect(p, CSA_EDEVICE, "unsupported device");

  /* lse */
  csa_tensor lse = t3(lsebuf, CSA_FLOAT32, 4, 8, 1);
  lse.ndim = 2; lse.strides[1] = 1; lse.strides[0] = 8;
  p = good(); p.lse = lse; expect(p, CSA_OK, NULL);
  p.lse.shape[1] = 7; expect(p, CSA_ESHAPE, "lse must be [H, T_q]");
  p = good(); p.lse = lse; p.lse.dtype = CSA_FLOAT16; expect(p, CSA_EDTYPE, "lse must be float32");
  p = good(); p.out.strides[0] = 0; p.out.shape[0] = 0; p.q.shape[0] = 0;
  int32_t cuq0[3] = {0, 0, 0};
  p.cu_seqlens_q.data = cuq0; expect(p, CSA_OK, NULL); /* empty output: no overlap possible */

  /* scale */
  p = good(); p.softmax_scale = NAN; expect(p, CSA_EINVAL, "softmax_scale");
  csa__attn_dims dims;
  p = good();
  CSA_CHECK_STATUS(csa__attn_check(&p, CSA_DEVICE_CPU, &dims), CSA_OK);
  CSA_CHECK(fabsf(dims.scale - 1.0f / sqrtf(8.0f)) < 1e-7f, "default scale %g", dims.scale);
  CSA_CHECK(dims.batch == 2 && dims.heads == 4 && dims.heads_kv == 2 && dims.head_dim_v == 6,
            "dims");
  CSA_CHECK_STATUS(csa__attn_check(&p, CSA_DEVICE_CUDA, &dims), CSA_EDEVICE);
  CSA_CHECK_STATUS(csa_attn_validate(NULL), CSA_EINVAL);

  /* B = 0, zero-size tensors with NULL data are fine */
  int32_t zero[1] = {0};
  p = good();
  p.q = t3(NULL, CSA_FLOAT32, 0, 4, 8);
  p.k = t3(NULL, CSA_FLOAT32, 0, 2, 8);
  p.v = t3(NULL, CSA_FLOAT32, 0, 2, 6);
  p.out = t3(NULL, CSA_FLOAT32, 0, 4, 6);
  p.cu_seqlens_q = t1(zero, 1);
  p.cu_seqlens_kv = t1(zero, 1);
  expect(p, CSA_OK, NULL);

  /* status table */
  CSA_CHECK(strcmp(csa_status_name(CSA_ECUSEQ), "CSA_ECUSEQ") == 0, "name");
  CSA_CHECK(strcmp(csa_status_name(12345), "CSA_UNKNOWN") == 0, "unknown name");
  for (int s = CSA__STATUS_MIN; s <= 0; s++)
    CSA_CHECK(strcmp(csa_status_name(s), "CSA_UNKNOWN") != 0 && csa_strerror(s)[0], "code %d", s);

  /* half conversions round-trip exactly representable values */
  for (int i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = csa__f16_to_f32(h);
    if (!isnan(f))
      CSA_CHECK(csa__f32_to_f16(f) == h, "f16 %04x -> %g -> %04x", h, f, csa__f32_to_f16(f));
    float b = csa__bf16_to_f32(h);
    if (!isnan(b))
      CSA_CHECK(csa__f32_to_bf16(b) == h, "bf16 %04x", h);
  }
  CSA_CHECK(csa__f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3c00, "ties to even (down)");
  CSA_CHECK(csa__f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3c02, "ties to even (up)");
  CSA_CHECK(csa__f32_to_f16(70000.0f) == 0x7c00, "overflow to inf");
  CSA_CHECK(csa__f32_to_bf16(1.0f + 1.0f / 256.0f) == 0x3f80, "bf16 ties to even");
  CSA_CHECK(isnan(csa__bf16_to_f32(csa__f32_to_bf16(NAN))), "bf16 NaN stays NaN");
  return csa_test_finish("test_validate");
}
