// Semaphore: a counting semaphore with a wait queue, observable through its
// smptop_lock record (kind SEMAPHORE: state_word and `readers` = the count).

#if SMP_GUEST
  import KernelSupport

  /// A counting semaphore over a klock object: the word is the count (also in `readers`).
  /// down() sleeps on the wait queue (BLOCKED_SEM) while the count is 0; up() hands a unit
  /// straight to the first waiter. A semaphore has no owner: holder_lcpu stays NO_LCPU and
  /// holder_thread 0 (so a wait-for walk never follows one); acquire_site / acquired_tsc are
  /// the latest down()'s. Not from interrupt context.
  struct Semaphore {
    let k: UnsafeMutablePointer<klock>

    init(_ k: UnsafeMutablePointer<klock>) { self.k = k }

    /// Sets the initial count (before use), under the guard and the record's seq.
    func setCount(_ n: UInt64) {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      LockCore.meta(k)
      kword_store(&k.pointee.word, n)
      let r = k.pointee.rec
      abi_seq_begin(&r.pointee.seq)
      r.pointee.state_word = n
      r.pointee.readers = UInt32(truncatingIfNeeded: n)
      abi_seq_end(&r.pointee.seq)
      LockCore.unmeta(k)
      if irqs { cpu_sti() }
    }

    /// Takes a unit, sleeping while there is none; false in interrupt context, or when
    /// `timeoutMicroseconds` (0 = none) passed first: the timeout is an entry in the thread's
    /// lcpu timer queue, and a timed-out down() counts in trylock_failures.
    @inline(never) @discardableResult
    func down(timeoutMicroseconds: UInt64 = 0) -> Bool {
      let site = caller_return_address()
      return Trace.on(SMPTOP_TRACE_LOCKS)
        ? downTraced(site: site, timeoutMicroseconds: timeoutMicroseconds)
        : downUntraced(site: site, timeoutMicroseconds: timeoutMicroseconds)
    }

    /// `down` without trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func downUntraced(site: UInt64, timeoutMicroseconds: UInt64) -> Bool {
      down(site: site, timeoutMicroseconds: timeoutMicroseconds, traced: false)
    }

    /// `down` with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func downTraced(site: UInt64, timeoutMicroseconds: UInt64) -> Bool {
      down(site: site, timeoutMicroseconds: timeoutMicroseconds, traced: true)
    }

    /// The body of `down`; `traced`: write its trace records.
    @inline(__always)
    private func down(site: UInt64, timeoutMicroseconds: UInt64, traced: Bool) -> Bool {
      let irqOn = cpu_irqs_enabled()
      cpu_cli()
      let tid = Sched.currentID
      let r = k.pointee.rec
      LockCore.meta(k)
      guard LockCore.enterSleeping(k, irqOn: irqOn) else { return false }
      let count = kword_load_relaxed(&k.pointee.word)
      if count > 0 {
        kword_store(&k.pointee.word, count - 1)
        let now = rdtsc()
        LockCore.acquired(
          k, lcpu: LockCore.noLCPU, thread: 0, site: site, now: now, at: now, since: 0,
          readers: UInt32(truncatingIfNeeded: count - 1), traced: traced)
        LockCore.unmeta(k)
        if irqOn { cpu_sti() }
        return true
      }
      let now = rdtsc()
      let deadline = timeoutMicroseconds != 0 ? now &+ timeoutMicroseconds &* Timer.tscPerMs / 1000 : 0
      LockCore.addWaiter(k, since: now, traced: traced)
      Sched.block(SMPTOP_THREAD_BLOCKED_SEM, on: abi_addr(k), wake: deadline)
      if deadline != 0 { Timer.add(deadline: deadline, thread: tid) }
      LockCore.unmeta(k)
      while Sched.thread(tid).pointee.woken == 0 { Sched.schedule() }
      LockCore.meta(k)
      if Sched.thread(tid).pointee.timed_out != 0 {
        // The timer took it off the wait queue (Sched.timerExpired): no unit was handed over.
        Sched.thread(tid).pointee.timed_out = 0
        r.pointee.trylock_failures &+= 1
        LockCore.unmeta(k)
        if irqOn { cpu_sti() }
        return false
      }
      if deadline != 0 { Timer.cancel(thread: tid) }
      abi_seq_begin(&r.pointee.seq)
      r.pointee.acquire_site = site
      abi_seq_end(&r.pointee.seq)
      LockCore.unmeta(k)
      if irqOn { cpu_sti() }
      return true
    }

    /// Returns a unit: to the first waiter if any, else to the count.
    func up() { upUnlessTraced() }

    /// `up` without trace records; while lock tracing is on it hands over to `upTraced` first
    /// (LockCore, "Tracing").
    @inline(never)
    private func upUnlessTraced() {
      if Trace.on(SMPTOP_TRACE_LOCKS) { return upTraced() }
      up(traced: false)
    }

    /// The same with trace records, out of line (LockCore, "Tracing").
    @inline(never)
    private func upTraced() { up(traced: true) }

    /// The body of `up`; `traced`: write its trace records.
    @inline(__always)
    private func up(traced: Bool) {
      let irqNow = cpu_irqs_enabled()
      cpu_cli()
      LockCore.meta(k)
      let now = rdtsc()
      if traced {
        let me = LCPU.currentIndex
        Trace.write(
          SMPTOP_TRACE_LOCK_RELEASED, tsc: now, ring: me, lcpu: me, object: abi_addr(k), arg: Sched.contextID,
          arg2: 0, site: 0)
      }
      var wake: UInt64 = 0
      if k.pointee.nwaiters > 0 {
        let w = klock_waiters(k)[0]
        LockCore.removeWaiterAt(k, 0)
        LockCore.acquired(
          k, lcpu: LockCore.noLCPU, thread: 0, site: 0, now: now, at: now, since: w.since_tsc, readers: 0,
          traced: traced)
        wake = w.thread
      } else {
        let count = kword_load_relaxed(&k.pointee.word) &+ 1
        kword_store(&k.pointee.word, count)
        let r = k.pointee.rec
        abi_seq_begin(&r.pointee.seq)
        r.pointee.state_word = count
        r.pointee.readers = UInt32(truncatingIfNeeded: count)
        r.pointee.holder_lcpu = LockCore.noLCPU
        r.pointee.holder_thread = 0
        abi_seq_end(&r.pointee.seq)
      }
      LockCore.unmeta(k)
      if wake != 0 { Sched.wake(wake) }
      if irqNow { cpu_sti() }
    }
  }
#endif
