// Sched: kernel threads and per-lcpu run queues. Threads come from a static pool
// (sync_data.c) whose records are the THREAD table; a thread never migrates: it belongs to
// the run queue of the lcpu it was created on. Each lcpu runs its threads round-robin,
// preempting on its LAPIC timer tick (Timer.swift) when another thread is ready; with
// nothing ready the lcpu runs its idle context (the boot stack, LCPU.idleLoop), which
// halts until the earliest timer deadline or an IPI.
//
// Context switch: ctx_switch (switch.S) saves callee-saved registers and rsp; a switch
// inside an interrupt handler leaves the trap frame on the old thread's stack, so the
// thread later resumes by returning through the handler and iretq. The lcpu's busy depth
// and interrupt depth belong to the context, so they are saved and restored with it.
//
// Rules: schedule() runs with interrupts off. Every write to a thread record (state,
// blocked_on, accounting) and every change of `current` happens under the owning lcpu's
// run-queue lock, so the record has one writer at a time even when another lcpu wakes the
// thread, and a waker can tell whether the thread is still running: a wait loop marks its
// thread blocked, releases its guard and re-checks its condition before schedule(), so a
// wake-up can arrive while the thread has not left the lcpu yet; it then only becomes
// RUNNING again (it is not queued: a running thread in the queue would be queued twice
// at its next preemption, cutting the list). A thread that tries to block with preemption
// off (holding a spin lock) is not switched out: schedule() counts it in the lcpu's
// sleep_in_atomic and returns, and the wait loop polls. Each timer tick checks the run
// queue against the thread table (runq_checks, runq_check_failures).

