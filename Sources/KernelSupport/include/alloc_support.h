/*
 * The buddy allocator's inspection records (alloc_data.c) and their accessors.
 */
#ifndef ALLOC_SUPPORT_H
#define ALLOC_SUPPORT_H
#if defined(SMP_GUEST) && defined(__x86_64__)
#include <stdint.h>
#include <smptop_abi.h>
#pragma clang assume_nonnull begin

extern struct smptop_alloc smptop_alloc_record;
extern struct smptop_alloc_order smptop_alloc_orders[SMPTOP_ALLOC_MAX_ORDERS];
extern uint64_t smptop_alloc_churn_tsc[SMPTOP_MAX_LCPUS];

static inline struct smptop_alloc *abi_alloc(void) { return &smptop_alloc_record; }
static inline struct smptop_alloc_order *abi_alloc_orders(void) { return smptop_alloc_orders; }
static inline uint64_t *abi_alloc_lcpu_allocs(void) { return smptop_alloc_record.lcpu_allocs; }
static inline uint64_t *abi_alloc_lcpu_frees(void) { return smptop_alloc_record.lcpu_frees; }
static inline uint64_t *abi_alloc_pages_free(void) { return &smptop_alloc_record.pages_free; }
static inline uint64_t *alloc_churn_tsc(void) { return smptop_alloc_churn_tsc; }
static inline uint32_t abi_alloc_stride(void) { return sizeof(struct smptop_alloc); }
static inline uint32_t abi_alloc_order_stride(void) { return sizeof(struct smptop_alloc_order); }
#pragma clang assume_nonnull end
#endif
#endif
