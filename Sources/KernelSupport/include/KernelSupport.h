/*
 * KernelSupport: what Swift cannot express by itself — the C layouts shared with the
 * assembly (trap frame, per-lcpu area, TSS, IDT entry), accessors for the C globals
 * (Swift 6 rejects imported mutable globals), and one-instruction inline-asm helpers
 * (port I/O, MSRs, CPUID, %gs-relative loads, atomics on raw addresses).
 *
 * Everything is guarded by SMP_GUEST: the host build sees an empty module.
 */
#ifndef KERNEL_SUPPORT_H
#define KERNEL_SUPPORT_H

#include "kernel_layout.h"

#if defined(SMP_GUEST) && defined(__x86_64__)

#include <stdbool.h>
#include <stdint.h>
#include <smptop_abi.h>
#include "alloc_support.h"
#include "virtio_support.h"

#pragma clang assume_nonnull begin

/* ---------------------------------------------------------------- layouts */

/** Registers saved by traps.S on every interrupt and exception, lowest address first. */
struct trap_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector;     /* pushed by the stub */
  uint64_t error_code; /* pushed by the CPU, or 0 by the stub */
  uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/** The 64-bit task-state segment: only the stack pointers matter in long mode. */
struct tss64 {
  uint32_t reserved0;
  uint64_t rsp0, rsp1, rsp2;
  uint64_t reserved1;
  uint64_t ist[7]; /* ist[0] is IST1 */
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
} __attribute__((packed));

/** One IDT gate. */
struct idt_entry {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t zero;
};

/**
 * The per-lcpu area, reached through the GS base (`this_lcpu()`). Private to the kernel;
 * what the host may see is in `record` (struct smptop_lcpu).
 */
struct lcpu_area {
  struct lcpu_area *self_pointer; /* offset 0: %gs:0 yields this pointer */
  struct smptop_lcpu *record;   /* this lcpu's inspection record */
  uint32_t index;               /* lcpu index, BSP = 0 */
  uint32_t apic_id;
  uint64_t stack_bottom;        /* kernel stack [bottom, top) */
  uint64_t stack_top;
  uint64_t ist_bottom;          /* IST stacks (#DF, NMI, #MC) [bottom, top) */
  uint64_t ist_top;

  /* Remote-call mailbox (IPI.swift): call_fn 0 = free, 1 = being filled, else a function. */
  uint64_t call_fn;
  uint64_t call_arg;

  /* Timer (Timer.swift). */
  uint64_t timer_deadline;      /* tsc of the next tick */

  /* Work pattern (Work.swift). */
  uint64_t work_pending;        /* 1: run a busy stretch when next idle */
  uint64_t work_next_tsc;       /* tsc when the next stretch becomes due */
  uint64_t work_random;         /* xorshift state */

  /* Panic demonstration (Panic.swift). */
  uint64_t fault_pending;       /* 1: raise the command line's exception when next idle */

  uint64_t start_claim;         /* AP start-up: 0, then 1 = the AP claimed its INIT record, 2 = the BSP gave up on it */
  uint64_t prof_deadline;       /* tsc of the next stack sample, 0 = not profiling (Profile.swift) */
  uint64_t prof_random;         /* xorshift state for the gap between samples (Profile.swift) */
  uint64_t state_changes[LCPU_STATE_CHANGES]; /* tsc of the last changes between IDLE and BUSY,
                                                  newest first, 0 = none yet (LCPU.swift) */
  uint8_t tss[104];             /* struct tss64, filled by lcpu_tss_init (it is packed) */
  uint8_t padding[LCPU_AREA_SIZE - 272];
};

_Static_assert(sizeof(struct lcpu_area) == LCPU_AREA_SIZE, "LCPU_AREA_SIZE");
_Static_assert(LCPU_MAX == SMPTOP_MAX_LCPUS, "LCPU_MAX");
_Static_assert(sizeof(struct trap_frame) == 22 * 8, "trap_frame");
_Static_assert(sizeof(struct trap_frame) == sizeof(struct smptop_trap_frame), "trap_frame is the ABI's");
_Static_assert(__builtin_offsetof(struct trap_frame, rbp) == __builtin_offsetof(struct smptop_trap_frame, rbp),
               "trap_frame.rbp");
_Static_assert(__builtin_offsetof(struct trap_frame, rip) == __builtin_offsetof(struct smptop_trap_frame, rip),
               "trap_frame.rip");
