// LockCore: the bookkeeping every lock kind shares: its smptop_lock record
// (holder, waiters, statistics) and misuse detection. Each lock object (struct klock,
// sync_support.h) carries an internal guard `meta`, taken with interrupts off around every
// record update, so the record has one writer at a time; the holder and waiter fields
// are written under the record's seq. Waiters are kept privately in arrival order (for a
// mutex or semaphore that list is the wait queue); the record shows the first 8.
//
// Misuse, counted in the record and never ignored:
//  - irq-unsafe (spin, ticket, rw): taken in interrupt context (SEEN_IN_IRQ) and also held
//    with interrupts enabled elsewhere (SEEN_IRQS_ON); misuse_irq_unsafe counts every
//    interrupt-context acquisition (or attempt) once both were seen, plus the one that
//    first completed the pair. An interrupt finding its own lcpu holding a spin, ticket
//    or rw lock counts there too and fails instead of deadlocking, and so does one finding
//    its lcpu waiting for a ticket or rw lock (it would queue behind the thread it
//    interrupted) or inside an rw read section (a pending writer would hold it off for good).
//  - sleep-in-irq: a mutex or semaphore taken in interrupt context (fails).
//  - recursion: a non-recursive lock re-taken by its holder (fails).
//  - bad unlock: released by a non-holder (ignored after counting).
//
// Tracing (Trace.swift, class LOCKS): every lock operation reads the control word once, at
// its start, and runs one of two copies of its body, both out of line: without trace records
// (the same code and saved registers as in a guest built without trace points) or with them
// (records written by the inlined Trace.write). While lock tracing is off the choice costs one
// instruction that loads and tests the word and one branch not taken: an acquisition makes it
// in its entry (lock(), tryLock(), ..., which read their caller's address in a frame of their
// own in either guest), a release at the top of its copy without records, which hands over to
// the traced copy while tracing is on, so its callers are the no-trace guest's code. The
// records take the TSC the bookkeeping reads anyway. An acquisition's record is written
// inside the record's seq, so a consistent record has every `contended` count traced. A
// release's record is written before the lock is free (for a mutex, before it is handed
// over), so a reader that sees the next holder's acquisition also sees the release (written
// after the unlock, a drain could catch the next acquisition without it: TraceConvoyTests
// saw that once).

