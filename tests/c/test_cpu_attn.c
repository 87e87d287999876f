/*
 * test_cpu_attn.c — csa_attn_cpu against a float64 reference, for every ISA
 * variant this CPU runs and every input dtype.
 *
 * Each case draws fresh random data, poisons out and lse with NaN (rows the
 * kernel forgets stay NaN and fail), runs the kernel and compares
 * ||out - ref|| / ||ref|| with the contract's bounds (docs/ARCHITECTURE.md:
 * fp32 1e-5, fp16/bf16 1e-2).  The reference reads the same rounded inputs the kernel reads, so
 * only the kernel's own arithmetic is measured.  Rows with no visible key
 * must be exactly zero with lse = -inf.  Memory around strided views is
 * filled with a sentinel that must survive.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "csa/csa.h"
#include "csa_test.h"

#ifndef CSA_TEST_NAME
#define CSA_TEST_NAME "test_cpu_attn"
#endif

/* xorshift64*: reproducible across platforms */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }
static double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }

enum { LAYOUT_CONTIG = 0, LAYOUT_PACKED_QKV = 1, LAYOUT_GAPS = 2 };

typedef struct tcase {
  int b;
  int lq[64], lkv[64];
  int h, hkv, d, dv;
  int dtype, causal, lse, layout, threads;
  float scale;  /* 0: default */
  float spread; /* input magnitude */
  float ramp;   /* key row t (packed index) scaled by 1 + ramp * t: scores that rise along keys */
} tcase;

static size_t esz(int dtype) { return csa_dtype_size(dtype); }

static void store_elem(void *base, int64_t idx, int dtype, double x) {
  if (dtype == CSA_FLOAT32)
    ((float *)base)[idx] = (float)x;
  else if (dtype == CSA_BFLOAT16)
    ((uint16_t *)base)[idx] = csa__f32_to_bf16((float)x);
  else
    ((uint16_t *)base)[idx] = csa__f32_to_f16((float)x);
}
static double load_elem(const void *base, int64_t idx, int dtype) {
  if (dtype == CSA_FLOAT32)
    return ((const float *)base)[idx];
  if (dtype == CSA_BFLOAT16)
    return csa__bf16_to_f32(((const uint16_t *)base)[idx]);
  return csa__f16_to_f32(((const uint16_t *)base)[idx]);
}

/* Buffer of n elements filled with a sentinel bit pattern (0x7e7e...). */
static void *sentinel_buf(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  memset(p, 0x7e, bytes);
  return p;
}

typedef struct result {
  double rel, lse_err;
  int bad_rows, bad_sentinel, nan;
} result;