_Static_assert(__builtin_offsetof(struct trap_frame, rsp) == __builtin_offsetof(struct smptop_trap_frame, rsp),
               "trap_frame.rsp");
_Static_assert(sizeof(struct tss64) == 104, "tss64");

/* Layout constants Swift cannot import from the arithmetic macros. */
static const uint64_t kernel_stack_top_offset = KERNEL_STACK_TOP_OFFSET;
static const uint64_t lcpu_stacks_stride = LCPU_STACKS_STRIDE;
static const uint64_t stack_guard_size = STACK_GUARD_SIZE;
static const uint64_t ist_df_stack_size = IST_DF_STACK_SIZE;
static const uint64_t ist_nmi_stack_size = IST_NMI_STACK_SIZE;
static const uint64_t ist_mc_stack_size = IST_MC_STACK_SIZE;
static const uint64_t small_pages_limit = SMALL_PAGES_LIMIT;

/** CPUID result. */
struct cpuid_regs {
  uint32_t eax, ebx, ecx, edx;
};

/* ---------------------------------------------------------------- C globals */

extern struct smptop_root smptop_root;
extern struct smptop_lcpu smptop_lcpus[SMPTOP_MAX_LCPUS];
extern struct lcpu_area lcpu_areas[LCPU_MAX];
extern uint8_t lcpu_stacks[LCPU_MAX][LCPU_STACKS_STRIDE];
extern struct idt_entry idt[256];
extern uint8_t apic_to_lcpu[256];
extern uint64_t gdt[];
extern uint64_t boot_pt[];
extern uint32_t boot_magic, boot_info;
extern uint64_t boot_tsc;
extern char isr_stubs[];
extern char ap_trampoline_start[], ap_trampoline_end[];
extern char __kernel_start[], __kernel_end[], __text_start[], __text_end[];
extern const uint64_t isr_return_address; /* traps.S: right after isr_common's call of isr_dispatch */
extern char __build_id_start[], __build_id_end[];

static inline struct smptop_root *abi_root(void) { return &smptop_root; }
static inline struct smptop_lcpu *abi_lcpu_record(uint32_t i) { return &smptop_lcpus[i]; }
static inline char *abi_root_cmdline(void) { return smptop_root.cmdline; }
static inline uint8_t *abi_root_build_id(void) { return smptop_root.build_id; }
static inline struct smptop_table *abi_root_table(uint32_t i) { return &smptop_root.tables[i]; }
static inline struct smptop_panic *abi_lcpu_panic(struct smptop_lcpu *r) { return &r->panic; }
static inline uint64_t *abi_panic_backtrace(struct smptop_panic *p) { return p->backtrace; }
static inline uint32_t abi_lcpu_stride(void) { return sizeof(struct smptop_lcpu); }

static inline struct lcpu_area *lcpu_area_at(uint32_t i) { return &lcpu_areas[i]; }
static inline uint64_t lcpu_tss_address(struct lcpu_area *a) { return (uint64_t)(uintptr_t)a->tss; }
/** Fills lcpu's TSS: the kernel stack for ring changes and IST1..3. */
static inline void lcpu_tss_init(struct lcpu_area *a, uint64_t rsp0, uint64_t ist1, uint64_t ist2, uint64_t ist3) {
  struct tss64 *t = (struct tss64 *)a->tss;
  t->rsp0 = rsp0;
  t->ist[0] = ist1;
  t->ist[1] = ist2;
  t->ist[2] = ist3;
  t->iomap_base = sizeof(struct tss64);
}
static inline uint64_t lcpu_stacks_base(uint32_t i) { return (uint64_t)(uintptr_t)lcpu_stacks[i]; }
static inline struct idt_entry *idt_entry_at(uint32_t v) { return &idt[v]; }
static inline uint64_t isr_stub_address(uint32_t v) { return (uint64_t)(uintptr_t)isr_stubs + 16u * v; }
static inline uint64_t *gdt_tss_slot(uint32_t i) { return &gdt[(GDT_TSS_FIRST + 16u * i) / 8u]; }
static inline uint64_t *boot_page_table(void) { return boot_pt; }
static inline uint8_t *apic_to_lcpu_table(void) { return apic_to_lcpu; }

static inline uint32_t boot_multiboot_magic(void) { return boot_magic; }
static inline uint32_t boot_multiboot_info(void) { return boot_info; }
static inline uint64_t boot_entry_tsc(void) { return boot_tsc; }

