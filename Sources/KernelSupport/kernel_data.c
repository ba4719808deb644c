/*
 * The kernel's statically allocated data: the inspection root and lcpu table the host
 * reads, the per-lcpu areas and stacks, and the IDT. Everything lives at a fixed,
 * identity-mapped address so the host can read it straight out of guest memory.
 */
#ifdef SMP_GUEST
#include "KernelSupport.h"

/** The inspection ABI root; the host finds it through this ELF symbol. */
__attribute__((used, aligned(64))) struct smptop_root smptop_root;
/** The same object under a hidden name, for the trace points' control-word load (trace_support.h). */
extern struct smptop_root smptop_root_here __attribute__((alias("smptop_root"), visibility("hidden")));

/** The lcpu table the root's tables[SMPTOP_TABLE_LCPU] points at (stride = sizeof). */
__attribute__((used, aligned(64))) struct smptop_lcpu smptop_lcpus[SMPTOP_MAX_LCPUS];

/**
 * Per-lcpu areas; each lcpu's GS base points at its own. lcpu 0's is usable from the first
 * instruction of kmain, so even a fault before LCPU.register reaches a record.
 */
__attribute__((aligned(64))) struct lcpu_area lcpu_areas[LCPU_MAX] = {
    [0] = {.self_pointer = &lcpu_areas[0], .record = &smptop_lcpus[0]},
};

/** Per-lcpu stacks with guard pages (see kernel_layout.h). */
__attribute__((aligned(PAGE_SIZE))) uint8_t lcpu_stacks[LCPU_MAX][LCPU_STACKS_STRIDE];

/** The interrupt descriptor table shared by all lcpus. */
__attribute__((aligned(16))) struct idt_entry idt[256];

/** APIC id -> lcpu index for the AP entry code; 0xFF = not an lcpu. Filled by the BSP. */
uint8_t apic_to_lcpu[256];

#endif
