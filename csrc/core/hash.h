/*
 * hash.h — a fast hash of a small plain-data key (a struct zeroed before it
 * was filled, so its padding is part of the key and compares equal).
 *
 * Eight bytes at a time: each word is folded in with a multiply by an odd
 * 64-bit constant and a rotation (the mixing step of many word-wise hashes),
 * so a key of a few hundred bytes costs a few dozen multiplies, not one per
 * byte.  For bucket selection only: never for anything adversarial.
 */
#ifndef CSA_CORE_HASH_H
#define CSA_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t csa__hash_bytes(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8); /* unaligned-safe load */
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h = (h << 31) | (h >> 33);
  }
  for (; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  /* final avalanche: the low bits pick the bucket */
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

#endif /* CSA_CORE_HASH_H */