static result run_case(const tcase *tc) {
  result res = {0, 0, 0, 0, 0};
  int32_t cuq[65], cukv[65];
  cuq[0] = cukv[0] = 0;
  int maxq = 0, maxkv = 0;
  for (int i = 0; i < tc->b; i++) {
    cuq[i + 1] = cuq[i] + tc->lq[i];
    cukv[i + 1] = cukv[i] + tc->lkv[i];
    maxq = tc->lq[i] > maxq ? tc->lq[i] : maxq;
    maxkv = tc->lkv[i] > maxkv ? tc->lkv[i] : maxkv;
  }
  const int64_t tq = cuq[tc->b], tkv = cukv[tc->b];
  const int h = tc->h, hkv = tc->hkv, d = tc->d, dv = tc->dv, dt = tc->dtype;
  const size_t es = esz(dt);

  /* Layouts.  PACKED_QKV: one [T, 3, H, D] buffer, q/k/v its unbind views.
   * GAPS: every token and head row padded by a few elements; out padded too. */
  int64_t q_st, q_sh, k_st, k_sh, v_st, v_sh, o_st, o_sh;
  void *qb, *kb, *vb, *ob, *packed = NULL;
  char *qd, *kd, *vd;
  size_t qbytes, kbytes, vbytes, obytes;
  if (tc->layout == LAYOUT_PACKED_QKV) {
    q_sh = k_sh = v_sh = d;
    q_st = k_st = v_st = 3 * (int64_t)h * d;
    qbytes = (size_t)(tq * q_st) * es;
    packed = sentinel_buf(qbytes);
    qb = kb = vb = packed;
    qd = (char *)packed, kd = qd + (size_t)h * d * es, vd = qd + (size_t)2 * h * d * es;
    kbytes = vbytes = qbytes;
  } else {
    const int gap = tc->layout == LAYOUT_GAPS ? 3 : 0;
    q_sh = d + gap, q_st = h * q_sh + gap;
    k_sh = d + gap, k_st = hkv * k_sh + gap;
    v_sh = dv + gap, v_st = hkv * v_sh + gap;
    qbytes = (size_t)(tq * q_st) * es, kbytes = (size_t)(tkv * k_st) * es,
    vbytes = (size_t)(tkv * v_st) * es;
    qb = sentinel_buf(qbytes), kb = sentinel_buf(kbytes), vb = sentinel_buf(vbytes);
    qd = (char *)qb, kd = (char *)kb, vd = (char *)vb;
  }
  {
    const int gap = tc->layout == LAYOUT_GAPS ? 5 : 0;
    o_sh = dv + gap, o_st = h * o_sh + gap;
    obytes = (size_t)(tq * o_st) * es;
    ob = sentinel_buf(obytes);
  }

  /* fresh data; out poisoned with NaN in its own elements */
  const double sp = tc->spread;
  for (int64_t t = 0; t < tq; t++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < d; j++) store_elem(qd, t * q_st + i * q_sh + j, dt, sp * (2 * rng_unit() - 1));
  for (int64_t t = 0; t < tkv; t++)
    for (int i = 0; i < hkv; i++) {
      for (int j = 0; j < d; j++)
        store_elem(kd, t * k_st + i * k_sh + j, dt,
                   sp * (1 + tc->ramp * (double)t) * (2 * rng_unit() - 1));
      for (int j = 0; j < dv; j++) store_elem(vd, t * v_st + i * v_sh + j, dt, 2 * rng_unit() - 1);
    }
  for (int64_t t = 0; t < tq; t++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < dv; j++) store_elem(ob, t * o_st + i * o_sh + j, dt, NAN);
  float *lse = NULL;
  if (tc->lse) {
    lse = (float *)malloc(sizeof(float) * (size_t)(h * tq + 1));
    for (int64_t i = 0; i < h * tq; i++) lse[i] = NAN;
  }

  csa_attn_params p;
  memset(&p, 0, sizeof p);
  p.q = csa_test_view3(qd, dt, tq, h, d, q_st, q_sh);
  p.k = csa_test_view3(kd, dt, tkv, hkv, d, k_st, k_sh);
  p.v = csa_test_view3(vd, dt, tkv, hkv, dv, v_st, v_sh);
  p.out = csa_test_view3(ob, dt, tq, h, dv, o_st, o_sh);
  p.cu_seqlens_q = csa_test_view1_i32(cuq, tc->b + 1);
  p.cu_seqlens_kv = csa_test_view1_i32(cukv, tc->b + 1);
  if (lse) {
    p.lse.data = lse;
    p.lse.dtype = CSA_FLOAT32;
    p.lse.device_type = CSA_DEVICE_CPU;
    p.lse.ndim = 2;
    p.lse.shape[0] = h, p.lse.shape[1] = tq;
    p.lse.strides[0] = tq > 0 ? tq : 1, p.lse.strides[1] = 1;
  }
  p.max_seqlen_q = maxq, p.max_seqlen_kv = maxkv;
  p.softmax_scale = tc->scale;
  p.causal = tc->causal;
  p.num_threads = tc->threads;
  int st = csa_attn_cpu(&p);
  CSA_CHECK(st == CSA_OK, "csa_attn_cpu: %s (%s)", csa_status_name(st), csa_errmsg());

  /* float64 reference from the stored (rounded) inputs */
  const double scale = tc->scale > 0 ? tc->scale : 1.0 / sqrt((double)d);
  double *s = (double *)malloc(sizeof(double) * (size_t)(maxkv + 1));
  double *acc = (double *)malloc(sizeof(double) * (size_t)dv);
  double num = 0, den = 0;
  for (int bi = 0; bi < tc->b; bi++) {
    const int lq = tc->lq[bi], lkv = tc->lkv[bi];
    for (int hi = 0; hi < h; hi++) {
      const int hk = hi / (h / hkv);
      for (int i = 0; i < lq; i++) {
        const int64_t tqi = cuq[bi] + i;
        int nvis = lkv;
        if (tc->causal)
          nvis = i + lkv - lq + 1 < lkv ? i + lkv - lq + 1 : lkv;
        if (nvis < 0)
          nvis = 0;
        double mx = -INFINITY;
        for (int j = 0; j < nvis; j++) {
          double dot = 0;
          for (int x = 0; x < d; x++)
            dot += load_elem(qd, tqi * q_st + hi * q_sh + x, dt) *
                   load_elem(kd, (cukv[bi] + j) * k_st + hk * k_sh + x, dt);
          s[j] = dot * scale;
          mx = s[j] > mx ? s[j] : mx;
        }
        double l = 0;
        for (int x = 0; x < dv; x++) acc[x] = 0;
        for (int j = 0; j < nvis; j++) {
          const double pj = exp(s[j] - mx);
          l += pj;
          for (int x = 0; x < dv; x++) acc[x] += pj * load_elem(vd, (cukv[bi] + j) * v_st + hk * v_sh + x, dt);
        }
        int row_bad = 0;
        for (int x = 0; x < dv; x++) {
          const double ref = nvis ? acc[x] / l : 0.0;
          const double got = load_elem(ob, tqi * o_st + hi * o_sh + x, dt);
          if (isnan(got))
            res.nan++, row_bad = 1;
          if (!nvis && got != 0.0)
            row_bad = 1;
          num += (got - ref) * (got - ref);
          den += ref * ref;
        }
        if (lse) {
          const double got = lse[hi * tq + tqi];
          if (!nvis) {
            if (!(isinf(got) && got < 0))
              row_bad = 1;
          } else {
            const double ref = mx + log(l);
            const double e = fabs(got - ref) / (1.0 + fabs(ref));
            res.lse_err = e > res.lse_err ? e : res.lse_err;
          }
        }
        res.bad_rows += row_bad;
      }
    }
  }
  res.rel = den > 0 ? sqrt(num / den) : sqrt(num);

  /* sentinel bytes outside out's elements must be untouched */
  if (tc->layout == LAYOUT_GAPS)
    for (int64_t t = 0; t < tq; t++)
      for (int i = 0; i < h; i++)
        for (int j = dv; j < o_sh && i * o_sh + j < o_st; j++) {
          const unsigned char *bp = (const unsigned char *)ob + (size_t)(t * o_st + i * o_sh + j) * es;
          for (size_t q = 0; q < es; q++) res.bad_sentinel += bp[q] != 0x7e;
        }

  free(s);
  free(acc);
  free(lse);
  free(ob);
  if (packed)
    free(packed);
  else {
    free(qb);
    free(kb);
    free(vb);
  }
  return res;
}

