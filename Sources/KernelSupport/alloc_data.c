/*
 * The buddy allocator's inspection records (tables ALLOC and ALLOC_ORDER), and the churn
 * time per lcpu (not in the ABI; read by name for throughput measurements).
 */
#ifdef SMP_GUEST
#include "KernelSupport.h"

__attribute__((used, aligned(64))) struct smptop_alloc smptop_alloc_record;
__attribute__((used, aligned(64))) struct smptop_alloc_order smptop_alloc_orders[SMPTOP_ALLOC_MAX_ORDERS];
/** tsc spent in allocation churn, per lcpu. */
__attribute__((used, aligned(64))) uint64_t smptop_alloc_churn_tsc[SMPTOP_MAX_LCPUS];
#endif