static inline uint64_t sym_addr(const char *p) { return (uint64_t)(uintptr_t)p; }
static inline uint64_t kernel_start_addr(void) { return sym_addr(__kernel_start); }
static inline uint64_t kernel_end_addr(void) { return sym_addr(__kernel_end); }
static inline uint64_t text_start_addr(void) { return sym_addr(__text_start); }
static inline uint64_t text_end_addr(void) { return sym_addr(__text_end); }
static inline uint64_t isr_return_addr(void) { return isr_return_address; }
static inline uint64_t build_id_note_start(void) { return sym_addr(__build_id_start); }
static inline uint64_t build_id_note_end(void) { return sym_addr(__build_id_end); }
static inline uint64_t trampoline_image_start(void) { return sym_addr(ap_trampoline_start); }
static inline uint64_t trampoline_image_end(void) { return sym_addr(ap_trampoline_end); }

/* ---------------------------------------------------------------- the current lcpu */

/** The changes between IDLE and BUSY that `lcpu_area` keeps, newest first. */
static inline uint64_t *lcpu_state_changes(struct lcpu_area *a) { return a->state_changes; }

/** The per-lcpu area of the CPU running this code (GS base points at it). */
static inline struct lcpu_area *this_lcpu(void) {
  struct lcpu_area *p;
  __asm__ volatile("mov %%gs:0, %0" : "=r"(p));
  return p;
}

/* ---------------------------------------------------------------- instructions */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf) {
  struct cpuid_regs r;
  __asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}
static inline uint64_t read_cr2(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}

static inline void cpu_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void cpu_sti(void) { __asm__ volatile("sti" ::: "memory"); }
/** Enables interrupts and halts; the interrupt shadow of `sti` makes the pair atomic. */
static inline void cpu_sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void cpu_pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline bool cpu_irqs_enabled(void) {
  uint64_t f;
  __asm__ volatile("pushfq; popq %0" : "=r"(f)::"memory");
  return (f & 0x200) != 0;
}
/** Stops this CPU for good: interrupts off, halt, and halt again after an NMI. */
static inline __attribute__((noreturn)) void cpu_halt_forever(void) {
  for (;;) __asm__ volatile("cli; hlt" ::: "memory");
}
static inline void cpu_invlpg(uint64_t addr) { __asm__ volatile("invlpg (%0)" ::"r"(addr) : "memory"); }
static inline void cpu_ltr(uint16_t sel) { __asm__ volatile("ltr %0" ::"r"(sel) : "memory"); }
/** Loads the shared IDT (idt[], 256 gates). */
void idt_load(void);

/* ---------------------------------------------------------------- memory-mapped I/O */

static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)(uintptr_t)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)(uintptr_t)addr = v; }

/* ---------------------------------------------------------------- atomics on raw addresses */

static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }
/** A full fence (loads and stores, also against the LAPIC's TSC-deadline MSR write in xAPIC mode). */
static inline void cpu_mfence(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline uint64_t atomic_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void atomic_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t atomic_add_u64(uint64_t *p, uint64_t v) {
  return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
static inline bool atomic_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t atomic_xchg_u64(uint64_t *p, uint64_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t atomic_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/* ---------------------------------------------------------------- inspection-ABI writes */

/** Adds to a counter only its owner writes: one untorn 64-bit store a reader can see. */
static inline void abi_add(uint64_t *p, uint64_t v) { __atomic_store_n(p, *p + v, __ATOMIC_RELAXED); }
static inline void abi_inc(uint64_t *p) { abi_add(p, 1); }
static inline void abi_store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/** Opens a seq-guarded write: seq becomes odd (x86 keeps stores in order; the barrier keeps the compiler). */
static inline void abi_seq_begin(uint64_t *seq) {
  __atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
  compiler_barrier();
}
/** Closes a seq-guarded write: seq becomes even again. */
static inline void abi_seq_end(uint64_t *seq) {
  compiler_barrier();
  __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------- deliberate faults (faults.c) */

void fault_invalid_opcode(void);
uint64_t fault_page_fault(uint64_t addr);
uint64_t fault_divide_error(uint64_t dividend);
uint64_t fault_general_protection(void);
uint64_t fault_stack_overflow(uint64_t depth);

#pragma clang assume_nonnull end

#endif /* SMP_GUEST && __x86_64__ */

/* Locks, threads, timer queues and the workload. */
#include "sync_support.h"
/* Event trace rings. */
#include "trace_support.h"

#endif /* KERNEL_SUPPORT_H */
