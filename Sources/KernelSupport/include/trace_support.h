/*
 * trace support: the per-lcpu event trace rings (smptop_abi.h, table 9) live in trace_data.c;
 * Trace.swift writes them. These accessors hand Swift the ring headers, the record slots (pages
 * from the buddy allocator, Trace.swift) and the control word without exposing the C globals (Swift 6 rejects imported mutable globals).
 */
#ifndef TRACE_SUPPORT_H
#define TRACE_SUPPORT_H

#if defined(SMP_GUEST) && defined(__x86_64__)
#include <stdint.h>
#include <smptop_abi.h>

#pragma clang assume_nonnull begin

extern struct smptop_trace_ring smptop_trace_rings[SMPTOP_MAX_LCPUS];
extern struct smptop_trace_ring smptop_prof_rings[SMPTOP_MAX_LCPUS];
extern struct smptop_root smptop_root;
/** smptop_root under a hidden name (kernel_data.c): known to be in this image, so a trace point
 *  reads the control word with one RIP-relative load instead of a GOT entry and then the word. */
extern struct smptop_root smptop_root_here __attribute__((visibility("hidden")));

/** The enabled trace classes: one load (volatile, so every trace point re-reads it). */
static inline uint64_t trace_control(void) { return *(volatile uint64_t *)&smptop_root_here.trace_control; }
/** Sets the enabled trace classes (boot, from the command line). */
static inline void trace_set_control(uint64_t v) { __atomic_store_n(&smptop_root.trace_control, v, __ATOMIC_RELEASE); }
/** lcpu `i`'s ring header. */
static inline struct smptop_trace_ring *trace_ring(uint32_t i) { return &smptop_trace_rings[i]; }
/** The slot of a ring (capacity a power of two, records set) that position `p` uses. */
static inline struct smptop_trace_record *trace_slot(struct smptop_trace_ring *r, uint64_t p) {
  return (struct smptop_trace_record *)(uintptr_t)r->records + (p & (r->capacity - 1));
}
/** lcpu `i`'s profile ring header. */
static inline struct smptop_trace_ring *prof_ring(uint32_t i) { return &smptop_prof_rings[i]; }
/** The sample slot of a profile ring that position `p` uses. */
static inline struct smptop_prof_sample *prof_slot(struct smptop_trace_ring *r, uint64_t p) {
  return (struct smptop_prof_sample *)(uintptr_t)r->records + (p & (r->capacity - 1));
}
/** The frames array of a sample. */
static inline uint64_t *prof_frames(struct smptop_prof_sample *s) { return s->frames; }
/** Stores a sample's seq word (0 = being written, position + 1 = complete). */
static inline void prof_store_seq(struct smptop_prof_sample *s, uint64_t v) {
  __asm__ volatile("" ::: "memory");
  __atomic_store_n(&s->seq, v, __ATOMIC_RELEASE);
  __asm__ volatile("" ::: "memory");
}
static inline uint32_t abi_prof_sample_stride(void) { return sizeof(struct smptop_prof_sample); }
/** Sets smptop_root.prof_hz (boot). */
static inline void prof_set_hz(uint64_t hz) { smptop_root.prof_hz = hz; }
static inline uint32_t abi_trace_ring_stride(void) { return sizeof(struct smptop_trace_ring); }
static inline uint32_t abi_trace_record_stride(void) { return sizeof(struct smptop_trace_record); }
/** Stores a ring's head after its record (x86 keeps stores in order; release for the compiler). */
static inline void trace_publish_head(struct smptop_trace_ring *r, uint64_t head) {
  __atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
}
/** Stores a record's seq word (0 = being written, position + 1 = complete). */
static inline void trace_store_seq(struct smptop_trace_record *rec, uint64_t v) {
  __asm__ volatile("" ::: "memory");
  __atomic_store_n(&rec->seq, v, __ATOMIC_RELEASE);
  __asm__ volatile("" ::: "memory");
}

#pragma clang assume_nonnull end

#endif
#endif
