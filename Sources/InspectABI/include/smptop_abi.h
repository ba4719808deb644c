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
#define SMPTOP_ABI_VERSION 7u

/** Most lcpus the guest supports (the lcpu table is sized for this many). */
#define SMPTOP_MAX_LCPUS 64u
/** Slots in the root's table directory; unused slots are all zero. */
#define SMPTOP_MAX_TABLES 16u
/** Frames kept in a panic record's backtrace. */
#define SMPTOP_PANIC_FRAMES 16u
#define SMPTOP_CMDLINE_BYTES 256u
#define SMPTOP_BUILD_ID_BYTES 32u

/** Indices into `smptop_root.tables`. A table with count 0 is simply empty. */
enum smptop_table_kind {
  SMPTOP_TABLE_LCPU = 0,        /* struct smptop_lcpu, one per lcpu (count = lcpus present) */
  SMPTOP_TABLE_LOCK = 1,        /* struct smptop_lock, the static lock registry (a linker section) */
  SMPTOP_TABLE_THREAD = 2,      /* struct smptop_thread, the thread pool (count = slots ever used) */
  SMPTOP_TABLE_TIMERQ = 3,      /* struct smptop_timerq, one per lcpu */
  SMPTOP_TABLE_WORKLOAD = 4,    /* struct smptop_workload, exactly one */
  SMPTOP_TABLE_ALLOC = 5,       /* struct smptop_alloc, exactly one (the buddy allocator) */
  SMPTOP_TABLE_ALLOC_ORDER = 6, /* struct smptop_alloc_order, one per order, order 0 first */
  SMPTOP_TABLE_VIRTIO_DEV = 7,  /* struct smptop_virtio_dev, one per virtio device */
  SMPTOP_TABLE_VIRTQ = 8,       /* struct smptop_virtq, every virtqueue of every device */
  SMPTOP_TABLE_TRACE = 9,       /* v4: struct smptop_trace_ring, one per lcpu */
  SMPTOP_TABLE_PROFILE = 10,    /* v5: struct smptop_trace_ring of struct smptop_prof_sample,
                                   one per lcpu; registered only when prof_hz is set */
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
 * (0 = no panic; odd = being written; even and nonzero = complete) and, since v3, also
 * inside its lcpu record's `seq`, so a reader that checks the lcpu seq never accepts a
 * half-written panic record whatever order its copy reads the bytes in.
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
  uint64_t seq;       /* guards state, busy_depth, error_code, current_thread, state_since_tsc,
                         and the panic record (written inside this seq as well as its own) */
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
  uint64_t work_loops;    /* iterations of the built-in busy/idle work pattern (any, atomic) */
  /* v3: the scheduler's self-check, run by this lcpu at every timer tick under its run-queue
     lock: the queue's links, its length and the thread table's READY threads must agree. */
  uint64_t runq_checks;         /* self-checks run */
  uint64_t runq_check_failures; /* self-checks that found the queue and the thread table disagreeing */
  uint64_t sleep_in_atomic;     /* a thread tried to block (sleep, mutex, semaphore) with preemption
                                   off, e.g. holding a spin lock: not switched out, counted */

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
  /* v2 */
  uint64_t dynamic_locks;  /* address of the first dynamically created struct smptop_lock
                              (linked through .next), 0 = none (any: lock creation, under a lock) */
  uint64_t dynamic_lock_count; /* how many are linked (a reader caps its walk at this and 4096) */
  /* v4 */
  uint64_t trace_control; /* enum smptop_trace_class bits being traced: set by the bsp from the
                             command line (trace=...), and the one word smptop writes (only when
                             the user asks); every lcpu reads it at each trace point */
  /* v5 */
  uint64_t prof_hz;       /* stack samples per second per lcpu (prof_hz=...), 0 = profiling off */
  /* v7 */
  uint64_t isr_return;    /* the return address of the interrupt entry's call of its dispatcher:
                             a frame-pointer walk that meets it is in an interrupt handler, and
                             the interrupted context is the struct smptop_trap_frame at that
                             frame's rbp + SMPTOP_TRAP_FRAME_GAP; 0 = not published */
};

