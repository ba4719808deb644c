// SpinLock: a test-and-test-and-set lock, observable through its smptop_lock
// record. The word holds the holder (lcpu index + 1, 0 = free). Holding it disables
// preemption; an IRQ-save lock (SMPTOP_LOCKF_IRQSAVE, e.g. the console) also keeps
// interrupts off while held, so an interrupt handler on the same lcpu can never spin on
// a lock its own lcpu holds. A plain lock held with interrupts on and also taken by an
// interrupt handler is the irq-unsafe misuse: counted, and the handler's attempt on its
// own lcpu's lock fails instead of deadlocking. Spinning lcpus are listed as waiters.

#if SMP_GUEST
  import KernelSupport

  /// A spinlock over a klock object (static ones in sync_data.c, or LockCore.makeDynamic).
  struct SpinLock {
    let k: UnsafeMutablePointer<klock>

    init(_ k: UnsafeMutablePointer<klock>) { self.k = k }

    var irqsave: Bool { LockCore.has(k, SMPTOP_LOCKF_IRQSAVE) }

    /// Takes the lock; false (nothing held) when refused as recursion or irq-unsafe re-entry.
    @inline(never) @discardableResult
    func lock() -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS)
        ? lockTraced(site: site, tryOnly: false) : lockUntraced(site: site, tryOnly: false)
    }

    /// One attempt; false if the lock is busy (counted in trylock_failures).
    @inline(never)
    func tryLock() -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS)
        ? tryLockTraced(site: site) : lockUntraced(site: site, tryOnly: true)
    }

    /// `lock` or `tryLock` without trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func lockUntraced(site: UInt64, tryOnly: Bool) -> Bool {
      lock(site: site, tryOnly: tryOnly, traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func lockTraced(site: UInt64, tryOnly: Bool) -> Bool {
      lock(site: site, tryOnly: tryOnly, traced: true)
    }

    /// `tryLock` with trace records: its own function, so that `lock` and `tryLock` differ in
    /// more than a constant and are not merged into one function behind a thunk.
    @inline(never)
    private func tryLockTraced(site: UInt64) -> Bool { lockTraced(site: site, tryOnly: true) }

    /// The body of `lock`; `traced`: write its trace records.
    @inline(__always)
    private func lock(site: UInt64, tryOnly: Bool, traced: Bool) -> Bool {
      let irqOn = cpu_irqs_enabled()
      cpu_cli()
      Sched.preemptDisable()
      let me = UInt64(LCPU.currentIndex) &+ 1
      let save = irqsave
      if kword_load_relaxed(&k.pointee.word) == me {
        LockCore.meta(k)
        LockCore.refuseReentry(k)
        LockCore.unmeta(k)
        return fail(irqOn)
      }
      var since: UInt64 = 0
      if !kword_cas(&k.pointee.word, 0, me) {
        if tryOnly {
          LockCore.meta(k)
          k.pointee.rec.pointee.trylock_failures &+= 1
          LockCore.unmeta(k)
          return fail(irqOn)
        }
        since = rdtsc()
        LockCore.meta(k)
        LockCore.addWaiter(k, since: since, traced: traced)
        LockCore.unmeta(k)
        Sched.spinning(true, lock: abi_addr(k))
        if irqOn && !save { cpu_sti() }
        while true {
          while kword_load_relaxed(&k.pointee.word) != 0 { cpu_pause() }
          cpu_cli()
          if kword_cas(&k.pointee.word, 0, me) { break }
          if irqOn && !save { cpu_sti() }
        }
        Sched.spinning(false, lock: 0)
      }
      LockCore.meta(k)
      if since != 0, let i = LockCore.findSelf(k) { LockCore.removeWaiterAt(k, i) }
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

    private func fail(_ irqOn: Bool) -> Bool {
      Sched.preemptEnable()
      if irqOn { cpu_sti() }
      return false
    }

    /// Releases the lock; a release by a non-holder is counted and ignored.
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
      let me = UInt64(LCPU.currentIndex) &+ 1
      LockCore.meta(k)
      if kword_load_relaxed(&k.pointee.word) != me {
        k.pointee.rec.pointee.misuse_bad_unlock &+= 1
        LockCore.unmeta(k)
        if irqNow { cpu_sti() }
        return
      }
      let restore = irqsave ? k.pointee.reserved != 0 : irqNow
      let now = rdtsc()
      let site = k.pointee.rec.pointee.acquire_site
      let hold = LockCore.released(k, now: now, from: k.pointee.rec.pointee.acquired_tsc)
      LockCore.traceReleased(k, at: now, hold: hold, site: site, traced: traced)
      kword_store(&k.pointee.word, 0)
      LockCore.publishWord(k)
      LockCore.unmeta(k)
      Sched.preemptEnable()
      if restore { cpu_sti() }
    }

    /// Runs `body` with the lock held (skips it if the lock refused a misuse).
    func withLock<R>(_ body: () -> R) -> R? {
      guard lock() else { return nil }
      let result = body()
      unlock()
      return result
    }

    /// Whether the lcpu running this code holds the lock.
    var isHeldByCurrentLCPU: Bool {
      kword_load_relaxed(&k.pointee.word) == UInt64(LCPU.currentIndex) &+ 1
    }

    /// Frees a lock held by this lcpu without unlocking properly: only for the panic path,
    /// which may have interrupted its own lcpu in the middle of the critical section. The
    /// record guard is freed only when this lcpu holds it (another lcpu may be updating the
    /// record right now); a record update this lcpu left open is closed.
    func breakIfHeldByCurrentLCPU() {
      let me = UInt64(LCPU.currentIndex) &+ 1
      if kword_load_relaxed(&k.pointee.meta) == me {
        let r = k.pointee.rec
        if r.pointee.seq & 1 != 0 { abi_seq_end(&r.pointee.seq) }
        _ = kmeta_break_if_owner(&k.pointee.meta, me)
      }
      guard isHeldByCurrentLCPU else { return }
      kword_store(&k.pointee.word, 0)
      Sched.preemptEnable()
    }
  }
#endif
