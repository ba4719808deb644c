/*
 * Synchronization and scheduling support: the C layouts behind the lock objects,
 * kernel threads, per-lcpu run queues and timer queues, plus the inspection records they
 * publish (struct smptop_lock / smptop_thread / smptop_timerq / smptop_workload).
 *
 * Static locks are defined in sync_data.c with KLOCK_DEFINE: the lock object (struct klock)
 * and its record, which lives in the linker section `smptop_locks`; the section's bounds
 * (__start_smptop_locks .. __stop_smptop_locks) are the LOCK table. Locks created at run
 * time come from a pool and are linked from smptop_root.dynamic_locks.
 */
#ifndef SYNC_SUPPORT_H
#define SYNC_SUPPORT_H

#if defined(SMP_GUEST) && defined(__x86_64__)

#include <stdbool.h>
#include <stdint.h>
#include <smptop_abi.h>

#pragma clang assume_nonnull begin

#define KLOCK_MAX_WAITERS 160u   /* private waiter list per lock (spinning lcpus + blocked threads) */
#define KTHREAD_MAX 192u         /* thread pool: the default workload needs 7 per lcpu + 1, scenarios more */
#define KTHREAD_STACK 16384u
#define KTIMERQ_MAX 128u         /* timers per lcpu */
#define KLOCK_DYNAMIC_MAX 64u

/** One waiter of a lock, in arrival order (mutex/semaphore: the wait queue itself). */
struct klock_waiter {
  uint32_t lcpu;
  uint32_t reserved;
  uint64_t thread; /* thread id, 0 = an lcpu outside threads */
  uint64_t since_tsc;
  uint64_t site;   /* mutex: the waiter's lock() call site, recorded at hand-over */
};

/** A lock object. `word` is the raw lock word published as state_word. */
struct klock {
  uint64_t word;     /* spin: holder lcpu + 1; ticket: next << 32 | serving; rw: 1<<63 writer | readers;
                        mutex: owner thread id; semaphore: count */
  uint64_t meta;     /* internal guard for the record, the waiter list and the mutex/sem state */
  struct smptop_lock *rec;
  uint64_t pending_writers; /* rwlock */
  uint64_t depth;    /* mutex recursion depth */
  uint64_t hold_start; /* rwlock readers: first reader's tsc */
  uint64_t irq_saved; /* rwlock irq-save: bit i = lcpu i had interrupts on before its lock call */
  uint64_t read_lcpus; /* rwlock: bit i = lcpu i has a read section open (its thread or a handler) */
  uint32_t nwaiters;
  uint32_t reserved;  /* spin/ticket irq-save: interrupts were enabled before lock() */
  const char *init_name; /* static locks: record contents for klock_static_init */
  uint32_t init_kind, init_flags;
  struct klock_waiter waiters[KLOCK_MAX_WAITERS];
};

/** Private part of a kernel thread (the record is smptop_threads[i]). */
struct kthread {
  uint64_t stack_base;   /* (the saved stack pointer lives in the record: saved_rsp) */
  uint64_t entry;        /* @convention(c) (UInt64) -> Void */
  uint64_t arg;
  uint32_t next;         /* run-queue link: thread index + 1, 0 = end */
  uint32_t lcpu;
  uint32_t saved_busy_depth;
  uint32_t saved_irq_depth;
  uint64_t tally;        /* workload: increments this thread made under its lock */
  uint32_t work_kind;    /* workload: which shared counter it works on */
  uint32_t woken;        /* 1: handed a lock/semaphore unit or woken by its timer */
  uint32_t timed_out;    /* 1: its semaphore wait timed out (set by its lcpu's timer) */
  uint32_t atomic_block; /* 1: this block was refused (preemption off) and already counted */
};

struct ktimer {
  uint64_t deadline;
  uint64_t thread; /* thread id, 0 = the scheduler tick */
};