/**
 * v7: what the interrupt entry saves on the interrupted stack (kernel: struct trap_frame,
 * traps.S), lowest address first. The dispatcher is called with the frame's address minus
 * 512 bytes of FXSAVE area as its stack pointer, so from the dispatcher's own frame pointer
 * (its `push rbp` after the call's return address) the frame is SMPTOP_TRAP_FRAME_GAP above.
 */
struct smptop_trap_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error_code;
  uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU: the interrupted context */
};
#define SMPTOP_TRAP_FRAME_GAP (16u + 512u)

/* ------------------------------------------------------------------------------------- */
/* v2: locks, threads, timers, workload, allocator, virtio                                */
/* ------------------------------------------------------------------------------------- */

#define SMPTOP_NAME_BYTES 32u
#define SMPTOP_LOCK_WAITERS 8u     /* waiter slots kept per lock (waiter_count may be larger) */
#define SMPTOP_TIMER_SLOTS 16u     /* pending timers listed per lcpu (pending may be larger) */
#define SMPTOP_LATENESS_BUCKETS 8u /* <1us <10us <100us <1ms <10ms <100ms <1s >=1s */
#define SMPTOP_ALLOC_MAX_ORDERS 16u
#define SMPTOP_NO_LCPU 0xffffffffu

/** Lock kinds (`smptop_lock.kind`). */
enum smptop_lock_kind {
  SMPTOP_LOCK_SPIN = 0,   /* test-and-test-and-set spinlock */
  SMPTOP_LOCK_TICKET = 1, /* ticket lock: state_word = next ticket << 32 | now serving */
  SMPTOP_LOCK_RW = 2,     /* reader-writer lock with writer preference */
  SMPTOP_LOCK_MUTEX = 3,  /* sleeping mutex with owner and wait queue */
  SMPTOP_LOCK_SEMAPHORE = 4, /* counting semaphore with wait queue */
};

/** Lock flags (`smptop_lock.flags`). */
enum smptop_lock_flag {
  SMPTOP_LOCKF_IRQSAVE = 1u << 0,   /* taken with interrupts saved and disabled */
  SMPTOP_LOCKF_RECURSIVE = 1u << 1, /* a recursive mutex */
  SMPTOP_LOCKF_DYNAMIC = 1u << 2,   /* created at run time (on the dynamic list) */
  SMPTOP_LOCKF_WRITER = 1u << 3,    /* rwlock: held by a writer right now */
  SMPTOP_LOCKF_SEEN_IN_IRQ = 1u << 4,      /* has been taken in interrupt context */
  SMPTOP_LOCKF_SEEN_IRQS_ON = 1u << 5,     /* has been taken with interrupts enabled */
};

/** A lcpu or thread waiting for a lock (`smptop_lock.waiters`). */
struct smptop_lock_waiter {
  uint32_t lcpu;      /* SMPTOP_NO_LCPU when unknown */
  uint32_t reserved;
  uint64_t thread;    /* 0 = not a thread (an lcpu outside thread context) */
  uint64_t since_tsc; /* when it started waiting */
};

/** One lock's state and statistics. Writer: whichever lcpu operates on it, under `seq`
    for the holder and waiter fields; counters are atomic increments. */