#if SMP_GUEST
  import KernelSupport

  /// Kernel threads and the scheduler.
  enum Sched {
    /// Thread slots handed out so far (the THREAD table's count).
    nonisolated(unsafe) static var used: UInt32 = 0
    /// Whether threads run yet (set once the workload starts).
    nonisolated(unsafe) static var running = false

    /// A thread body: called with the thread's argument.
    typealias Entry = @convention(c) (UInt64) -> Void

    static var me: UnsafeMutablePointer<ksched> { ksched_at(LCPU.currentIndex) }

    /// The id of the thread running on this lcpu (0 = the idle context).
    static var currentID: UInt64 { me.pointee.current }

    /// The thread a lock operation is attributed to: 0 in interrupt context (the lcpu itself,
    /// not the thread it interrupted), else the current thread.
    static var contextID: UInt64 { inInterrupt ? 0 : me.pointee.current }

    /// Whether this code runs in an interrupt handler.
    static var inInterrupt: Bool { me.pointee.irq_depth > 0 }

    static func thread(_ id: UInt64) -> UnsafeMutablePointer<kthread> { kthread_at(UInt32(id - 1)) }
    static func record(_ id: UInt64) -> UnsafeMutablePointer<smptop_thread> { kthread_record(UInt32(id - 1)) }

    // MARK: run-queue lock (raw, interrupts must be off)

    static func lockRunq(_ s: UnsafeMutablePointer<ksched>) {
      kmeta_lock(&s.pointee.runq_lock, UInt64(LCPU.currentIndex) &+ 1)
    }
    static func unlockRunq(_ s: UnsafeMutablePointer<ksched>) { kmeta_unlock(&s.pointee.runq_lock) }

    /// Writes a thread record field group under its seq (caller holds the owner's run-queue lock).
    static func setState(_ id: UInt64, _ state: smptop_thread_state, on: UInt64 = 0, wake: UInt64 = 0) {
      let r = record(id)
      abi_seq_begin(&r.pointee.seq)
      r.pointee.state = state.rawValue
      r.pointee.blocked_on = on
      r.pointee.wake_tsc = wake
      abi_seq_end(&r.pointee.seq)
    }

    /// Appends thread `id` to run queue `s` (run-queue lock held).
    static func push(_ s: UnsafeMutablePointer<ksched>, _ id: UInt64) {
      let t = thread(id)
      t.pointee.next = 0
      let index = UInt32(id)
      if s.pointee.runq_tail == 0 {
        s.pointee.runq_head = index
      } else {
        thread(UInt64(s.pointee.runq_tail)).pointee.next = index
      }
      s.pointee.runq_tail = index
      s.pointee.runq_len &+= 1
    }

    /// Removes the head of run queue `s`, 0 if empty (run-queue lock held).
    static func pop(_ s: UnsafeMutablePointer<ksched>) -> UInt64 {
      let head = s.pointee.runq_head
      if head == 0 { return 0 }
      let t = thread(UInt64(head))
      s.pointee.runq_head = t.pointee.next
      if s.pointee.runq_head == 0 { s.pointee.runq_tail = 0 }
      t.pointee.next = 0
      s.pointee.runq_len &-= 1
      return UInt64(head)
    }

    // MARK: creation

    /// Creates a thread on lcpu `lcpu` running `entry(arg)`; returns its id, 0 if the pool is full.
    @discardableResult
    static func spawn(
      _ name: StaticString, suffix: UInt32? = nil, lcpu: UInt32, kind: UInt32 = 0,
      _ entry: Entry, _ arg: UInt64
    ) -> UInt64 {
      guard used < KTHREAD_MAX, lcpu < LCPU.count else { return 0 }
      let index = used
      used += 1
      let id = UInt64(index) + 1
      let t = kthread_at(index)
      let r = kthread_record(index)
      t.pointee.stack_base = kthread_stack_base(index)
      t.pointee.entry = UInt64(UInt(bitPattern: unsafeBitCast(entry, to: UnsafeRawPointer.self)))
      t.pointee.arg = arg
      t.pointee.lcpu = lcpu
      t.pointee.work_kind = kind
      // Initial stack: six zero callee-saved registers, then kthread_start as return address.
      let top = t.pointee.stack_base + UInt64(KTHREAD_STACK)
      let frame = UnsafeMutablePointer<UInt64>(bitPattern: UInt(top - 8 * 8))!
      for i in 0..<6 { frame[i] = 0 }
      frame[6] = kthread_start_address()
      frame[7] = 0
      // Record.
      abi_seq_begin(&r.pointee.seq)
      r.pointee.id = id
      r.pointee.stack_bottom = t.pointee.stack_base
      r.pointee.stack_top = top
      r.pointee.saved_rsp = top - 8 * 8
      let n = kthread_record_name(r)
      var k = 0
      name.withUTF8Buffer { b in
        for c in b where k < Int(SMPTOP_NAME_BYTES) - 6 { n[k] = CChar(bitPattern: c); k += 1 }
      }
      if let s = suffix { k = appendNumber(n, k, UInt64(s)) }
      n[k] = 0
      r.pointee.lcpu = lcpu
      abi_seq_end(&r.pointee.seq)
      let table = abi_root_table(UInt32(SMPTOP_TABLE_THREAD.rawValue))
      atomic_store_u32(&table.pointee.count, used)
      // Queue it on its lcpu: READY and queued in one step under the lock.
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      let s = ksched_at(lcpu)
      lockRunq(s)
      setState(id, SMPTOP_THREAD_READY)
      push(s, id)
      unlockRunq(s)
      if irqs { cpu_sti() }
      if lcpu != LCPU.currentIndex { IPI.wake(lcpu) }
      return id
    }

    /// Writes ".N" style decimal `v` into `n` at `k`; returns the new end.
    static func appendNumber(_ n: UnsafeMutablePointer<CChar>, _ at: Int, _ v: UInt64) -> Int {
      var k = at
      n[k] = 0x2E; k += 1
      var digits: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
      var count = 0
      var x = v
      repeat {
        withUnsafeMutableBytes(of: &digits) { $0[count] = UInt8(x % 10) + 0x30 }
        x /= 10; count += 1
      } while x != 0 && count < 4
      while count > 0 {
        count -= 1
        n[k] = CChar(bitPattern: withUnsafeBytes(of: digits) { $0[count] }); k += 1
      }
      return k
    }

    // MARK: switching

    /// Picks the next context on this lcpu and switches to it. Interrupts off. A RUNNING
    /// current thread goes back to the tail of the queue; a blocked or sleeping one stays off it.
    static func schedule() {
      let s = me
      if s.pointee.preempt_count != 0 {
        s.pointee.need_resched = 1
        refuseAtomicBlock(s)
        return
      }
      let lcpu = LCPU.currentIndex
      let now = rdtsc()
      lockRunq(s)
      let cur = s.pointee.current
      if cur != 0 && record(cur).pointee.state == SMPTOP_THREAD_RUNNING.rawValue {
        setState(cur, SMPTOP_THREAD_READY)
        push(s, cur)
      }
      // The idle context's own work (shutdown, panic demonstration, v1 work stretch) must not
      // starve behind threads: when it is due, the idle context runs next.
      let next = cur != 0 && idleWorkDue() ? 0 : pop(s)
      s.pointee.need_resched = 0
      if next == cur {
        if next != 0 { setState(next, SMPTOP_THREAD_RUNNING) }
        unlockRunq(s)
        return
      }
      if cur != 0 {
        let r = record(cur)
        abi_seq_begin(&r.pointee.seq)
        r.pointee.cpu_tsc &+= now &- s.pointee.slice_start
        abi_seq_end(&r.pointee.seq)
      }
      // The context to switch to; a thread's saved_rsp reads 0 while it runs.
      var target = s.pointee.idle_rsp
      if next != 0 {
        let r = record(next)
        abi_seq_begin(&r.pointee.seq)
        r.pointee.state = SMPTOP_THREAD_RUNNING.rawValue
        r.pointee.blocked_on = 0
        r.pointee.wake_tsc = 0
        r.pointee.switches &+= 1
        target = r.pointee.saved_rsp
        r.pointee.saved_rsp = 0
        abi_seq_end(&r.pointee.seq)
      }
      s.pointee.slice_start = now
      s.pointee.current = next
      unlockRunq(s)
      if Trace.on(SMPTOP_TRACE_SCHED) { Trace.emitIRQsOff(SMPTOP_TRACE_SWITCH, object: next, arg: cur) }
      let lr = LCPU.record(lcpu)
      abi_seq_begin(&lr.pointee.seq)
      lr.pointee.current_thread = next
      abi_seq_end(&lr.pointee.seq)

      // Save this context's depths, switch, and restore them when switched back to.
      let busy = lr.pointee.busy_depth
      let irq = s.pointee.irq_depth
      let save: UnsafeMutablePointer<UInt64>
      if cur == 0 {
        s.pointee.idle_busy_depth = busy
        s.pointee.idle_irq_depth = irq
        save = withUnsafeMutablePointer(to: &s.pointee.idle_rsp) { $0 }
      } else {
        let t = thread(cur)
        t.pointee.saved_busy_depth = busy
        t.pointee.saved_irq_depth = irq
        let r = record(cur)
        save = withUnsafeMutablePointer(to: &r.pointee.saved_rsp) { $0 }
      }
      ctx_switch(save, target)
      // Back in this context (possibly much later).
      resumed(cur)
    }

    /// Restores the depths of context `id` (0 = idle) after it was switched back to.
    static func resumed(_ id: UInt64) {
      let s = me
      let depth: UInt32
      if id == 0 {
        depth = s.pointee.idle_busy_depth
        s.pointee.irq_depth = s.pointee.idle_irq_depth
      } else {
        depth = thread(id).pointee.saved_busy_depth
        s.pointee.irq_depth = thread(id).pointee.saved_irq_depth
      }
      LCPU.setCurrentDepth(depth)
    }

    /// A blocking schedule() with preemption off (the caller holds a spin, ticket or rw lock):
    /// the thread stays on the lcpu, and the first refusal of this block counts in the lcpu's
    /// sleep_in_atomic. Its wait loop then polls its condition instead of sleeping.
    static func refuseAtomicBlock(_ s: UnsafeMutablePointer<ksched>) {
      let cur = s.pointee.current
      guard cur != 0, s.pointee.irq_depth == 0 else { return }
      let st = record(cur).pointee.state
      guard isBlocked(st), thread(cur).pointee.atomic_block == 0 else { return }
      thread(cur).pointee.atomic_block = 1
      abi_inc(&LCPU.record(LCPU.currentIndex).pointee.sleep_in_atomic)
    }

    /// Whether `state` is one a thread leaves only when woken.
    static func isBlocked(_ state: UInt32) -> Bool {
      state == SMPTOP_THREAD_BLOCKED_LOCK.rawValue || state == SMPTOP_THREAD_BLOCKED_SEM.rawValue
        || state == SMPTOP_THREAD_BLOCKED_WAITQ.rawValue || state == SMPTOP_THREAD_SLEEPING.rawValue
    }

    /// Marks the current thread blocked/sleeping (it leaves the run queue at the next schedule()).
    /// Interrupts off. The caller then releases whatever guard it holds, re-checks its
    /// condition and calls schedule() only if it still has to wait.
    static func block(_ state: smptop_thread_state, on: UInt64, wake: UInt64 = 0) {
      let s = me
      let cur = s.pointee.current
      guard cur != 0 else { return }
      lockRunq(s)
      thread(cur).pointee.woken = 0
      thread(cur).pointee.atomic_block = 0
      setState(cur, state, on: on, wake: wake)
      unlockRunq(s)
    }

    /// Makes thread `id` ready again (from any lcpu; interrupts off). A blocked thread that
    /// is still its lcpu's current thread (between block() and its schedule()) just becomes
    /// RUNNING again; any other blocked thread is queued.
    static func wake(_ id: UInt64) {
      let t = thread(id)
      let lcpu = t.pointee.lcpu
      let s = ksched_at(lcpu)
      lockRunq(s)
      let st = record(id).pointee.state
      t.pointee.woken = 1
      if isBlocked(st) {
        if s.pointee.current == id {
          setState(id, SMPTOP_THREAD_RUNNING)
        } else {
          setState(id, SMPTOP_THREAD_READY)
          push(s, id)
          s.pointee.need_resched = 1
        }
      }
      unlockRunq(s)
      if lcpu != LCPU.currentIndex { IPI.wake(lcpu) }
    }

    /// Publishes where this timer tick found the running thread (its rip, rbp and rsp), so a
    /// live reader can walk a running thread's stack as of its latest tick. Interrupts off;
    /// only for a tick that interrupted thread context (not another interrupt handler).
    static func sampleTick(_ frame: UnsafeMutablePointer<trap_frame>, now: UInt64) {
      let s = me
      let cur = s.pointee.current
      guard cur != 0, s.pointee.irq_depth == 1 else { return }
      lockRunq(s)
      let r = record(cur)
      abi_seq_begin(&r.pointee.seq)
      r.pointee.tick_rip = frame.pointee.rip
      r.pointee.tick_rbp = frame.pointee.rbp
      r.pointee.tick_rsp = frame.pointee.rsp
      r.pointee.tick_tsc = now
      abi_seq_end(&r.pointee.seq)
      unlockRunq(s)
    }

    /// The run-queue self-check (this lcpu, interrupts off): under the run-queue lock, every
    /// queued thread is READY, belongs here and is not running; the links end at the tail
    /// after runq_len entries; every READY thread of this lcpu is queued. Counted in the lcpu
    /// record (runq_checks, runq_check_failures).
    static func checkRunQueue() {
      let s = me
      let lcpu = LCPU.currentIndex
      let ready = SMPTOP_THREAD_READY.rawValue
      lockRunq(s)
      var ok = true
      var queued: UInt32 = 0
      var last: UInt32 = 0
      var index = s.pointee.runq_head
      while index != 0 && queued <= KTHREAD_MAX {
        let id = UInt64(index)
        if index > used || id == s.pointee.current || record(id).pointee.state != ready
          || thread(id).pointee.lcpu != lcpu
        {
          ok = false
          break
        }
        queued += 1
        last = index
        index = thread(id).pointee.next
      }
      if queued != s.pointee.runq_len || last != s.pointee.runq_tail { ok = false }
      var readyHere: UInt32 = 0
      for i in 0..<used where kthread_at(i).pointee.lcpu == lcpu && kthread_record(i).pointee.state == ready {
        readyHere += 1
      }
      if readyHere != queued { ok = false }
      unlockRunq(s)
      let r = LCPU.record(lcpu)
      abi_inc(&r.pointee.runq_checks)
      if !ok { abi_inc(&r.pointee.runq_check_failures) }
    }

    /// A thread's timer expired (its own lcpu, interrupt context): a sleep ends; a
    /// semaphore wait with a timeout leaves the wait queue here, under the lock's guard, so
    /// the record never lists a waiter that is no longer waiting.
    static func timerExpired(_ id: UInt64) {
      let r = record(id)
      if r.pointee.state == SMPTOP_THREAD_BLOCKED_SEM.rawValue,
        let k = UnsafeMutablePointer<klock>(bitPattern: UInt(r.pointee.blocked_on))
      {
        LockCore.meta(k)
        let w = klock_waiters(k)
        var found = false
        for i in 0..<Int(k.pointee.nwaiters) where w[i].thread == id {
          LockCore.removeWaiterAt(k, i)
          let lr = k.pointee.rec
          abi_seq_begin(&lr.pointee.seq)
          LockCore.publishWaiters(k)
          abi_seq_end(&lr.pointee.seq)
          thread(id).pointee.timed_out = 1
          found = true
          break
        }
        LockCore.unmeta(k)
        if found { wake(id) }  // else up() handed it a unit and wakes it itself
        return
      }
      wake(id)
    }

    /// Marks the current thread SPINNING on `lock` (true) or RUNNING again (false).
    static func spinning(_ on: Bool, lock: UInt64) {
      let s = me
      let cur = s.pointee.current
      guard cur != 0, s.pointee.irq_depth == 0 else { return }  // an interrupt spins for the lcpu
      lockRunq(s)
      setState(cur, on ? SMPTOP_THREAD_SPINNING : SMPTOP_THREAD_RUNNING, on: on ? lock : 0)
      unlockRunq(s)
    }

    /// Sleeps the current thread until TSC `deadline` (its own lcpu's timer queue).
    static func sleep(until deadline: UInt64) {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      let cur = currentID
      if cur == 0 {
        if irqs { cpu_sti() }
        return
      }
      block(SMPTOP_THREAD_SLEEPING, on: 0, wake: deadline)
      Timer.add(deadline: deadline, thread: cur)
      schedule()
      if record(cur).pointee.state == SMPTOP_THREAD_SLEEPING.rawValue {
        // Refused (preemption off): no sleep, and no timer left behind to wake it later.
        Timer.cancel(thread: cur)
        let s = me
        lockRunq(s)
        setState(cur, SMPTOP_THREAD_RUNNING)
        unlockRunq(s)
      }
      if irqs { cpu_sti() }
    }

    /// Sleeps the current thread for `microseconds`.
    static func sleep(microseconds: UInt64) {
      sleep(until: rdtsc() &+ microseconds &* Timer.tscPerMs / 1000)
    }

    /// Gives the lcpu to the next ready thread, if any.
    static func yield() {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      schedule()
      if irqs { cpu_sti() }
    }

    /// Counts one workload operation of the current thread.
    static func countOp() {
      let cur = currentID
      guard cur != 0 else { return }
      let r = record(cur)
      _ = atomic_add_u64(&r.pointee.ops, 1)
    }

    /// Disables / re-enables preemption on this lcpu (spin, ticket and rw locks hold it off).
    static func preemptDisable() { me.pointee.preempt_count &+= 1 }
    static func preemptEnable() { me.pointee.preempt_count &-= 1 }

    /// From the end of an interrupt handler: switch if this lcpu should (EOI already sent).
    static func interruptExit() {
      let s = me
      guard running, s.pointee.preempt_count == 0, s.pointee.need_resched != 0 else { return }
      schedule()
    }

    /// From the timer tick: asks for a switch when another thread is ready (round-robin), or
    /// when the idle context has work due.
    static func tick() {
      let s = me
      if running { checkRunQueue() }
      if s.pointee.runq_len > 0 || (s.pointee.current != 0 && idleWorkDue()) { s.pointee.need_resched = 1 }
    }

    /// Whether LCPU.idleLoop has something to do on this lcpu: a claimed shutdown, a due
    /// panic demonstration or a due v1 work stretch.
    static func idleWorkDue() -> Bool {
      let a = LCPU.current
      return Power.isClaimedHere || a.pointee.fault_pending == 1
        || atomic_load_u64(&a.pointee.work_pending) != 0
    }

    /// The idle context's hook (interrupts off): run threads if any are ready.
    static func idle() {
      let s = me
      guard running, s.pointee.runq_len > 0 else { return }
      schedule()
    }
  }

  /// Every thread starts here (from kthread_start) with interrupts off, right after its
  /// first switch-in: it takes over the lcpu at depth 1, enables interrupts and runs.
  @c func kthread_main() -> Never {
    let s = Sched.me
    let id = s.pointee.current
    s.pointee.irq_depth = 0
    LCPU.setCurrentDepth(1)
    let t = Sched.thread(id)
    if let raw = UnsafeRawPointer(bitPattern: UInt(t.pointee.entry)) {
      let f = unsafeBitCast(raw, to: Sched.Entry.self)
      cpu_sti()
      f(t.pointee.arg)
    }
    cpu_cli()
    Sched.lockRunq(s)
    Sched.setState(id, SMPTOP_THREAD_EXITED)
    Sched.unlockRunq(s)
    Sched.schedule()
    cpu_halt_forever()
  }
#endif
