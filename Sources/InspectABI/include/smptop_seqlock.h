/*
 * The reader's side of the sequence counters (host only): the ordering a live reader needs
 * so that "seq even and unchanged across the copy" proves the copy untorn on any host, also
 * a weakly ordered one (arm64), not only on x86-64 where plain loads are already ordered.
 *
 *   before = smptop_seq_load(&seq);   load-acquire: the copy's loads cannot move above it
 *   copy the record (plain loads)
 *   smptop_seq_fence();               acquire fence: the copy's loads cannot move below it
 *   after = smptop_seq_load(&seq);
 */
#ifndef SMPTOP_SEQLOCK_H
#define SMPTOP_SEQLOCK_H

#include <stdint.h>

/** Loads a sequence word with acquire ordering (an unaligned word: plain load, then a fence). */
static inline uint64_t smptop_seq_load(const void *p) {
  if (((uintptr_t)p & 7u) == 0) return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
  uint64_t v;
  __builtin_memcpy(&v, p, sizeof v);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return v;
}

/** Orders every load before it ahead of every load and store after it. */
static inline void smptop_seq_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

#endif /* SMPTOP_SEQLOCK_H */