static double tol(int dtype) { return dtype == CSA_FLOAT32 ? 1e-5 : 1e-2; }

static int isas[5], nisa = 0;
static const int dtypes[3] = {CSA_FLOAT32, CSA_FLOAT16, CSA_BFLOAT16};

static void check_case(const tcase *tc, const char *what) {
  result r = run_case(tc);
  CSA_CHECK(r.rel < tol(tc->dtype) && r.nan == 0 && r.bad_rows == 0 && r.bad_sentinel == 0 &&
                r.lse_err < (tc->dtype == CSA_FLOAT32 ? 1e-5 : 1e-2),
            "%s [isa %s, %s, B=%d H=%d/%d D=%d Dv=%d causal=%d layout=%d threads=%d]: rel %.3g, "
            "lse %.3g, nan %d, bad rows %d, sentinel %d",
            what, csa_cpu_isa_name(csa_cpu_isa_selected()), csa_dtype_name(tc->dtype), tc->b,
            tc->h, tc->hkv, tc->d, tc->dv, tc->causal, tc->layout, tc->threads, r.rel, r.lse_err,
            r.nan, r.bad_rows, r.bad_sentinel);
}

/* isa.c: whether the avx512bf16 kernel runs its bf16 products on AMX tiles */
int csa__cpu_amx_ready(void);

