/*
 * Statically allocated state of the synchronization primitives and the scheduler
 * (sync_support.h): static lock objects with their records in the `smptop_locks` section
 * (the LOCK table), the thread pool and its records (the THREAD table), per-lcpu run and
 * timer queues (the TIMERQ table) and the workload record (the WORKLOAD table).
 */
#ifdef SMP_GUEST
#include "KernelSupport.h"
#include "sync_support.h"

/*
 * A static lock: the object (in .data, with its name, kind and flags) and its record in
 * section smptop_locks. The record is filled at boot by klock_static_init, not by the
 * loader: lld places the orphan section after __load_end (kernel.ld), where the multiboot
 * loader zero-fills instead of copying, so the records start as zeros either way.
 */
#define KLOCK_DEFINE(sym, nm, knd, flg)                                                     \
  __attribute__((section("smptop_locks"), used, aligned(8))) struct smptop_lock sym##_rec;  \
  struct klock sym = {.rec = &sym##_rec, .init_name = nm, .init_kind = knd, .init_flags = flg};

KLOCK_DEFINE(klock_console, "console", SMPTOP_LOCK_SPIN, SMPTOP_LOCKF_IRQSAVE)
KLOCK_DEFINE(klock_dynamic_registry, "dynamic-locks", SMPTOP_LOCK_SPIN, SMPTOP_LOCKF_IRQSAVE)
KLOCK_DEFINE(klock_work_spin, "work.spin", SMPTOP_LOCK_SPIN, 0)
KLOCK_DEFINE(klock_work_ticket, "work.ticket", SMPTOP_LOCK_TICKET, SMPTOP_LOCKF_IRQSAVE)
KLOCK_DEFINE(klock_work_rw, "work.rw", SMPTOP_LOCK_RW, 0)
KLOCK_DEFINE(klock_work_mutex, "work.mutex", SMPTOP_LOCK_MUTEX, 0)
KLOCK_DEFINE(klock_work_rmutex, "work.rmutex", SMPTOP_LOCK_MUTEX, SMPTOP_LOCKF_RECURSIVE)
KLOCK_DEFINE(klock_work_slots, "work.slots", SMPTOP_LOCK_SEMAPHORE, 0)
KLOCK_DEFINE(klock_isr_misuse, "isr-misuse", SMPTOP_LOCK_SPIN, 0)
KLOCK_DEFINE(klock_deadlock_a, "deadlock.A", SMPTOP_LOCK_MUTEX, 0)
KLOCK_DEFINE(klock_deadlock_b, "deadlock.B", SMPTOP_LOCK_MUTEX, 0)
KLOCK_DEFINE(klock_convoy_mutex, "convoy.mutex", SMPTOP_LOCK_MUTEX, 0)
KLOCK_DEFINE(klock_convoy_spin, "convoy.spin", SMPTOP_LOCK_SPIN, 0)
KLOCK_DEFINE(klock_reentry_ticket, "reentry.ticket", SMPTOP_LOCK_TICKET, 0)
KLOCK_DEFINE(klock_reentry_rw, "reentry.rw", SMPTOP_LOCK_RW, 0)
KLOCK_DEFINE(klock_wake_race_spin, "wake-race.spin", SMPTOP_LOCK_SPIN, 0)

/** Every static lock, for klock_static_init. */
static struct klock *const klock_static_list[] = {
    &klock_console, &klock_dynamic_registry, &klock_work_spin, &klock_work_ticket, &klock_work_rw,
    &klock_work_mutex, &klock_work_rmutex, &klock_work_slots, &klock_isr_misuse, &klock_deadlock_a,
    &klock_deadlock_b, &klock_convoy_mutex, &klock_convoy_spin, &klock_reentry_ticket,
    &klock_reentry_rw, &klock_wake_race_spin,
};

void klock_static_init(void) {
  for (unsigned i = 0; i < sizeof(klock_static_list) / sizeof(klock_static_list[0]); i++) {
    struct klock *k = klock_static_list[i];
    struct smptop_lock *r = k->rec;
    unsigned j = 0;
    for (; k->init_name[j] && j < SMPTOP_NAME_BYTES - 1; j++) r->name[j] = k->init_name[j];
    r->name[j] = 0;
    r->kind = k->init_kind;
    r->flags = k->init_flags;
    r->address = (uint64_t)(uintptr_t)k;
    r->holder_lcpu = SMPTOP_NO_LCPU;
    for (j = 0; j < SMPTOP_LOCK_WAITERS; j++) r->waiters[j].lcpu = SMPTOP_NO_LCPU;
  }
}

/** Locks created at run time (Locks.swift `makeDynamic`), linked from smptop_root.dynamic_locks. */
struct klock klock_dynamic_pool[KLOCK_DYNAMIC_MAX];
__attribute__((aligned(64))) struct smptop_lock smptop_dynamic_lock_records[KLOCK_DYNAMIC_MAX];

/** The thread pool: private part, records (the THREAD table) and stacks. */
struct kthread kthreads[KTHREAD_MAX];
__attribute__((used, aligned(64))) struct smptop_thread smptop_threads[KTHREAD_MAX];
__attribute__((aligned(4096))) uint8_t kthread_stacks[KTHREAD_MAX][KTHREAD_STACK];

/** Per-lcpu scheduler state and timer-queue records (the TIMERQ table). */
__attribute__((aligned(64))) struct ksched kscheds[SMPTOP_MAX_LCPUS];
__attribute__((used, aligned(64))) struct smptop_timerq smptop_timerqs[SMPTOP_MAX_LCPUS];

/** The workload record (the WORKLOAD table) and its shared counters. */
__attribute__((used, aligned(64))) struct smptop_workload smptop_workload_record;
__attribute__((aligned(64))) uint64_t work_counters[8];
/** The workload scenarios' per-lcpu hand-shake words (sync_support.h, scenario_slot). */
__attribute__((aligned(64))) uint64_t scenario_slots[SMPTOP_MAX_LCPUS][4];

#endif