#if SMP_GUEST
  import KernelSupport

  /// Record bookkeeping shared by the lock kinds. Callers hold `k.meta` with interrupts off.
  enum LockCore {
    typealias Lock = UnsafeMutablePointer<klock>

    static let noLCPU = UInt32(SMPTOP_NO_LCPU)

    static func meta(_ k: Lock) { kmeta_lock(&k.pointee.meta, UInt64(LCPU.currentIndex) &+ 1) }
    static func unmeta(_ k: Lock) { kmeta_unlock(&k.pointee.meta) }

    static func has(_ k: Lock, _ f: smptop_lock_flag) -> Bool {
      k.pointee.rec.pointee.flags & f.rawValue != 0
    }

    static func setFlag(_ k: Lock, _ f: smptop_lock_flag, _ on: Bool) {
      let r = k.pointee.rec
      if on { r.pointee.flags |= f.rawValue } else { r.pointee.flags &= ~f.rawValue }
    }

    /// Notes the context of an acquisition and counts the irq-unsafe pattern: every
    /// acquisition in interrupt context of a lock that is also held with interrupts on
    /// elsewhere, and the thread-side acquisition that first completes the pair.
    /// `heldWithIRQsOn`: the lock will be held with interrupts enabled. `count` is false for
    /// the sleeping kinds, whose interrupt-context use counts as misuse_sleep_in_irq instead.
    static func noteContext(_ k: Lock, heldWithIRQsOn: Bool, count: Bool = true) {
      let r = k.pointee.rec
      if Sched.inInterrupt {
        if count && has(k, SMPTOP_LOCKF_SEEN_IRQS_ON) { r.pointee.misuse_irq_unsafe &+= 1 }
        setFlag(k, SMPTOP_LOCKF_SEEN_IN_IRQ, true)
      } else if heldWithIRQsOn && !has(k, SMPTOP_LOCKF_SEEN_IRQS_ON) {
        if count && has(k, SMPTOP_LOCKF_SEEN_IN_IRQ) { r.pointee.misuse_irq_unsafe &+= 1 }
        setFlag(k, SMPTOP_LOCKF_SEEN_IRQS_ON, true)
      }
    }

    /// Copies the first waiters into the record (seq open).
    static func publishWaiters(_ k: Lock) {
      let r = k.pointee.rec
      let n = k.pointee.nwaiters
      let w = klock_waiters(k)
      r.pointee.waiter_count = n
      for i in 0..<UInt32(SMPTOP_LOCK_WAITERS) {
        if i < n {
          abi_lock_set_waiter(r, i, w[Int(i)].lcpu, w[Int(i)].thread, w[Int(i)].since_tsc)
        } else {
          abi_lock_set_waiter(r, i, noLCPU, 0, 0)
        }
      }
    }

    /// Appends a waiter (this lcpu / current thread) and publishes; `traced`: write its
    /// contend record (the lock operation read the control word once, at its start).
    static func addWaiter(_ k: Lock, since: UInt64, site: UInt64 = 0, traced: Bool) {
      let n = Int(k.pointee.nwaiters)
      if n < Int(KLOCK_MAX_WAITERS) {
        klock_waiters(k)[n] = klock_waiter(
          lcpu: LCPU.currentIndex, reserved: 0, thread: Sched.contextID, since_tsc: since, site: site)
        k.pointee.nwaiters = UInt32(n + 1)
      }
      let r = k.pointee.rec
      abi_seq_begin(&r.pointee.seq)
      publishWaiters(k)
      abi_seq_end(&r.pointee.seq)
      if traced {
        let me = LCPU.currentIndex
        Trace.write(
          SMPTOP_TRACE_LOCK_CONTEND, tsc: since, ring: me, lcpu: me, object: abi_addr(k),
          arg: Sched.contextID,
          arg2: UInt64(r.pointee.kind), site: site)
      }
    }

    /// Removes waiter number `i` (no publish; the caller publishes under the seq).
    static func removeWaiterAt(_ k: Lock, _ i: Int) {
      let n = Int(k.pointee.nwaiters)
      guard i < n else { return }
      let w = klock_waiters(k)
      var j = i
      while j + 1 < n { w[j] = w[j + 1]; j += 1 }
      k.pointee.nwaiters = UInt32(n - 1)
    }

    /// Index of this lcpu's / current thread's waiter entry.
    static func findSelf(_ k: Lock) -> Int? {
      let w = klock_waiters(k)
      let lcpu = LCPU.currentIndex
      let tid = Sched.contextID
      for i in 0..<Int(k.pointee.nwaiters) where w[i].lcpu == lcpu && w[i].thread == tid { return i }
      return nil
    }

    /// Records an acquisition by (lcpu, thread); `since` = when it started waiting (0 = no wait).
    /// `now` is the record's acquired_tsc, `at` the time of this acquisition (its trace record's
    /// TSC; they differ for a reader joining an rw lock's open read section); `traced`: write
    /// its trace record.
    @inline(__always)
    static func acquired(
      _ k: Lock, lcpu: UInt32, thread: UInt64, site: UInt64, now: UInt64, at: UInt64, since: UInt64,
      readers: UInt32 = 0, traced: Bool
    ) {
      let r = k.pointee.rec
      abi_seq_begin(&r.pointee.seq)
      r.pointee.state_word = kword_load_relaxed(&k.pointee.word)
      r.pointee.holder_lcpu = lcpu
      r.pointee.holder_thread = thread
      r.pointee.readers = readers
      r.pointee.acquire_site = site
      r.pointee.acquired_tsc = now
      r.pointee.pending_writers = UInt32(truncatingIfNeeded: k.pointee.pending_writers)
      publishWaiters(k)
      // The counters and the trace record are written inside the seq as well: a stopped
      // guest whose lock records are all consistent has every `contended` count traced.
      r.pointee.acquisitions &+= 1
      let wait = since != 0 ? now &- since : 0
      if since != 0 {
        r.pointee.contended &+= 1
        r.pointee.wait_total_tsc &+= wait
        if wait > r.pointee.wait_max_tsc { r.pointee.wait_max_tsc = wait }
      }
      if traced {
        Trace.write(
          SMPTOP_TRACE_LOCK_ACQUIRED, tsc: at, ring: LCPU.currentIndex,
          lcpu: lcpu == noLCPU ? LCPU.currentIndex : lcpu,
          object: abi_addr(k), arg: thread, arg2: since != 0 ? max(wait, 1) : 0, site: site)
      }
      abi_seq_end(&r.pointee.seq)
    }

    /// Records a release: hold time since `from`; holder cleared. Returns the hold time for
    /// the release's trace record, which the caller writes with `traceReleased` before it
    /// frees or hands over the lock.
    @discardableResult
    static func released(_ k: Lock, now: UInt64, from: UInt64) -> UInt64 {
      let r = k.pointee.rec
      let hold = now &- from
      r.pointee.hold_total_tsc &+= hold
      if hold > r.pointee.hold_max_tsc { r.pointee.hold_max_tsc = hold }
      abi_seq_begin(&r.pointee.seq)
      r.pointee.holder_lcpu = noLCPU
      r.pointee.holder_thread = 0
      r.pointee.readers = 0
      r.pointee.acquired_tsc = 0
      r.pointee.pending_writers = UInt32(truncatingIfNeeded: k.pointee.pending_writers)
      publishWaiters(k)
      abi_seq_end(&r.pointee.seq)
      return hold
    }

    /// Writes a release's trace record (interrupts off, lock not yet freed): `at` is the TSC
    /// the release read, `hold` and `site` what `released` saw (0 = unknown). The caller writes
    /// no other record of this lcpu between reading `at` and this call.
    @inline(__always)
    static func traceReleased(_ k: Lock, at: UInt64, hold: UInt64, site: UInt64, traced: Bool) {
      if traced {
        let me = LCPU.currentIndex
        Trace.write(
          SMPTOP_TRACE_LOCK_RELEASED, tsc: at, ring: me, lcpu: me, object: abi_addr(k), arg: Sched.contextID,
          arg2: hold, site: site)
      }
    }

    /// Publishes the raw word (after a release changed it).
    static func publishWord(_ k: Lock) {
      let r = k.pointee.rec
      abi_seq_begin(&r.pointee.seq)
      r.pointee.state_word = kword_load_relaxed(&k.pointee.word)
      abi_seq_end(&r.pointee.seq)
    }

    /// Whether the record says this lcpu (in this context) holds the lock.
    static func heldHere(_ k: Lock) -> Bool {
      let r = k.pointee.rec
      return r.pointee.holder_lcpu == LCPU.currentIndex
        && (Sched.inInterrupt || r.pointee.holder_thread == Sched.contextID)
    }

    /// Whether this lcpu is listed as waiting for the lock (a thread or handler spinning here).
    /// An interrupt handler that queued behind its own lcpu's spinning thread would never be
    /// served: the thread cannot go on until the handler returns.
    static func waitsHere(_ k: Lock) -> Bool {
      let w = klock_waiters(k)
      let lcpu = LCPU.currentIndex
      for i in 0..<Int(k.pointee.nwaiters) where w[i].lcpu == lcpu { return true }
      return false
    }

    /// A refused re-entry: an interrupt on the holder's lcpu (irq-unsafe) or plain recursion.
    static func refuseReentry(_ k: Lock) {
      let r = k.pointee.rec
      if Sched.inInterrupt {
        noteContext(k, heldWithIRQsOn: false)
        r.pointee.misuse_irq_unsafe &+= 1
      } else {
        r.pointee.misuse_recursion &+= 1
      }
    }

    /// The entry check of a sleeping lock (mutex, semaphore), called with the record's meta
    /// lock held: interrupt context (counted as sleep-in-irq misuse) and code outside any
    /// thread cannot sleep, so the attempt is refused. Returns false with the meta lock released
    /// and the interrupt flag restored; true after noting the calling context.
    static func enterSleeping(_ k: Lock, irqOn: Bool) -> Bool {
      if Sched.inInterrupt || Sched.currentID == 0 {
        if Sched.inInterrupt {
          k.pointee.rec.pointee.misuse_sleep_in_irq &+= 1
          noteContext(k, heldWithIRQsOn: false, count: false)
        }
        unmeta(k)
        if irqOn { cpu_sti() }
        return false
      }
      noteContext(k, heldWithIRQsOn: irqOn, count: false)
      return true
    }

    /// Locks created at run time: from a pool, linked from smptop_root.dynamic_locks.
    nonisolated(unsafe) static var dynamicUsed: UInt32 = 0

    /// Dynamic locks published (from the pool or from storage the caller gave).
    nonisolated(unsafe) static var dynamicPublished: UInt32 = 0

    /// Creates a lock at run time; nil when the pool is exhausted. With `storage` (zeroed
    /// memory for the lock and its record) the pool is not used.
    static func makeDynamic(
      _ name: StaticString, suffix: UInt32? = nil, kind: smptop_lock_kind,
      flags: UInt32 = 0, initial: UInt64 = 0,
      storage: (UnsafeMutablePointer<klock>, UnsafeMutablePointer<smptop_lock>)? = nil
    ) -> Lock? {
      let registry = SpinLock(klock_dynamic_registry_ptr())
      guard registry.lock() else { return nil }
      defer { registry.unlock() }
      let k: UnsafeMutablePointer<klock>
      let r: UnsafeMutablePointer<smptop_lock>
      if let storage {
        (k, r) = storage
      } else {
        guard dynamicUsed < KLOCK_DYNAMIC_MAX else { return nil }
        k = klock_dynamic_at(dynamicUsed)
        r = klock_dynamic_record(dynamicUsed)
        dynamicUsed += 1
      }
      dynamicPublished += 1
      k.pointee.word = initial
      k.pointee.rec = r
      let n = klock_record_name(r)
      var c = 0
      name.withUTF8Buffer { b in
        for ch in b where c < Int(SMPTOP_NAME_BYTES) - 6 { n[c] = CChar(bitPattern: ch); c += 1 }
      }
      if let s = suffix { c = Sched.appendNumber(n, c, UInt64(s)) }
      n[c] = 0
      r.pointee.kind = kind.rawValue
      r.pointee.flags = flags | SMPTOP_LOCKF_DYNAMIC.rawValue
      r.pointee.address = abi_addr(k)
      r.pointee.holder_lcpu = noLCPU
      r.pointee.state_word = initial
      if kind == SMPTOP_LOCK_SEMAPHORE { r.pointee.readers = UInt32(truncatingIfNeeded: initial) }
      for w in 0..<UInt32(SMPTOP_LOCK_WAITERS) { abi_lock_set_waiter(r, w, noLCPU, 0, 0) }
      let root = Inspect.root
      r.pointee.next = root.pointee.dynamic_locks
      compiler_barrier()
      atomic_store_u64(&root.pointee.dynamic_locks, abi_addr(r))
      atomic_store_u64(&root.pointee.dynamic_lock_count, UInt64(dynamicPublished))
      return k
    }

  }
#endif