struct smptop_lock {
  uint64_t seq;       /* guards state_word..acquired_tsc, readers, waiter_count, waiters */
  uint64_t next;      /* next dynamic lock (SMPTOP_LOCKF_DYNAMIC), 0 = end */
  char name[SMPTOP_NAME_BYTES];
  uint32_t kind;      /* enum smptop_lock_kind */
  uint32_t flags;     /* enum smptop_lock_flag */
  uint64_t address;   /* address of the lock object itself */
  uint64_t state_word; /* the raw lock word (kind-specific, see enum comments) */
  uint32_t holder_lcpu; /* SMPTOP_NO_LCPU when free (rwlock readers: the last reader's lcpu) */
  uint32_t readers;   /* rwlock: readers inside; semaphore: count; mutex: recursion depth */
  uint64_t holder_thread; /* thread id of the holder (0 = none, or an lcpu outside threads) */
  uint64_t acquire_site;  /* return address of the call that took it */
  uint64_t acquired_tsc;  /* when the current holder took it */
  uint64_t acquisitions;  /* successful acquisitions (count) */
  uint64_t contended;     /* acquisitions that had to wait (count) */
  uint64_t trylock_failures;
  uint64_t wait_total_tsc; /* summed wait of contended acquisitions (tsc) */
  uint64_t wait_max_tsc;
  uint64_t hold_total_tsc; /* summed hold time (tsc) */
  uint64_t hold_max_tsc;
  uint64_t misuse_irq_unsafe;  /* taken in IRQ context and elsewhere with IRQs on (self-deadlock risk) */
  uint64_t misuse_sleep_in_irq; /* a sleeping lock taken in interrupt context */
  uint64_t misuse_recursion;   /* re-taken by its holder (non-recursive kind) */
  uint64_t misuse_bad_unlock;  /* released by a non-holder */
  uint32_t waiter_count;       /* lcpus/threads waiting right now */
  uint32_t pending_writers;    /* rwlock: writers waiting (readers then wait too) */
  struct smptop_lock_waiter waiters[SMPTOP_LOCK_WAITERS];
};

/** Thread states (`smptop_thread.state`). */
enum smptop_thread_state {
  SMPTOP_THREAD_FREE = 0,
  SMPTOP_THREAD_RUNNING = 1,
  SMPTOP_THREAD_READY = 2,
  SMPTOP_THREAD_BLOCKED_LOCK = 3, /* on a mutex: blocked_on = lock address */
  SMPTOP_THREAD_BLOCKED_SEM = 4,  /* on a semaphore: blocked_on = its address */
  SMPTOP_THREAD_BLOCKED_WAITQ = 5, /* on a wait queue: blocked_on = its address */
  SMPTOP_THREAD_SLEEPING = 6,     /* until wake_tsc */
  SMPTOP_THREAD_SPINNING = 7,     /* spinning on a spin/ticket/rw lock: blocked_on = lock address */
  SMPTOP_THREAD_EXITED = 8,
};

/** One kernel thread. Writer: the lcpu that owns it (scheduler), under `seq`. */
struct smptop_thread {
  uint64_t seq;
  uint64_t id;          /* nonzero, unique */
  char name[SMPTOP_NAME_BYTES];
  uint32_t state;       /* enum smptop_thread_state */
  uint32_t lcpu;        /* the lcpu whose run queue owns it */
  uint64_t blocked_on;  /* lock / semaphore / wait queue address, 0 = none */
  uint64_t wake_tsc;    /* SLEEPING: deadline */
  uint64_t cpu_tsc;     /* CPU time consumed (tsc) */
  uint64_t switches;    /* times switched in */
  uint64_t ops;         /* workload operations done (count) */
  /* v4: where the thread is, for a backtrace without stopping the VM */
  uint64_t stack_bottom; /* its stack [stack_bottom, stack_top) (set at creation) */
  uint64_t stack_top;
  uint64_t saved_rsp;    /* switched out: the stack pointer ctx_switch saved; the context there is
                            r15, r14, r13, r12, rbx, rbp, return address (8 bytes each). 0 while
                            the thread runs (cleared under seq at switch-in); stored by ctx_switch
                            itself, outside seq, in one aligned write */
  uint64_t tick_rip;     /* the latest timer tick that interrupted this thread (not a nested */
  uint64_t tick_rbp;     /*   interrupt): its rip, rbp and rsp */
  uint64_t tick_rsp;
  uint64_t tick_tsc;     /* tsc of that tick, 0 = never interrupted by one */
};

/** A pending timer (`smptop_timerq.timers`). */
struct smptop_timer_slot {
  uint64_t deadline_tsc;
  uint64_t owner_thread; /* 0 = the kernel itself (scheduler tick) */
};

/** One lcpu's timer queue. Writer: the owning lcpu, under `seq`. */
struct smptop_timerq {
  uint64_t seq;
  uint32_t lcpu;
  uint32_t pending;          /* timers queued (slots below list the earliest) */
  uint64_t next_deadline_tsc; /* what the LAPIC timer is programmed for, 0 = none */
  uint64_t fired;            /* timers that expired (count) */
  uint64_t late_total_tsc;   /* summed lateness: fire time - deadline (tsc) */
  uint64_t late_max_tsc;
  uint64_t late_hist[SMPTOP_LATENESS_BUCKETS]; /* counts by lateness decade from 1 us */
  struct smptop_timer_slot timers[SMPTOP_TIMER_SLOTS];
};

