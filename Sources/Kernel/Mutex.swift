// Mutex: a sleeping lock with an owner. The word is the owner's thread id
// (0 = free). A thread that finds it taken joins the lock's wait queue (the waiter list,
// FIFO), becomes BLOCKED_LOCK with blocked_on = the lock's address, and its lcpu runs
// something else; unlock hands the mutex straight to the first waiter and wakes it. A
// recursive mutex (SMPTOP_LOCKF_RECURSIVE) counts depth in `readers`; a non-recursive one
// refuses re-entry (misuse_recursion). Only threads may take it: in interrupt context it
// fails and counts misuse_sleep_in_irq.

#if SMP_GUEST
  import KernelSupport

  /// A sleeping mutex over a klock object.
  struct Mutex {
    let k: UnsafeMutablePointer<klock>

    init(_ k: UnsafeMutablePointer<klock>) { self.k = k }

    /// Takes the mutex, sleeping while another thread owns it; false when refused.
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
      let tid = Sched.currentID
      let r = k.pointee.rec
      LockCore.meta(k)
      guard LockCore.enterSleeping(k, irqOn: irqOn) else { return false }
      let owner = kword_load_relaxed(&k.pointee.word)
      if owner == tid {
        if LockCore.has(k, SMPTOP_LOCKF_RECURSIVE) {
          k.pointee.depth &+= 1
          abi_seq_begin(&r.pointee.seq)
          r.pointee.readers = UInt32(truncatingIfNeeded: k.pointee.depth)
          abi_seq_end(&r.pointee.seq)
          r.pointee.acquisitions &+= 1
          LockCore.unmeta(k)
          if irqOn { cpu_sti() }
          return true
        }
        r.pointee.misuse_recursion &+= 1
        LockCore.unmeta(k)
        if irqOn { cpu_sti() }
        return false
      }
      if owner == 0 {
        kword_store(&k.pointee.word, tid)
        k.pointee.depth = 1
        let now = rdtsc()
        LockCore.acquired(
          k, lcpu: LCPU.currentIndex, thread: tid, site: site, now: now, at: now, since: 0, readers: 1,
          traced: traced)
        LockCore.unmeta(k)
        if irqOn { cpu_sti() }
        return true
      }
      // Sleep until the owner hands it over.
      LockCore.addWaiter(k, since: rdtsc(), site: site, traced: traced)
      Sched.block(SMPTOP_THREAD_BLOCKED_LOCK, on: abi_addr(k))
      LockCore.unmeta(k)
      // Handed over once the word names this thread; leave only after the unlocker's wake-up
      // too, so it cannot arrive late and end a later, unrelated wait of this thread.
      while kword_load(&k.pointee.word) != tid || Sched.thread(tid).pointee.woken == 0 { Sched.schedule() }
      if irqOn { cpu_sti() }
      return true
    }

    /// Releases (one level of) the mutex; hands it to the first waiter.
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
      let tid = Sched.currentID
      let r = k.pointee.rec
      LockCore.meta(k)
      // An interrupt handler is never the owner, even when it interrupted the owning thread.
      if Sched.inInterrupt || tid == 0 || kword_load_relaxed(&k.pointee.word) != tid {
        r.pointee.misuse_bad_unlock &+= 1
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      if k.pointee.depth > 1 {
        k.pointee.depth &-= 1
        abi_seq_begin(&r.pointee.seq)
        r.pointee.readers = UInt32(truncatingIfNeeded: k.pointee.depth)
        abi_seq_end(&r.pointee.seq)
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      let now = rdtsc()
      let site = r.pointee.acquire_site
      let hold = LockCore.released(k, now: now, from: r.pointee.acquired_tsc)
      LockCore.traceReleased(k, at: now, hold: hold, site: site, traced: traced)
      var wake: UInt64 = 0
      if k.pointee.nwaiters > 0 {
        let w = klock_waiters(k)[0]
        LockCore.removeWaiterAt(k, 0)
        kword_store(&k.pointee.word, w.thread)
        k.pointee.depth = 1
        LockCore.acquired(
          k, lcpu: w.lcpu, thread: w.thread, site: w.site, now: now, at: now, since: w.since_tsc, readers: 1,
          traced: traced)
        wake = w.thread
      } else {
        kword_store(&k.pointee.word, 0)
        LockCore.publishWord(k)
      }
      LockCore.unmeta(k)
      if wake != 0 { Sched.wake(wake) }
      if irqNow { cpu_sti() }
    }
  }

#endif
