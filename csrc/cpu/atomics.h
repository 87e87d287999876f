/*
 * atomics.h — the few atomic operations the CPU backend needs, over compiler
 * builtins instead of C11 <stdatomic.h> (which MSVC's C compiler lacks):
 * GCC / Clang `__atomic` builtins, MSVC Interlocked intrinsics.
 *
 *   csa__atomic_i32 / csa__atomic_i64     plain integers, only ever touched
 *                                        through the functions below
 *   csa__atomic_load_i32(p)               acquire load
 *   csa__atomic_store_i32(p, v)           release store
 *   csa__atomic_cas_i32(p, &expected, v)  strong compare-exchange, seq_cst;
 *                                        on failure *expected gets the value seen
 *   csa__atomic_fetch_add_i64(p, v)       returns the old value
 *
 * Users: the ISA choice (isa.c: one int, written once, read often) and the
 * work counter of the attention workers (attn_cpu.c).
 */
#ifndef CSA_CPU_ATOMICS_H
#define CSA_CPU_ATOMICS_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
typedef volatile long csa__atomic_i32;
typedef volatile __int64 csa__atomic_i64;

/* Every Interlocked* is a full barrier (x86-64 and ARM64), stronger than the
 * orders asked for; the load is an OR with 0 so that it does not depend on
 * how /volatile: treats plain volatile reads (ARM64 defaults to iso). */
static __inline int32_t csa__atomic_load_i32(csa__atomic_i32 *p) {
  return (int32_t)_InterlockedOr(p, 0);
}
static __inline void csa__atomic_store_i32(csa__atomic_i32 *p, int32_t v) {
  _InterlockedExchange(p, (long)v);
}
static __inline int csa__atomic_cas_i32(csa__atomic_i32 *p, int32_t *expected, int32_t v) {
  const long seen = _InterlockedCompareExchange(p, (long)v, (long)*expected);
  if (seen == (long)*expected)
    return 1;
  *expected = (int32_t)seen;
  return 0;
}
static __inline int64_t csa__atomic_fetch_add_i64(csa__atomic_i64 *p, int64_t v) {
  return (int64_t)_InterlockedExchangeAdd64(p, (__int64)v);
}
#elif defined(__GNUC__) || defined(__clang__)
typedef int32_t csa__atomic_i32;
typedef int64_t csa__atomic_i64;

static inline int32_t csa__atomic_load_i32(csa__atomic_i32 *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void csa__atomic_store_i32(csa__atomic_i32 *p, int32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline int csa__atomic_cas_i32(csa__atomic_i32 *p, int32_t *expected, int32_t v) {
  return __atomic_compare_exchange_n(p, expected, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline int64_t csa__atomic_fetch_add_i64(csa__atomic_i64 *p, int64_t v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
#else
#error "comfy-sparse-attn: atomics.h needs GCC/Clang __atomic builtins or MSVC Interlocked intrinsics"
#endif

#endif /* CSA_CPU_ATOMICS_H */