/** The workload's self-description. Writer: any (atomic), checks by the bsp. */
struct smptop_workload {
  uint64_t seq;
  char scenario[SMPTOP_NAME_BYTES]; /* "default", "deadlock", "isr-misuse", "convoy", ... */
  uint64_t checks;          /* self-checks run */
  uint64_t check_failures;  /* self-checks that found a wrong total */
  uint64_t expected;        /* latest check: increments made */
  uint64_t observed;        /* latest check: counter totals found */
  uint64_t ops[SMPTOP_MAX_LCPUS]; /* operations done per lcpu (count; the host derives ops/s) */
};

/** Allocator modes (`smptop_alloc.mode`). */
enum smptop_alloc_mode { SMPTOP_ALLOC_LOCKED = 0, SMPTOP_ALLOC_LOCKFREE = 1 };

/** The buddy allocator. Writer: any lcpu (atomic counters). */
struct smptop_alloc {
  uint64_t seq;
  uint32_t mode;       /* enum smptop_alloc_mode */
  uint32_t orders;     /* orders managed (records in the ALLOC_ORDER table) */
  uint64_t base;       /* first managed address */
  uint64_t page_bytes; /* bytes of an order-0 block */
  uint64_t pages_managed;
  uint64_t pages_free;
  uint64_t largest_free_order; /* highest order with a free block; UINT64_MAX = none */
  uint64_t churn_checks;       /* allocator self-checks run */
  uint64_t churn_failures;     /* self-checks that failed (double hand-out, leaked pages) */
  uint64_t start_free_pages;   /* free pages before the churn started */
  uint64_t heap_bytes_in_use;  /* the Swift runtime's heap on top of the buddy allocator */
  uint64_t heap_allocs;
  uint64_t heap_frees;
  uint64_t lcpu_allocs[SMPTOP_MAX_LCPUS];
  uint64_t lcpu_frees[SMPTOP_MAX_LCPUS];
};

/** One buddy order. Writer: any lcpu (atomic counters). */
struct smptop_alloc_order {
  uint64_t order;
  uint64_t block_bytes;
  uint64_t free_blocks;
  uint64_t used_blocks;  /* blocks of exactly this order handed out */
  uint64_t allocs;
  uint64_t frees;
  uint64_t splits;
  uint64_t merges;
  uint64_t failures;
  uint64_t cas_retries;  /* lock-free mode: compare-and-swap retries */
};

/** Virtqueue roles (`smptop_virtq.role`). */
enum smptop_virtq_role { SMPTOP_VIRTQ_RX = 0, SMPTOP_VIRTQ_TX = 1, SMPTOP_VIRTQ_CTRL = 2 };

/** One virtio device. Writer: the bsp at set-up, then the owning lcpus. */
struct smptop_virtio_dev {
  uint64_t seq;
  char name[SMPTOP_NAME_BYTES]; /* "virtio-net" */
  uint32_t pci_bdf;      /* bus << 8 | device << 3 | function */
  uint32_t device_id;    /* virtio device id (1 = net) */
  uint64_t features;     /* negotiated feature bits */
  uint32_t queue_pairs;  /* RX/TX pairs in use */
  uint32_t queues;       /* records of this device in the VIRTQ table */
  uint8_t mac[8];        /* 6 bytes used */
  uint32_t link_up;
  uint32_t msix;         /* 1 = MSI-X interrupts, 0 = polled */
  uint64_t first_queue;  /* index of its first record in the VIRTQ table */
};