static tcase base_case(int dtype) {
  tcase tc;
  memset(&tc, 0, sizeof tc);
  tc.b = 2;
  tc.lq[0] = 70, tc.lq[1] = 33;
  tc.lkv[0] = 70, tc.lkv[1] = 33;
  tc.h = 2, tc.hkv = 2, tc.d = 64, tc.dv = 64;
  tc.dtype = dtype;
  tc.lse = 1;
  tc.threads = 2;
  tc.spread = 1.0f;
  return tc;
}

/* Every §4 case, named. */
static void named_cases(int dtype) {
  static const int dims[] = {1, 2, 3, 8, 15, 16, 17, 32, 40, 64, 72, 96, 128, 160, 255, 256};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    tcase tc = base_case(dtype);
    tc.d = tc.dv = dims[i];
    check_case(&tc, "head dim");
  }
  tcase tc = base_case(dtype);
  tc.d = 64, tc.dv = 40;
  check_case(&tc, "D_v != D");
  tc.d = 24, tc.dv = 130;
  check_case(&tc, "D_v > D");
  tc = base_case(dtype);
  tc.h = 8, tc.hkv = 2;
  check_case(&tc, "GQA");
  tc.hkv = 1;
  check_case(&tc, "MQA");
  tc = base_case(dtype);
  tc.causal = 1;
  check_case(&tc, "causal, L_q = L_kv");
  tc.lq[0] = 20, tc.lkv[0] = 150, tc.lq[1] = 90, tc.lkv[1] = 7;
  check_case(&tc, "causal, L_q != L_kv (rows with no key)");
  tc.causal = 0;
  check_case(&tc, "cross attention, L_q != L_kv");
  tc = base_case(dtype);
  tc.scale = 0.3f;
  check_case(&tc, "explicit softmax_scale");
  tc = base_case(dtype);
  tc.spread = 4.0f;
  check_case(&tc, "peaked softmax (large scores)");
  /* the running maximum rises by far more than the AMX path's slack
   * (2^8) from block to block: its deferred rescale of O^T must run */
  tc = base_case(dtype);
  tc.b = 1, tc.lq[0] = 150, tc.lkv[0] = 400, tc.ramp = 0.06f, tc.spread = 2.0f;
  check_case(&tc, "scores rising along the keys (the running max moves every block)");
  tc.causal = 1;
  check_case(&tc, "scores rising along the keys, causal");
  tc = base_case(dtype);
  tc.b = 5;
  int lq[5] = {0, 12, 0, 65, 0}, lkv[5] = {0, 0, 9, 64, 0};
  memcpy(tc.lq, lq, sizeof lq), memcpy(tc.lkv, lkv, sizeof lkv);
  check_case(&tc, "zero-length sequences (q, kv, both)");
  tc = base_case(dtype);
  tc.b = 0;
  check_case(&tc, "B = 0");
  tc = base_case(dtype);
  tc.b = 1, tc.lq[0] = 300, tc.lkv[0] = 300;
  check_case(&tc, "B = 1, several row tiles and key blocks");
  tc.causal = 1;
  check_case(&tc, "B = 1 causal");
  /* more rows than one item holds at every head dim (at most
   * CSA__CPU_MAX_TILES * 64 = 512), with a partial last item and tile */
  tc.lq[0] = 1100, tc.lkv[0] = 700, tc.d = tc.dv = 16, tc.h = tc.hkv = 1;
  check_case(&tc, "B = 1 causal, several items per sequence");
  tc.causal = 0, tc.d = 128, tc.dv = 64;
  check_case(&tc, "B = 1, several items per sequence, D_v != D");
  tc = base_case(dtype);
  tc.layout = LAYOUT_PACKED_QKV;
  tc.d = tc.dv = 48;
  check_case(&tc, "unbind views of a packed [T, 3, H, D] tensor");
  tc = base_case(dtype);
  tc.layout = LAYOUT_GAPS;
  tc.h = 4, tc.hkv = 2, tc.d = 20, tc.dv = 36;
  check_case(&tc, "padded strides in q, k, v and out");
  tc = base_case(dtype);
  tc.lse = 0;
  check_case(&tc, "no lse");
  tc = base_case(dtype);
  tc.b = 64;
  for (int i = 0; i < 64; i++) tc.lq[i] = tc.lkv[i] = rng_int(1, 12);
  tc.threads = 3;
  check_case(&tc, "many tiny sequences, 3 threads");
  tc.threads = 0;
  check_case(&tc, "num_threads = 0 (one thread)");
}

