// RWLock: a reader-writer spinlock with writer preference. The word is
// 1 << 63 while a writer holds it, plus the number of readers inside. A writer announces
// itself in pending_writers first; readers do not enter while a writer is pending, so
// writers cannot starve. The record's holder is the writer (flag WRITER) or the last
// reader to enter; `readers` counts readers inside; hold time runs from the first reader
// in to the last reader out. Preemption is off while held. An lcpu opens at most one read
// section at a time: a nested reader, and an interrupt handler whose lcpu reads or waits,
// are refused and counted (recursion / misuse_irq_unsafe) instead of deadlocking behind a
// pending writer.

#if SMP_GUEST
  import KernelSupport

  /// A reader-writer lock over a klock object.
  struct RWLock {
    let k: UnsafeMutablePointer<klock>
    static let writer: UInt64 = 1 << 63

    init(_ k: UnsafeMutablePointer<klock>) { self.k = k }

    var save: Bool { LockCore.has(k, SMPTOP_LOCKF_IRQSAVE) }

    /// Enters as a reader; false when refused (this lcpu holds it as writer).
    @inline(never) @discardableResult
    func readLock() -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS)
        ? enterTraced(site: site, write: false) : enterUntraced(site: site, write: false)
    }

    /// Enters as the writer; false when refused (recursion / irq re-entry).
    @inline(never) @discardableResult
    func writeLock() -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS)
        ? writeLockTraced(site: site) : enterUntraced(site: site, write: true)
    }

    /// Enters without trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func enterUntraced(site: UInt64, write: Bool) -> Bool {
      enter(site: site, write: write, traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func enterTraced(site: UInt64, write: Bool) -> Bool {
      enter(site: site, write: write, traced: true)
    }

    /// `writeLock` with trace records: its own function, so that `readLock` and `writeLock`
    /// differ in more than a constant and are not merged into one function behind a thunk.
    @inline(never)
    private func writeLockTraced(site: UInt64) -> Bool { enterTraced(site: site, write: true) }

    /// The body of `enter`; `traced`: write its trace records.
    @inline(__always)
    private func enter(site: UInt64, write: Bool, traced: Bool) -> Bool {
      let irqOn = cpu_irqs_enabled()
      cpu_cli()
      Sched.preemptDisable()
      LockCore.meta(k)
      // Refused: this lcpu holds it as writer, has a read section open (a pending writer
      // would keep a nested reader out, and a nested writer waits for that reader forever),
      // or waits for it (a handler would wait behind the thread it interrupted).
      let writerHere = kword_load_relaxed(&k.pointee.word) & RWLock.writer != 0 && LockCore.heldHere(k)
      if writerHere || readsHere || LockCore.waitsHere(k) {
        LockCore.refuseReentry(k)
        LockCore.unmeta(k)
        Sched.preemptEnable()
        if irqOn { cpu_sti() }
        return false
      }
      if write { k.pointee.pending_writers &+= 1 }
      var since: UInt64 = 0
      while !attempt(write) {
        if since == 0 {
          since = rdtsc()
          LockCore.addWaiter(k, since: since, traced: traced)
          LockCore.unmeta(k)
          Sched.spinning(true, lock: abi_addr(k))
        } else {
          LockCore.unmeta(k)
        }
        if irqOn && !save { cpu_sti() }
        var spins = 0
        while !ready(write) && spins < 1_000_000 { cpu_pause(); spins += 1 }
        cpu_cli()
        LockCore.meta(k)
      }
      if write {
        k.pointee.pending_writers &-= 1
        LockCore.setFlag(k, SMPTOP_LOCKF_WRITER, true)
      }
      if since != 0 {
        if let i = LockCore.findSelf(k) { LockCore.removeWaiterAt(k, i) }
      }
      let word = kword_load_relaxed(&k.pointee.word)
      let readers = UInt32(truncatingIfNeeded: word & ~RWLock.writer)
      let now = rdtsc()
      if !write && readers == 1 { k.pointee.hold_start = now }
      LockCore.noteContext(k, heldWithIRQsOn: irqOn && !save)
      LockCore.acquired(
        k, lcpu: LCPU.currentIndex, thread: Sched.contextID, site: site,
        now: write ? now : k.pointee.hold_start, at: now,
        since: since, readers: readers, traced: traced)
      if since != 0 { Sched.spinning(false, lock: 0) }
      if save && irqOn { k.pointee.irq_saved |= 1 << UInt64(LCPU.currentIndex) }
      if !write { k.pointee.read_lcpus |= 1 << UInt64(LCPU.currentIndex) }
      LockCore.unmeta(k)
      if irqOn && !save { cpu_sti() }
      return true
    }

    /// Whether this lcpu has a read section of the lock open (guard held).
    private var readsHere: Bool { k.pointee.read_lcpus & (1 << UInt64(LCPU.currentIndex)) != 0 }

    /// Whether an attempt could succeed now (read without the guard).
    private func ready(_ write: Bool) -> Bool {
      let w = kword_load_relaxed(&k.pointee.word)
      if write { return w == 0 }
      return w & RWLock.writer == 0 && kword_load_relaxed(&k.pointee.pending_writers) == 0
    }

    /// One attempt under the guard.
    private func attempt(_ write: Bool) -> Bool {
      let w = kword_load_relaxed(&k.pointee.word)
      if write { return w == 0 && kword_cas(&k.pointee.word, 0, RWLock.writer) }
      guard w & RWLock.writer == 0, k.pointee.pending_writers == 0 else { return false }
      return kword_cas(&k.pointee.word, w, w &+ 1)
    }

    /// Whether to enable interrupts after a release (guard held): an irq-save lock restores
    /// what this lcpu had before its lock call (one saved bit per lcpu, so an lcpu must not
    /// nest read sections of one irq-save lock); a plain one keeps the current state.
    private func takeSavedIRQ(_ irqNow: Bool) -> Bool {
      guard save else { return irqNow }
      let bit: UInt64 = 1 << UInt64(LCPU.currentIndex)
      let was = k.pointee.irq_saved & bit != 0
      k.pointee.irq_saved &= ~bit
      return was
    }

    /// Leaves as a reader; a reader-less release is counted as a bad unlock.
    func readUnlock() { readUnlockUnlessTraced() }

    /// `readUnlock` without trace records; while lock tracing is on it hands over to
    /// `readUnlockTraced` first (LockCore, "Tracing").
    @inline(never)
    private func readUnlockUnlessTraced() {
      if Trace.on(SMPTOP_TRACE_LOCKS) { return readUnlockTraced() }
      readUnlock(traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func readUnlockTraced() { readUnlock(traced: true) }

    /// The body of `readUnlock`; `traced`: write its trace records.
    @inline(__always)
    private func readUnlock(traced: Bool) {
      let irqNow = cpu_irqs_enabled()
      cpu_cli()
      LockCore.meta(k)
      let w = kword_load_relaxed(&k.pointee.word)
      if w & RWLock.writer != 0 || w == 0 {
        k.pointee.rec.pointee.misuse_bad_unlock &+= 1
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      _ = kword_fetch_sub(&k.pointee.word, 1)
      k.pointee.read_lcpus &= ~(1 << UInt64(LCPU.currentIndex))
      let r = k.pointee.rec
      // The release's trace record: its time, hold and site (the last reader's; 0 for the
      // others, whose hold is not known).
      var now: UInt64 = 0
      var hold: UInt64 = 0
      var site: UInt64 = 0
      if w - 1 == 0 {
        now = rdtsc()
        site = r.pointee.acquire_site
        hold = LockCore.released(k, now: now, from: k.pointee.hold_start)
      } else {
        if traced { now = rdtsc() }
        abi_seq_begin(&r.pointee.seq)
        r.pointee.readers = UInt32(truncatingIfNeeded: w - 1)
        abi_seq_end(&r.pointee.seq)
      }
      LockCore.traceReleased(k, at: now, hold: hold, site: site, traced: traced)
      LockCore.publishWord(k)
      let restore = takeSavedIRQ(irqNow)
      LockCore.unmeta(k)
      Sched.preemptEnable()
      if restore { cpu_sti() }
    }

    /// Leaves as the writer; a release by a non-holder is counted and ignored.
    func writeUnlock() { writeUnlockUnlessTraced() }

    /// `writeUnlock` without trace records; while lock tracing is on it hands over to
    /// `writeUnlockTraced` first (LockCore, "Tracing").
    @inline(never)
    private func writeUnlockUnlessTraced() {
      if Trace.on(SMPTOP_TRACE_LOCKS) { return writeUnlockTraced() }
      writeUnlock(traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func writeUnlockTraced() { writeUnlock(traced: true) }

    /// The body of `writeUnlock`; `traced`: write its trace records.
    @inline(__always)
    private func writeUnlock(traced: Bool) {
      let irqNow = cpu_irqs_enabled()
      cpu_cli()
      LockCore.meta(k)
      let r = k.pointee.rec
      if kword_load_relaxed(&k.pointee.word) != RWLock.writer || !LockCore.heldHere(k) {
        r.pointee.misuse_bad_unlock &+= 1
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      LockCore.setFlag(k, SMPTOP_LOCKF_WRITER, false)
      let now = rdtsc()
      let site = r.pointee.acquire_site
      let hold = LockCore.released(k, now: now, from: r.pointee.acquired_tsc)
      LockCore.traceReleased(k, at: now, hold: hold, site: site, traced: traced)
      kword_store(&k.pointee.word, 0)
      LockCore.publishWord(k)
      let restore = takeSavedIRQ(irqNow)
      LockCore.unmeta(k)
      Sched.preemptEnable()
      if restore { cpu_sti() }
    }
  }
#endif