/** One virtqueue. Writer: the owning lcpu, under `seq` for the indices. */
struct smptop_virtq {
  uint64_t seq;
  uint32_t device;       /* index into the VIRTIO_DEV table */
  uint32_t index;        /* the queue's virtio index */
  uint32_t role;         /* enum smptop_virtq_role */
  uint32_t lcpu;         /* owning lcpu */
  uint32_t size;         /* ring entries */
  uint32_t free_descs;
  uint32_t avail_idx;    /* the driver's avail index (next to publish) */
  uint32_t used_idx;     /* the device's used index as the driver last read it */
  uint32_t last_used;    /* the driver's consumed position in the used ring */
  uint32_t notifications_off; /* 1 = driver suppressed device notifications (no interrupts) */
  uint64_t packets;
  uint64_t bytes;
  uint64_t errors;
  uint64_t drops;
  uint64_t kicks;        /* notifications to the device */
  uint64_t interrupts;   /* interrupts taken for this queue */
  uint64_t polls;        /* times polled (without MSI-X) */
  uint64_t desc_addr;
  uint64_t avail_addr;
  uint64_t used_addr;
};

/* ------------------------------------------------------------------------------------- */
/* v4: event trace rings                                                                   */
/* ------------------------------------------------------------------------------------- */

/** Most slots in one lcpu's trace ring (a power of two; a ring's `capacity` says how many it has). */
#define SMPTOP_TRACE_SLOTS 65536u

/** What `smptop_root.trace_control` enables, one bit per class of events. */
enum smptop_trace_class {
  SMPTOP_TRACE_LOCKS = 1u << 0,  /* lock contend-begin, acquired, released (every lock kind) */
  SMPTOP_TRACE_IRQ = 1u << 1,    /* interrupt enter / exit */
  SMPTOP_TRACE_SCHED = 1u << 2,  /* context switches */
  SMPTOP_TRACE_TIMER = 1u << 3,  /* timer expiries */
  SMPTOP_TRACE_VIRTIO = 1u << 4, /* virtqueue kicks and interrupts */
  SMPTOP_TRACE_ALLOC = 1u << 5,  /* allocation failures */
};

/**
 * Event kinds (`smptop_trace_record.kind`). `lcpu` is the lcpu the event is about (the
 * ring's own lcpu, except an acquisition handed to a waiter elsewhere).
 */
enum smptop_trace_kind {
  SMPTOP_TRACE_NONE = 0,
  SMPTOP_TRACE_LOCK_CONTEND = 1,  /* object = lock address, arg = waiting thread (0 = none),
                                     arg2 = lock kind, site = call site (0 = unknown) */
  SMPTOP_TRACE_LOCK_ACQUIRED = 2, /* object = lock, arg = holder thread, arg2 = wait in tsc
                                     (0 = uncontended; nonzero = one `contended` count),
                                     site = acquire site, lcpu = holder lcpu */
  SMPTOP_TRACE_LOCK_RELEASED = 3, /* object = lock, arg = releasing thread, arg2 = hold in tsc
                                     (0 = unknown: an rw reader that is not the last, a
                                     semaphore's up), site = the site that acquired it */
  SMPTOP_TRACE_IRQ_ENTER = 4,     /* object = vector, arg = interrupted rip */
  SMPTOP_TRACE_IRQ_EXIT = 5,      /* object = vector */
  SMPTOP_TRACE_SWITCH = 6,        /* object = next thread (0 = idle), arg = previous thread */
  SMPTOP_TRACE_TIMER_FIRED = 7,   /* object = owner thread (0 = the scheduler tick),
                                     arg = lateness in tsc, arg2 = deadline tsc */
  SMPTOP_TRACE_VIRTIO_KICK = 8,   /* object = the queue's struct smptop_virtq address,
                                     arg = avail index published */
  SMPTOP_TRACE_VIRTIO_IRQ = 9,    /* object = the queue's struct smptop_virtq address, arg = vector */
  SMPTOP_TRACE_ALLOC_FAIL = 10,   /* object = order asked for, arg = bytes asked for */
};

/**
 * One trace event (64 bytes). Writer: the ring's lcpu with interrupts off: `seq` becomes 0,
 * the fields are written, then `seq` = the record's position + 1, then the ring's head. A
 * reader accepts a copy only if `seq` reads position + 1 before and after it.
 */
struct smptop_trace_record {
  uint64_t seq;
  uint64_t tsc;
  uint16_t kind;  /* enum smptop_trace_kind */
  uint16_t flags; /* 0 (reserved) */
  uint32_t lcpu;
  uint64_t object;
  uint64_t arg;
  uint64_t arg2;
  uint64_t site;
  uint64_t reserved;
};