/** Per-lcpu scheduler state. */
struct ksched {
  uint64_t current;      /* running thread id, 0 = the lcpu's idle context */
  uint64_t idle_rsp;
  uint32_t idle_busy_depth;
  uint32_t idle_irq_depth;
  uint64_t runq_lock;
  uint32_t runq_head, runq_tail; /* thread index + 1 */
  uint32_t runq_len;
  uint32_t preempt_count;
  uint32_t irq_depth;
  uint32_t ntimers;
  uint64_t slice_start;
  uint64_t need_resched;
  struct ktimer timers[KTIMERQ_MAX];
};

extern struct kthread kthreads[KTHREAD_MAX];
extern struct smptop_thread smptop_threads[KTHREAD_MAX];
extern uint8_t kthread_stacks[KTHREAD_MAX][KTHREAD_STACK];
extern struct ksched kscheds[SMPTOP_MAX_LCPUS];
extern struct smptop_timerq smptop_timerqs[SMPTOP_MAX_LCPUS];
extern struct smptop_workload smptop_workload_record;
extern struct klock klock_dynamic_pool[KLOCK_DYNAMIC_MAX];
extern struct smptop_lock smptop_dynamic_lock_records[KLOCK_DYNAMIC_MAX];
extern uint64_t work_counters[8];
extern uint64_t scenario_slots[SMPTOP_MAX_LCPUS][4];
extern char __start_smptop_locks[], __stop_smptop_locks[];

static inline struct kthread *kthread_at(uint32_t i) { return &kthreads[i]; }
static inline struct smptop_thread *kthread_record(uint32_t i) { return &smptop_threads[i]; }
static inline uint64_t kthread_stack_base(uint32_t i) { return (uint64_t)(uintptr_t)kthread_stacks[i]; }
static inline struct ksched *ksched_at(uint32_t i) { return &kscheds[i]; }
static inline struct ktimer *ksched_timers(struct ksched *s) { return s->timers; }
static inline struct smptop_timerq *ktimerq_record(uint32_t i) { return &smptop_timerqs[i]; }
static inline struct smptop_workload *kworkload_record(void) { return &smptop_workload_record; }
static inline uint64_t *kworkload_ops(void) { return smptop_workload_record.ops; }
static inline char *kworkload_scenario(void) { return smptop_workload_record.scenario; }
static inline struct klock *klock_dynamic_at(uint32_t i) { return &klock_dynamic_pool[i]; }
static inline struct smptop_lock *klock_dynamic_record(uint32_t i) { return &smptop_dynamic_lock_records[i]; }
static inline uint64_t *work_counter(uint32_t i) { return &work_counters[i]; }
/** Per-lcpu hand-shake words of the workload scenarios (wake-race: [0] waiter id, [1] armed,
    [2] condition, [3] wake-ups delivered; panic-console: [0] lock taken, [1] guard held;
    deadlock: lcpu 0's [0] = abba threads holding their first lock). */
static inline uint64_t *scenario_slot(uint32_t lcpu) { return scenario_slots[lcpu]; }
static inline uint64_t klock_section_start(void) { return (uint64_t)(uintptr_t)__start_smptop_locks; }
static inline uint64_t klock_section_end(void) { return (uint64_t)(uintptr_t)__stop_smptop_locks; }
static inline struct klock_waiter *klock_waiters(struct klock *k) { return k->waiters; }
static inline char *klock_record_name(struct smptop_lock *r) { return r->name; }
static inline char *kthread_record_name(struct smptop_thread *r) { return r->name; }
static inline uint32_t abi_lock_stride(void) { return sizeof(struct smptop_lock); }
static inline uint32_t abi_thread_stride(void) { return sizeof(struct smptop_thread); }
static inline uint32_t abi_timerq_stride(void) { return sizeof(struct smptop_timerq); }
static inline uint32_t abi_workload_stride(void) { return sizeof(struct smptop_workload); }
static inline uint64_t abi_addr(const void *p) { return (uint64_t)(uintptr_t)p; }

