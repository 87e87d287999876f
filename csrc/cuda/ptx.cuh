/*
 * ptx.cuh — the few tensor-core and copy instructions the attention kernel
 * uses, as inline PTX, with the per-architecture fallbacks in one place:
 *
 *   mma m16n8k16 (f16 / bf16 in, f32 accumulate)
 *     SM >= 8.0: one mma.sync.m16n8k16.
 *     SM 7.5   : two mma.sync.m16n8k8 (f16 only on Turing).  bf16 operands
 *                are converted to f16 in registers first: exact for every
 *                bf16 value of magnitude in [2^-14, 65504], flushed/overflowing
 *                outside it (Turing has no bf16 tensor-core path).
 *   ldmatrix  x4 (plain and .trans): SM >= 7.5.
 *   cp.async  16-byte global -> shared copies: SM >= 8.0; on SM 7.5 a plain
 *             16-byte load + store (the pipeline is then synchronous).
 *
 * Fragment layouts (PTX ISA, "mma.m16n8k16"), lane = 4 * g + t:
 *   A (16x16, row-major): a0 = A[g][2t..2t+1],   a1 = A[g+8][2t..2t+1],
 *                         a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9]
 *   B (16x8, "col"):      b0 = B[2t..2t+1][g],   b1 = B[2t+8..2t+9][g]
 *   C (16x8, f32):        c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
 * so the first k8 half of an m16n8k16 is (a0, a1, b0) and the second
 * (a2, a3, b1) — which is how Turing's m16n8k8 pair is fed.
 */
#ifndef CSA_CUDA_PTX_CUH
#define CSA_CUDA_PTX_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define CSA__SM80 1
#else
#define CSA__SM80 0
#endif

static __device__ __forceinline__ uint32_t csa__smem_addr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* bf16x2 -> f16x2 (Turing only): widen each half to f32, round to f16. */
static __device__ __forceinline__ uint32_t csa__bf16x2_to_f16x2(uint32_t x) {
  float lo = __uint_as_float(x << 16), hi = __uint_as_float(x & 0xffff0000u);
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&h);
}

static __device__ __forceinline__ void csa__mma_k8_f16(float c[4], uint32_t a0, uint32_t a1,
                                                       uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(b0));
}

/* c += A(16x16) * B(16x8); T is __half or __nv_bfloat16. */
template <typename T>
static __device__ __forceinline__ void csa__mma16816(float c[4], const uint32_t a[4],
                                                     uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void csa__mma16816<__half>(float c[4], const uint32_t a[4],
                                                      uint32_t b0, uint32_t b1) {
#if CSA__SM80
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  csa__mma_k8_f16(c, a[0], a[1], b0);
  csa__mma_k8_f16(c, a[2], a[3], b1);
#endif
}

template <>
__device__ __forceinline__ void csa__mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4],
                                                             uint32_t b0, uint32_t b1) {
#if CSA__SM80
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  csa__mma_k8_f16(c, csa__bf16x2_to_f16x2(a[0]), csa__bf16x2_to_f16x2(a[1]),
                  csa__bf16x2_to_f16x2(b0));
  csa__mma_k8_f16(c, csa__bf16x2_to_f16x2(a[2]), csa__bf16x2_to_f16x2(a[3]),
                  csa__bf16x2_to_f16x2(b1));
#endif
}

/* Four 8x8 b16 matrices; lane l gives the row address of matrix l / 8. */
static __device__ __forceinline__ void csa__ldmatrix_x4(uint32_t r[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(csa__smem_addr(p)));
}

static __device__ __forceinline__ void csa__ldmatrix_x4_trans(uint32_t r[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(csa__smem_addr(p)));
}

/* 16 bytes global -> shared, asynchronous where the chip can. */
static __device__ __forceinline__ void csa__cp_async16(void *smem, const void *gmem) {
#if CSA__SM80
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(csa__smem_addr(smem)),
               "l"(gmem));
#else
  *reinterpret_cast<uint4 *>(smem) = *reinterpret_cast<const uint4 *>(gmem);
#endif
}

static __device__ __forceinline__ void csa__cp_async_commit(void) {
#if CSA__SM80
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

/* Wait until at most n of this thread's committed groups are in flight. */
template <int N>
static __device__ __forceinline__ void csa__cp_async_wait(void) {
#if CSA__SM80
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

#endif /* CSA_CUDA_PTX_CUH */
