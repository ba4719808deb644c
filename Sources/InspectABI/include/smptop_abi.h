/*
 * smptop inspection ABI — the only contract between the guest kernel and smptop.
 *
 * The guest keeps its bookkeeping in the plain records below; smptop reads them out of
 * guest memory (gdbstub, shared RAM file or a recording) and never guesses Swift layouts.
 *
 * Rules
 *  - The root descriptor is the ELF symbol `smptop_root`. The guest is identity-mapped, so
 *    every address in these records is both a guest-virtual and a guest-physical address.
 *  - Every counter is a naturally aligned 64-bit word: a live reader can never see it torn.
 *  - Fields that must agree with each other sit under a sequence counter (`seq`): the
 *    writer makes it odd before writing and even after. A reader copies the record and
 *    accepts the copy only if `seq` was even and unchanged across the copy.
 *  - Any change to a record bumps SMPTOP_ABI_VERSION, and the guest and the host change
 *    in the same commit. smptop refuses a version it does not know.
 *
 * Units: "tsc" values are raw guest TSC counts; `smptop_root.tsc_per_ms` converts them.
 * Writers: "lcpu" = the lcpu that owns the record, "bsp" = lcpu 0 during boot,
 *          "any" = whichever lcpu performs the event (atomic increment).
 */
#ifndef SMPTOP_ABI_H
#define SMPTOP_ABI_H

#include <stdint.h>

/** "SMPTOPAB" read as a little-endian 64-bit word. */
#define SMPTOP_ABI_MAGIC 0x4241504f54504d53ULL
#define SMPTOP_ABI_VERSION 1u

/** Most lcpus the guest supports (the lcpu table is sized for this many). */
#define SMPTOP_MAX_LCPUS 64u
/** Slots in the root's table directory; unused slots are all zero. */
#define SMPTOP_MAX_TABLES 16u
/** Frames kept in a panic record's backtrace. */
#define SMPTOP_PANIC_FRAMES 16u
#define SMPTOP_CMDLINE_BYTES 256u
#define SMPTOP_BUILD_ID_BYTES 32u

/** Indices into `smptop_root.tables`. */
enum smptop_table_kind {
  SMPTOP_TABLE_LCPU = 0, /* struct smptop_lcpu, one per lcpu, count = lcpus started */
};

/** lcpu states, after Unikraft's lcpu model. BUSY carries a depth in `busy_depth`. */
enum smptop_lcpu_state {
  SMPTOP_LCPU_OFFLINE = 0, /* not started (or not present) */
  SMPTOP_LCPU_INIT = 1,    /* INIT-SIPI-SIPI sent, not yet in 64-bit code */
  SMPTOP_LCPU_IDLE = 2,    /* halted in the idle loop with interrupts on */
  SMPTOP_LCPU_BUSY = 3,    /* running: busy_depth = nesting (work, interrupts, remote calls) */
  SMPTOP_LCPU_HALTED = 4,  /* stopped for good; error_code says why (e.g. exception vector) */
};

/** Flags in `smptop_root.features`. */
enum smptop_feature {
  SMPTOP_FEATURE_X2APIC = 1u << 0,       /* LAPIC driven through MSRs */
  SMPTOP_FEATURE_TSC_DEADLINE = 1u << 1, /* timer in TSC-deadline mode */
  SMPTOP_FEATURE_PVH = 1u << 2,          /* booted through the PVH note (else multiboot) */
  SMPTOP_FEATURE_HYPERVISOR_FREQ = 1u << 3, /* TSC/LAPIC rates from CPUID 0x40000010 */
};

/** Boot progress in `smptop_root.boot_stage`. */
enum smptop_boot_stage {
  SMPTOP_BOOT_EARLY = 0,    /* BSP in long mode, records not yet complete */
  SMPTOP_BOOT_SMP = 1,      /* starting APs */
  SMPTOP_BOOT_RUNNING = 2,  /* every lcpu that could start is online; tables complete */
  SMPTOP_BOOT_SHUTDOWN = 3, /* powering off */
};

/** Where a table lives: `count` records of `stride` bytes from `addr`. */
struct smptop_table {
  uint64_t addr;
  uint32_t count;
  uint32_t stride;
};

/**
 * A CPU exception that stopped an lcpu. Writer: the faulting lcpu, under `seq`
 * (0 = no panic; odd = being written; even and nonzero = complete).
 */
