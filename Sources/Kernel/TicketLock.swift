// TicketLock: a fair FIFO spinlock. The word is next ticket << 32 | now serving
// (SMPTOP_LOCK_TICKET); an lcpu takes a ticket with one atomic add and spins until it is
// served. Same holder, waiter and misuse bookkeeping as SpinLock; preemption is off while
// held and, for an IRQ-save lock, interrupts too. An interrupt handler whose lcpu already
// holds or waits for the lock is refused (misuse_irq_unsafe) instead of taking a ticket.

#if SMP_GUEST
  import KernelSupport

  /// A ticket lock over a klock object.
  struct TicketLock {
    let k: UnsafeMutablePointer<klock>

    init(_ k: UnsafeMutablePointer<klock>) { self.k = k }

    /// Takes the lock; false when refused as recursion or irq-unsafe re-entry.
    @inline(never) @discardableResult
    func lock() -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS) ? lockTraced(site: site) : lockUntraced(site: site)
    }

    /// `lock` without trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func lockUntraced(site: UInt64) -> Bool { lock(site: site, traced: false) }

    /// `lock` with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func lockTraced(site: UInt64) -> Bool { lock(site: site, traced: true) }

    /// The body of `lock`; `traced`: write its trace records.
    @inline(__always)
    private func lock(site: UInt64, traced: Bool) -> Bool {
      let irqOn = cpu_irqs_enabled()
      cpu_cli()
      Sched.preemptDisable()
      let save = LockCore.has(k, SMPTOP_LOCKF_IRQSAVE)
      LockCore.meta(k)
      // Held or awaited by this lcpu already: a handler's ticket would come after the one
      // of the thread it interrupted, which cannot be served while the handler spins.
      if LockCore.heldHere(k) || LockCore.waitsHere(k) {
        LockCore.refuseReentry(k)
        LockCore.unmeta(k)
        Sched.preemptEnable()
        if irqOn { cpu_sti() }
        return false
      }
      let old = kticket_take(&k.pointee.word)
      let mine = UInt32(truncatingIfNeeded: old >> 32)
      var since: UInt64 = 0
      if UInt32(truncatingIfNeeded: old) != mine {
        since = rdtsc()
        LockCore.addWaiter(k, since: since, traced: traced)
        LockCore.unmeta(k)
        Sched.spinning(true, lock: abi_addr(k))
        if irqOn && !save { cpu_sti() }
        while kticket_serving(&k.pointee.word) != mine { cpu_pause() }
        cpu_cli()
        Sched.spinning(false, lock: 0)
        LockCore.meta(k)
        if let i = LockCore.findSelf(k) { LockCore.removeWaiterAt(k, i) }
      }
      LockCore.noteContext(k, heldWithIRQsOn: irqOn && !save)
      let now = rdtsc()
      LockCore.acquired(
        k, lcpu: LCPU.currentIndex, thread: Sched.contextID, site: site, now: now, at: now, since: since,
        traced: traced)
      k.pointee.reserved = irqOn ? 1 : 0
      LockCore.unmeta(k)
      if irqOn && !save { cpu_sti() }
      return true
    }

    /// Serves the next ticket; a release by a non-holder is counted and ignored.
    func unlock() { unlockUnlessTraced() }

    /// `unlock` without trace records; while lock tracing is on it hands over to
    /// `unlockTraced` first (LockCore, "Tracing").
    @inline(never)
    private func unlockUnlessTraced() {
      if Trace.on(SMPTOP_TRACE_LOCKS) { return unlockTraced() }
      unlock(traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func unlockTraced() { unlock(traced: true) }

    /// The body of `unlock`; `traced`: write its trace records.
    @inline(__always)
    private func unlock(traced: Bool) {
      let irqNow = cpu_irqs_enabled()
      cpu_cli()
      LockCore.meta(k)
      let r = k.pointee.rec
      if r.pointee.holder_lcpu != LCPU.currentIndex || r.pointee.holder_thread != Sched.contextID {
        r.pointee.misuse_bad_unlock &+= 1
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      let restore = LockCore.has(k, SMPTOP_LOCKF_IRQSAVE) ? k.pointee.reserved != 0 : irqNow
      let now = rdtsc()
      let site = r.pointee.acquire_site
      let hold = LockCore.released(k, now: now, from: r.pointee.acquired_tsc)
      LockCore.traceReleased(k, at: now, hold: hold, site: site, traced: traced)
      kticket_release(&k.pointee.word)
      LockCore.publishWord(k)
      LockCore.unmeta(k)
      Sched.preemptEnable()
      if restore { cpu_sti() }
    }
  }
#endif