/** Record helpers: waiter slot i and timer slot i. */
static inline void abi_lock_set_waiter(struct smptop_lock *r, uint32_t i, uint32_t lcpu, uint64_t thread, uint64_t since) {
  r->waiters[i].lcpu = lcpu;
  r->waiters[i].reserved = 0;
  r->waiters[i].thread = thread;
  r->waiters[i].since_tsc = since;
}
static inline void abi_timerq_set(struct smptop_timerq *q, uint32_t i, uint64_t deadline, uint64_t owner) {
  q->timers[i].deadline_tsc = deadline;
  q->timers[i].owner_thread = owner;
}
static inline uint64_t *abi_timerq_hist(struct smptop_timerq *q) { return q->late_hist; }

/* ------------------------------------------------ lock-word atomics (raw addresses) */

static inline void atomic_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/** The internal guard: test-and-test-and-set on a word holding its owner (lcpu index + 1),
    interrupts must be off. */
static inline void kmeta_lock(uint64_t *m, uint64_t owner) {
  for (;;) {
    uint64_t expected = 0;
    if (__atomic_compare_exchange_n(m, &expected, owner, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    while (__atomic_load_n(m, __ATOMIC_RELAXED) != 0) __asm__ volatile("pause");
  }
}
static inline void kmeta_unlock(uint64_t *m) { __atomic_store_n(m, 0, __ATOMIC_RELEASE); }
/** Frees the guard only if `owner` holds it (the panic path); true when it did. */
static inline bool kmeta_break_if_owner(uint64_t *m, uint64_t owner) {
  uint64_t expected = owner;
  return __atomic_compare_exchange_n(m, &expected, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static inline bool kword_cas(uint64_t *p, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static inline uint64_t kword_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t kword_load_relaxed(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void kword_store(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t kword_fetch_add(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
static inline uint64_t kword_fetch_sub(uint64_t *p, uint64_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL); }
/** Ticket lock: take a ticket (the high half); returns the whole old word. */
static inline uint64_t kticket_take(uint64_t *p) { return __atomic_fetch_add(p, 1ull << 32, __ATOMIC_ACQUIRE); }
/** Ticket lock: serve the next ticket (the low half only, so it never carries). */
static inline void kticket_release(uint64_t *p) { __atomic_fetch_add((uint32_t *)p, 1u, __ATOMIC_RELEASE); }
static inline uint32_t kticket_serving(const uint64_t *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }

/** The return address of the (Swift) function this is inlined into: the lock call's site. */
static inline __attribute__((always_inline)) uint64_t caller_return_address(void) {
  return (uint64_t)(uintptr_t)__builtin_return_address(0);
}

/** Fills the static locks' records (first thing at boot, bsp). */
void klock_static_init(void);

/* ------------------------------------------------ context switch (switch.S) */

/** Saves callee-saved registers and rsp into *save_rsp, loads new_rsp and returns there. */
void ctx_switch(uint64_t *save_rsp, uint64_t new_rsp);
/** First return address of a new thread: aligns the stack and calls kthread_main. */
void kthread_start(void);
static inline uint64_t kthread_start_address(void) { return (uint64_t)(uintptr_t)&kthread_start; }

/* ------------------------------------------------ static locks */

#define KLOCK_DECLARE(sym) \
  extern struct klock sym; \
  static inline struct klock *sym##_ptr(void) { return &sym; }

KLOCK_DECLARE(klock_console)
KLOCK_DECLARE(klock_dynamic_registry)
KLOCK_DECLARE(klock_work_spin)
KLOCK_DECLARE(klock_work_ticket)
KLOCK_DECLARE(klock_work_rw)
KLOCK_DECLARE(klock_work_mutex)
KLOCK_DECLARE(klock_work_rmutex)
KLOCK_DECLARE(klock_work_slots)
KLOCK_DECLARE(klock_isr_misuse)
KLOCK_DECLARE(klock_deadlock_a)
KLOCK_DECLARE(klock_deadlock_b)
KLOCK_DECLARE(klock_convoy_mutex)
KLOCK_DECLARE(klock_convoy_spin)
KLOCK_DECLARE(klock_reentry_ticket)
KLOCK_DECLARE(klock_reentry_rw)
KLOCK_DECLARE(klock_wake_race_spin)

#pragma clang assume_nonnull end

#endif
#endif
