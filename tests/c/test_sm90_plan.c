/*
 * test_sm90_plan.c — csa__sm90_plan (csrc/cuda/attn_sm90_plan.h), the pure
 * C half of the Hopper kernel's launch: which calls it covers, which tile
 * configuration each takes, and that every launch it asks for fits an
 * sm_90 SM (threads, shared memory) and covers every query row.
 */
#include <string.h>

#include "cuda/attn_sm90_plan.h"
#include "csa_test.h"

/* The Hopper limits a launch must respect. */
#define SM90_SMEM_PER_BLOCK (227 * 1024)
#define SM90_THREADS_PER_BLOCK 1024

/* A covered call: t_q rows, H 16, D = D_v = d, keys up to max_kv. */
static csa__cuda_attn_args args(int d, int t_q, int max_kv) {
  csa__cuda_attn_args a;
  memset(&a, 0, sizeof a);
  a.t_q = t_q;
  a.t_kv = max_kv;
  a.heads = a.heads_kv = 16;
  a.d = a.dv = d;
  a.batch = 1;
  a.max_q = t_q;
  a.max_kv = max_kv;
  a.vec = 1;
  return a;
}

static void test_coverage(void) {
  csa__sm90_launch l;
  csa__cuda_attn_args a = args(64, 1000, 1000);
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 1, "sm 9.0, bf16, D 64");
  CSA_CHECK(csa__sm90_plan(&a, CSA_FLOAT16, 9, 0, &l) == 1, "sm 9.0, f16, D 64");
  CSA_CHECK(csa__sm90_plan(&a, CSA_FLOAT32, 9, 0, &l) == 0, "fp32 is not covered");
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 8, 0, &l) == 0, "sm 8.0: no wgmma");
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 10, 0, &l) == 0, "sm 10.0: sm_90a code only");
  a.small = 1;
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 0, "short-row tiles stay mma.sync");
  a = args(96, 1000, 1000);
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 0, "D 96 is not covered");
  a = args(128, 1000, 1000);
  a.dv = 64;
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 0, "D != D_v is not covered");
  a = args(64, 1000, 1000);
  a.vec = 0;
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 0, "unaligned rows are not covered");
  a = args(64, 1000, 1000);
  a.heads_kv = 3;
  CSA_CHECK(csa__sm90_plan(&a, CSA_BFLOAT16, 9, 0, &l) == 0, "H not a multiple of H_kv is not covered");
}

/* Every configuration: the kernel named by dtype, D and key count, a
 * launch that fits an SM and a grid that covers every query row. */
static void test_configurations(void) {
  static const struct {
    int d, max_kv, dtype;
    const char *kernel;
  } want[] = {
      {64, 100000, CSA_BFLOAT16, "csa_attn_fwd_sm90_bf16_d64"},
      {64, 100, CSA_FLOAT16, "csa_attn_fwd_sm90_f16_d64"},
      {128, CSA__SM90_SHORT_KEYS + 1, CSA_BFLOAT16, "csa_attn_fwd_sm90_bf16_d128"},
      {128, CSA__SM90_SHORT_KEYS, CSA_BFLOAT16, "csa_attn_fwd_sm90_bf16_d128s"},
      {128, 1029, CSA_FLOAT16, "csa_attn_fwd_sm90_f16_d128s"},
      {128, 49152, CSA_FLOAT16, "csa_attn_fwd_sm90_f16_d128"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    for (int t_q = 1; t_q <= 1000; t_q += 333) {
      csa__cuda_attn_args a = args(want[i].d, t_q, want[i].max_kv);
      csa__sm90_launch l;
      memset(&l, 0, sizeof l);
      CSA_CHECK(csa__sm90_plan(&a, want[i].dtype, 9, 0, &l) == 1, "case %zu covered", i);
      CSA_CHECK(l.kernel != NULL && strcmp(l.kernel, want[i].kernel) == 0, "case %zu: %s, want %s",
                i, l.kernel ? l.kernel : "(null)", want[i].kernel);
      const unsigned threads = l.block[0] * l.block[1] * l.block[2];
      CSA_CHECK(threads % 128 == 0 && threads >= 384 && threads <= SM90_THREADS_PER_BLOCK,
                "case %zu: %u threads (whole warpgroups, a producer and >= 2 consumers)", i,
                threads);
      CSA_CHECK(l.smem_bytes <= SM90_SMEM_PER_BLOCK, "case %zu: %u bytes of shared memory", i,
                l.smem_bytes);
      /* (threads / 128 - 1) consumer warpgroups of 64 rows per CTA */
      const long long rows = (long long)(threads / 128 - 1) * 64;
      CSA_CHECK((long long)l.grid[0] * rows >= t_q && (long long)(l.grid[0] - 1) * rows < t_q,
                "case %zu, T_q %d: %u row tiles of %lld rows", i, t_q, l.grid[0], rows);
      CSA_CHECK(l.grid[1] == 16 && l.grid[2] == 1, "case %zu: one grid row per head", i);
    }
  }
}

/* The configurations the comment in attn_sm90_plan.h promises. */
static void test_tile_shapes(void) {
  CSA_CHECK(CSA__SM90_BM(0) == 192 && CSA__SM90_BN(0) == 128, "D 64: 192 x 128 tiles");
  CSA_CHECK(CSA__SM90_BM(1) == 128 && CSA__SM90_BN(1) == 128, "D 128: 128 x 128 tiles");
  CSA_CHECK(CSA__SM90_BM(2) == 192 && CSA__SM90_BN(2) == 64, "D 128, short keys: 192 x 64");
  for (int c = 0; c < 3; c++)
    CSA_CHECK(csa__sm90_smem_bytes(c) <= SM90_SMEM_PER_BLOCK, "configuration %d: %u bytes", c,
              csa__sm90_smem_bytes(c));
}

int main(void) {
  test_coverage();
  test_configurations();
  test_tile_shapes();
  return csa_test_finish("test_sm90_plan");
}
