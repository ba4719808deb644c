/* The event trace ring headers (trace_support.h); the records are buddy pages (Trace.swift). */
#ifdef SMP_GUEST
#include "KernelSupport.h"

/** Ring headers; the root's tables[SMPTOP_TABLE_TRACE] points here. */
__attribute__((used, aligned(64))) struct smptop_trace_ring smptop_trace_rings[SMPTOP_MAX_LCPUS];
#endif
