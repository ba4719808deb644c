/* The event trace and profile ring headers (trace_support.h); the records are buddy pages
   (Trace.swift, Profile.swift). */
#ifdef SMP_GUEST
#include "KernelSupport.h"

/** Ring headers; the root's tables[SMPTOP_TABLE_TRACE] points here. */
__attribute__((used, aligned(64))) struct smptop_trace_ring smptop_trace_rings[SMPTOP_MAX_LCPUS];
/** Profile ring headers; the root's tables[SMPTOP_TABLE_PROFILE] points here when prof_hz is set. */
__attribute__((used, aligned(64))) struct smptop_trace_ring smptop_prof_rings[SMPTOP_MAX_LCPUS];
#endif