/* Seeded sweep of random small cases. */
static void sweep(int n) {
  static const int dims[] = {1, 3, 8, 16, 17, 31, 32, 33, 48, 64, 65, 80, 128};
  for (int it = 0; it < n; it++) {
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.dtype = dtypes[rng_int(0, 2)];
    tc.b = rng_int(0, 4);
    for (int i = 0; i < tc.b; i++) {
      tc.lq[i] = rng_int(0, 5) == 0 ? 0 : rng_int(1, 80);
      tc.lkv[i] = rng_int(0, 2) == 0 ? tc.lq[i] : rng_int(0, 80);
    }
    tc.hkv = rng_int(1, 3);
    tc.h = tc.hkv * rng_int(1, 3);
    tc.d = dims[rng_int(0, 12)];
    tc.dv = rng_int(0, 2) ? tc.d : dims[rng_int(0, 12)];
    tc.causal = rng_int(0, 1);
    tc.lse = rng_int(0, 1);
    tc.layout = rng_int(0, 2);
    if (tc.layout == LAYOUT_PACKED_QKV) {
      tc.dv = tc.d, tc.hkv = tc.h;
      for (int i = 0; i < tc.b; i++) tc.lkv[i] = tc.lq[i];
    }
    tc.threads = rng_int(1, 3);
    tc.scale = rng_int(0, 3) == 0 ? (float)(0.05 + rng_unit()) : 0.0f;
    tc.spread = (float)(0.5 + 2 * rng_unit());
    check_case(&tc, "random sweep");
  }
}

/* Several threads calling at once, each with its own data. */
static void *concurrent_main(void *arg) {
  result *r = (result *)arg;
  tcase tc = base_case(CSA_FLOAT32);
  tc.threads = 2;
  tc.b = 3, tc.lq[2] = tc.lkv[2] = 100;
  *r = run_case(&tc);
  return NULL;
}
static void concurrent_calls(void) {
  pthread_t t[4];
  result r[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, concurrent_main, &r[i]);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CSA_CHECK(r[i].rel < 1e-5 && r[i].nan == 0 && r[i].bad_rows == 0,
              "concurrent call %d: rel %.3g nan %d bad %d", i, r[i].rel, r[i].nan, r[i].bad_rows);
  }
}