/**
 * One lcpu's trace ring (table 9): an overwrite-oldest array of `capacity` records. Writer:
 * the owning lcpu only (single producer, interrupts off while writing). `head` counts every
 * record ever written (the next position; slot = position % capacity) and is stored after the
 * record, so a reader that last saw position p and now sees head h lost max(0, h - capacity - p)
 * records to overwriting, plus any whose `seq` no longer matches.
 */
struct smptop_trace_ring {
  uint64_t head;
  uint32_t lcpu;
  uint32_t capacity; /* slots, a power of two up to SMPTOP_TRACE_SLOTS; 0 = no ring memory */
  uint64_t records;  /* address of the record array */
  uint64_t stride;   /* bytes per record (sizeof(struct smptop_trace_record)) */
};

/* ------------------------------------------------------------------------------------- */
/* v5: stack-sample profile rings                                                          */
/* ------------------------------------------------------------------------------------- */

/** Most slots in one lcpu's profile ring (a power of two). */
#define SMPTOP_PROF_SLOTS 8192u
/** Most return addresses a sample keeps (below the interrupted rip). */
#define SMPTOP_PROF_FRAMES 32u

/** `smptop_prof_sample.flags`. */
enum smptop_prof_flag {
  SMPTOP_PROF_IDLE = 1u << 0,      /* the lcpu was IDLE (halted in its idle loop) */
  SMPTOP_PROF_NESTED = 1u << 1,    /* the tick interrupted another interrupt handler */
  SMPTOP_PROF_TRUNCATED = 1u << 2, /* the frame chain went on past SMPTOP_PROF_FRAMES */
  SMPTOP_PROF_UNSEEN = 1u << 3,    /* v6: no stack (rip 0, depth 0, thread 0): `periods`
                                      deadlines that passed in the state IDLE says, while
                                      the late interrupt found the lcpu in the other state */
};

/**
 * One stack sample (304 bytes), taken by an lcpu in its own timer interrupt from the context
 * the interrupt stopped. Same protocol as a trace record: `seq` = 0 while written, then the
 * record's position + 1, then the ring's head.
 */
struct smptop_prof_sample {
  uint64_t seq;
  uint64_t tsc;
  uint64_t thread;  /* thread that was running, 0 = the lcpu's idle context */
  uint64_t periods; /* sampling periods this sample stands for: 1, or more when the interrupt
                       came late (a vCPU the host did not run, interrupts off) and several
                       deadlines passed in the state it found (v6: deadlines in the other
                       state go to an UNSEEN sample) */
  uint16_t flags;  /* enum smptop_prof_flag */
  uint16_t depth;  /* valid entries in frames */
  uint32_t lcpu;
  uint64_t rip;    /* the interrupted instruction */
  uint64_t frames[SMPTOP_PROF_FRAMES]; /* return addresses from the rbp chain, innermost first;
                                          every frame lay inside the interrupted stack */
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct smptop_prof_sample) == 304, "smptop_prof_sample layout");
_Static_assert(sizeof(struct smptop_trap_frame) == 22 * 8, "smptop_trap_frame layout");
_Static_assert(sizeof(struct smptop_trace_record) == 64, "smptop_trace_record layout");
_Static_assert(sizeof(struct smptop_trace_ring) % 8 == 0, "smptop_trace_ring stride");
_Static_assert(sizeof(struct smptop_panic) == 208, "smptop_panic layout");
_Static_assert(sizeof(struct smptop_lcpu) % 8 == 0, "smptop_lcpu stride");
_Static_assert(sizeof(struct smptop_root) % 8 == 0, "smptop_root size");
_Static_assert(sizeof(struct smptop_lock) % 8 == 0, "smptop_lock stride");
_Static_assert(sizeof(struct smptop_thread) % 8 == 0, "smptop_thread stride");
_Static_assert(sizeof(struct smptop_timerq) % 8 == 0, "smptop_timerq stride");
_Static_assert(sizeof(struct smptop_virtq) % 8 == 0, "smptop_virtq stride");
#endif

#endif /* SMPTOP_ABI_H */