struct smptop_panic {
  uint64_t seq;
  uint64_t vector;     /* exception vector 0..31 */
  uint64_t error_code; /* CPU-pushed error code, 0 when the vector has none */
  uint64_t rip;        /* faulting instruction */
  uint64_t rsp;
  uint64_t rbp;
  uint64_t rflags;
  uint64_t cr2; /* page-fault linear address (vector 14) */
  uint64_t tsc; /* when it happened */
  uint64_t frames; /* valid entries in backtrace */
  uint64_t backtrace[SMPTOP_PANIC_FRAMES]; /* return addresses, innermost first (rbp chain) */
};

/** One logical CPU. Writer: the owning lcpu unless noted. */
struct smptop_lcpu {
  uint64_t seq;       /* guards state, busy_depth, error_code, current_thread, state_since_tsc */
  uint32_t index;     /* lcpu index, BSP = 0 (bsp) */
  uint32_t apic_id;   /* LAPIC id from the MADT (bsp) */
  uint32_t state;     /* enum smptop_lcpu_state */
  uint32_t busy_depth; /* nesting while BUSY, 0 otherwise */
  uint64_t error_code; /* HALTED: why (exception vector + 1, or a kernel error code) */
  uint64_t state_since_tsc; /* tsc of the latest state change */

  uint64_t irq_timer;    /* LAPIC timer interrupts taken */
  uint64_t irq_ipi;      /* IPIs taken (wake-up and remote call) */
  uint64_t irq_device;   /* device interrupts taken (IOAPIC / MSI) */
  uint64_t irq_spurious; /* spurious-vector interrupts taken */
  uint64_t ipi_sent;     /* IPIs this lcpu sent */
  uint64_t ipi_received; /* IPIs delivered to this lcpu (same as irq_ipi once handled) */
  uint64_t remote_calls; /* remote calls run on this lcpu */

  uint64_t ticks;        /* timer ticks counted by this lcpu's scheduler clock */
  uint64_t cycles_idle;  /* tsc cycles spent IDLE (halted) */
  uint64_t cycles_busy;  /* tsc cycles spent BUSY */
  uint64_t current_thread; /* id of the thread running here, 0 = none / idle */
  uint64_t next_deadline_tsc; /* tsc when this lcpu's LAPIC timer fires next, 0 = none */
  uint64_t last_tick_rip; /* RIP interrupted by the latest timer tick */
  uint64_t last_tick_tsc; /* tsc of the latest timer tick */
  uint64_t stack_bottom;  /* this lcpu's kernel stack [bottom, top) (bsp) */
  uint64_t stack_top;
  uint64_t work_loops;    /* iterations of the built-in busy/idle work pattern */
  uint64_t reserved[3];

  struct smptop_panic panic;
};

/** The root descriptor. Written by the bsp during boot, then read-only except noted. */
struct smptop_root {
  uint64_t magic;   /* SMPTOP_ABI_MAGIC, written last at boot so a reader never sees a half root */
  uint32_t version; /* SMPTOP_ABI_VERSION */
  uint32_t size;    /* sizeof(struct smptop_root) */
  uint64_t build_id_len;                    /* bytes used in build_id */
  uint8_t build_id[SMPTOP_BUILD_ID_BYTES];  /* the ELF's GNU build-id note */
  uint64_t boot_stage;     /* enum smptop_boot_stage */
  uint64_t features;       /* enum smptop_feature bits */
  uint64_t boot_tsc;       /* tsc at kernel entry */
  uint64_t tsc_per_ms;     /* calibrated TSC rate */
  uint64_t lapic_per_ms;   /* calibrated LAPIC timer rate (after its divider) */
  uint64_t tick_us;        /* scheduler tick period in microseconds */
  uint64_t lcpus_present;  /* lcpus found in the MADT */
  uint64_t lcpus_online;   /* lcpus that reached IDLE (any, atomic) */
  uint64_t ram_bytes;      /* usable RAM reported by the boot loader */
  uint64_t kernel_start;   /* image bounds in memory [start, end) */
  uint64_t kernel_end;
  uint64_t text_start;     /* code bounds: every backtrace frame lies in [text_start, text_end) */
  uint64_t text_end;
  uint64_t shutdown_code;  /* exit code requested by the kernel, valid at SHUTDOWN */
  char cmdline[SMPTOP_CMDLINE_BYTES]; /* kernel command line (-append), NUL-terminated */
  uint32_t table_count;    /* slots used in tables[] */
  uint32_t reserved0;
  struct smptop_table tables[SMPTOP_MAX_TABLES];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct smptop_panic) == 208, "smptop_panic layout");
_Static_assert(sizeof(struct smptop_lcpu) % 8 == 0, "smptop_lcpu stride");
_Static_assert(sizeof(struct smptop_root) % 8 == 0, "smptop_root size");
#endif

#endif /* SMPTOP_ABI_H */