static void errors(void) {
  float x[600] = {0};
  int32_t cu[2] = {0, 1};
  csa_attn_params p;
  memset(&p, 0, sizeof p);
  p.q = csa_test_view3(x, CSA_FLOAT32, 1, 1, 257, 257, 257);
  p.k = csa_test_view3(x, CSA_FLOAT32, 1, 1, 257, 257, 257);
  p.v = csa_test_view3(x, CSA_FLOAT32, 1, 1, 8, 8, 8);
  p.out = csa_test_view3(x + 300, CSA_FLOAT32, 1, 1, 8, 8, 8);
  p.cu_seqlens_q = csa_test_view1_i32(cu, 2);
  p.cu_seqlens_kv = csa_test_view1_i32(cu, 2);
  p.max_seqlen_q = p.max_seqlen_kv = 1;
  CSA_CHECK_STATUS(csa_attn_cpu(&p), CSA_ENOTSUP);
  CSA_CHECK(strstr(csa_errmsg(), "256") != NULL, "message names the limit: %s", csa_errmsg());
  p.q = csa_test_view3(x, CSA_FLOAT32, 1, 1, 8, 8, 8);
  p.k = csa_test_view3(x, CSA_FLOAT32, 1, 1, 8, 8, 8);
  p.v = csa_test_view3(x, CSA_FLOAT32, 1, 1, 260, 260, 260);
  p.out = csa_test_view3(x + 300, CSA_FLOAT32, 1, 1, 260, 260, 260);
  CSA_CHECK_STATUS(csa_attn_cpu(&p), CSA_ENOTSUP);
  p.v = csa_test_view3(x, CSA_FLOAT32, 1, 1, 8, 8, 8);
  p.out = csa_test_view3(x + 300, CSA_FLOAT32, 1, 1, 8, 8, 8);
  CSA_CHECK_STATUS(csa_attn_cpu(&p), CSA_OK);
  /* a stride whose extent overflows is refused before any access */
  p.k = csa_test_view3(x, CSA_FLOAT32, 1, 3, 8, 8, INT64_MAX / 2);
  p.q = csa_test_view3(x, CSA_FLOAT32, 1, 3, 8, 8, 8);
  p.out = csa_test_view3(x + 300, CSA_FLOAT32, 1, 3, 8, 24, 8);
  p.v = csa_test_view3(x, CSA_FLOAT32, 1, 3, 8, 24, 8);
  CSA_CHECK_STATUS(csa_attn_cpu(&p), CSA_ESTRIDE);
  CSA_CHECK_STATUS(csa_attn_cpu(NULL), CSA_EINVAL);
}

int main(int argc, char **argv) {
  int nsweep = argc > 1 ? atoi(argv[1]) : 600;
#ifdef CSA_TEST_NO_AMX
  /* before the first call reads it: the avx512bf16 kernel without AMX tiles */
#if defined(_WIN32)
  _putenv_s("COMFY_SPARSE_ATTN_CPU_AMX", "0");
#else
  setenv("COMFY_SPARSE_ATTN_CPU_AMX", "0", 1);
#endif
  if (csa_cpu_isa_force(CSA_ISA_AVX512BF16) == CSA_OK)
    isas[nisa++] = CSA_ISA_AVX512BF16;
  else
    printf("no avx512bf16 here: nothing to test\n");
  nsweep /= 2;
#else
  /* argv[2]: the first ISA to test (e.g. "avx512": its kernels and those above) */
  int from = 0;
  while (argc > 2 && from <= CSA_ISA_NEON && strcmp(csa_cpu_isa_name(from), argv[2]) != 0) from++;
  for (int isa = from; isa <= CSA_ISA_NEON; isa++)
    if (csa_cpu_isa_force(isa) == CSA_OK)
      isas[nisa++] = isa;
  CSA_CHECK(nisa >= 1, "at least the scalar kernel runs");
#endif
#ifdef CSA_TEST_NO_AMX
  CSA_CHECK(csa__cpu_amx_ready() == 0, "COMFY_SPARSE_ATTN_CPU_AMX=0 keeps AMX tiles off");
#endif
  for (int i = 0; i < nisa; i++) {
    csa_cpu_isa_force(isas[i]);
    printf("isa %s%s\n", csa_cpu_isa_name(isas[i]),
           isas[i] == CSA_ISA_AVX512BF16
               ? (csa__cpu_amx_ready() ? " (bf16 on AMX tiles)" : " (bf16 on vdpbf16ps)")
               : "");
    for (int dt = 0; dt < 3; dt++) named_cases(dtypes[dt]);
    sweep(nsweep);
    concurrent_calls();
  }
  csa_cpu_isa_force(-1);
  errors();
  return csa_test_finish(CSA_TEST_NAME);
}
