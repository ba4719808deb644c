// Workload: kernel threads that exercise every lock kind, the scheduler and the timer
// queues, chosen with `workload=` on the command line (CommandLine.swift):
//
//   default     on every lcpu: threads hammering shared counters under work.spin,
//               work.ticket (irq-save), work.rw (readers + writers) and work.mutex (with the
//               recursive work.rmutex around it), a producer and a consumer on the dynamic
//               semaphore work.items (every other down() with a 3 ms timeout; both limited by the semaphore work.slots = 2), and a
//               sleeper with varied deadlines that takes its dynamic lock percpu.N and reads
//               under the dynamic irq-save rwlock sleepers.rw (the checker writes). A checker
//               thread on lcpu 0 takes each lock every 100 ms and compares the counter with
//               the increments the threads made (WORKLOAD record: checks, check_failures,
//               expected, observed).
//   deadlock    default + abba.A (lcpu 1) takes deadlock.A then deadlock.B, abba.B (lcpu 2)
//               takes B then A: both stay BLOCKED_LOCK for good, each blocked_on the lock
//               the other one holds.
//   isr-misuse  default + every lcpu's timer interrupt takes the plain spinlock isr-misuse,
//               which the thread isr.victim holds with interrupts on (counted as
//               misuse_irq_unsafe; on the victim's lcpu the attempt fails instead of
//               deadlocking); lcpu 0's timer interrupt also tries work.mutex
//               (misuse_sleep_in_irq); isr.victim starts with one bad unlock and one
//               recursive lock() of isr-misuse (misuse_bad_unlock, misuse_recursion).
//   convoy      default + convoy.holder keeps convoy.mutex for 20 ms stretches while
//               convoy.N threads (2 per lcpu) queue on it, and convoy.spinholder keeps
//               convoy.spin for 5 ms while one convoy.spinner per lcpu spins.
//   wake-race   default + on every lcpu a wake.waiter whose wait loop (block, re-check,
//               schedule) is woken by a wake.waker on the next lcpu between its block() and
//               its re-check, every time (the re-check waits for the wake-up to be
//               delivered); then it takes the contended spin lock wake-race.spin. The lcpus'
//               run-queue self-checks must stay clean. wake.waiter.0 also tries once to
//               sleep holding wake-race.spin (counted in its lcpu's sleep_in_atomic).
//   irq-reentry default + lcpu 1's timer interrupt takes reentry.ticket (plain ticket lock)
//               and reads reentry.rw (plain rw lock) while the thread it interrupts often
//               waits for that ticket (reentry.ticket.waiter; reentry.ticket.holder keeps it
//               for 2 ms stretches on lcpu 2) or reads reentry.rw (reentry.reader) with a
//               writer pending (reentry.writer, lcpu 2): each such attempt is refused and
//               counted in misuse_irq_unsafe instead of deadlocking the lcpu.
//   panic-console default + guard.victim (lcpu 1) takes the console lock and raises #UD while
//               guard.holder (lcpu 2) holds the console lock's record guard for 200 ms, as
//               an lcpu updating that record would. The panic path must wait for the guard,
//               not break it: guard.holder counts a workload check failure if the record's
//               seq moved while it held the guard (two writers).
//
// Every operation counts in the thread's `ops`, the WORKLOAD record's ops[lcpu] and the
// lcpu's work_loops (the v1 counter).

#if SMP_GUEST
  import KernelSupport

  /// Registers the issue-6 tables in the root (called by Inspect.publish before the magic).
  enum SyncTables {
    static func register() {
      let lock = abi_root_table(UInt32(SMPTOP_TABLE_LOCK.rawValue))
      lock.pointee.addr = klock_section_start()
      lock.pointee.count = UInt32((klock_section_end() - klock_section_start()) / UInt64(abi_lock_stride()))
      lock.pointee.stride = abi_lock_stride()
      let thread = abi_root_table(UInt32(SMPTOP_TABLE_THREAD.rawValue))
      thread.pointee.addr = abi_addr(kthread_record(0))
      thread.pointee.count = Sched.used
      thread.pointee.stride = abi_thread_stride()
      let timerq = abi_root_table(UInt32(SMPTOP_TABLE_TIMERQ.rawValue))
      timerq.pointee.addr = abi_addr(ktimerq_record(0))
      timerq.pointee.count = LCPU.count
      timerq.pointee.stride = abi_timerq_stride()
      for i in 0..<LCPU.count { ktimerq_record(i).pointee.lcpu = i }
      let work = abi_root_table(UInt32(SMPTOP_TABLE_WORKLOAD.rawValue))
      work.pointee.addr = abi_addr(kworkload_record())
      work.pointee.count = 1
      work.pointee.stride = abi_workload_stride()
      // A guard page at the bottom of every thread stack (before the APs start: no TLB
      // shootdown needed), so an overflow faults (#DF report) instead of corrupting the
      // stack below.
      for i in 0..<UInt32(KTHREAD_MAX) { Paging.unmap(kthread_stack_base(i)) }
      let root = Inspect.root
      root.pointee.table_count = max(root.pointee.table_count, UInt32(SMPTOP_TABLE_WORKLOAD.rawValue) + 1)
    }
  }

  /// The lock-exercising workload.
  enum Workload {
    enum Scenario {
      case none, normal, deadlock, isrMisuse, convoy, wakeRace, irqReentry, panicConsole, scale
    }

    /// Chosen on the command line (default: normal).
    nonisolated(unsafe) static var scenario = Scenario.normal
    nonisolated(unsafe) static var items: UnsafeMutablePointer<klock>? = nil
    nonisolated(unsafe) static var sleepersRW: UnsafeMutablePointer<klock>? = nil
    nonisolated(unsafe) static var perLCPU: (UnsafeMutablePointer<klock>?, Int) = (nil, 0)
    nonisolated(unsafe) static var percpuLocks = UnsafeMutablePointer<UnsafeMutablePointer<klock>?>(
      bitPattern: 0)

    // Counter indices (work_counters[]).
    static let cSpin: UInt32 = 0, cTicket: UInt32 = 1, cRW: UInt32 = 2, cMutex: UInt32 = 3
    static let cProduced: UInt32 = 4, cConsumed: UInt32 = 5, cSlotViolations: UInt32 = 6,
      cSlotsInside: UInt32 = 7

    static func setName(_ s: StaticString) {
      let out = kworkload_scenario()
      var i = 0
      s.withUTF8Buffer { b in
        for c in b where i < Int(SMPTOP_NAME_BYTES) - 1 { out[i] = CChar(bitPattern: c); i += 1 }
      }
      out[i] = 0
    }

    /// Parses `workload=NAME`; false if the name is unknown.
    static func choose(_ v: KernelCommandLine.ValueView) -> Bool {
      if v == "default" {
        scenario = .normal
      } else if v == "deadlock" {
        scenario = .deadlock
      } else if v == "isr-misuse" {
        scenario = .isrMisuse
      } else if v == "convoy" {
        scenario = .convoy
      } else if v == "wake-race" {
        scenario = .wakeRace
      } else if v == "irq-reentry" {
        scenario = .irqReentry
      } else if v == "panic-console" {
        scenario = .panicConsole
      } else if v == "scale" {
        scenario = .scale
      } else if v == "none" {
        scenario = .none
      } else {
        return false
      }
      return true
    }

    /// The lcpu for the n-th placement (online lcpus only).
    static func lcpu(_ n: UInt32) -> UInt32 {
      let c = LCPU.count
      let i = n % c
      return LCPU.isOnline(i) ? i : 0
    }

    /// Starts the threads (bsp, after every lcpu is online).
    static func start() {
      switch scenario {
      case .none: setName("none"); return
      case .normal: setName("default")
      case .deadlock: setName("deadlock")
      case .isrMisuse: setName("isr-misuse")
      case .convoy: setName("convoy")
      case .wakeRace: setName("wake-race")
      case .irqReentry: setName("irq-reentry")
      case .panicConsole: setName("panic-console")
      case .scale: setName("scale")
      }
      Semaphore(klock_work_slots_ptr()).setCount(2)
      items = LockCore.makeDynamic("work.items", kind: SMPTOP_LOCK_SEMAPHORE)
      let n = LCPU.count
      for i in 0..<n {
        _ = LockCore.makeDynamic("percpu", suffix: i, kind: SMPTOP_LOCK_SPIN)  // dynamic record i + 1
      }
      sleepersRW = LockCore.makeDynamic(
        "sleepers.rw", kind: SMPTOP_LOCK_RW, flags: SMPTOP_LOCKF_IRQSAVE.rawValue)
      Sched.running = true
      Sched.spawn("checker", lcpu: 0, kind: 7, checker, 0)  // first: a full pool never drops it
      for i in 0..<n where LCPU.isOnline(i) && scenario != .scale {
        Sched.spawn("spin", suffix: i, lcpu: i, kind: 0, hammerSpin, UInt64(i))
        Sched.spawn("ticket", suffix: i, lcpu: i, kind: 1, hammerTicket, UInt64(i))
        Sched.spawn("rw", suffix: i, lcpu: i, kind: 2, hammerRW, UInt64(i))
        Sched.spawn("mutex", suffix: i, lcpu: i, kind: 3, hammerMutex, UInt64(i))
        Sched.spawn("producer", suffix: i, lcpu: i, kind: 4, producer, UInt64(i))
        Sched.spawn("consumer", suffix: i, lcpu: i, kind: 5, consumer, UInt64(i))
        Sched.spawn("sleeper", suffix: i, lcpu: i, kind: 6, sleeper, UInt64(i))
      }
      switch scenario {
      case .deadlock:
        Sched.spawn("abba.A", lcpu: lcpu(1), kind: 8, abba, 0)
        Sched.spawn("abba.B", lcpu: lcpu(2), kind: 8, abba, 1)
      case .isrMisuse:
        Sched.spawn("isr.victim", lcpu: lcpu(1), kind: 8, isrVictim, 0)
      case .convoy:
        Sched.spawn("convoy.holder", lcpu: 0, kind: 8, convoyHolder, 0)
        Sched.spawn("convoy.spinholder", lcpu: lcpu(1), kind: 8, convoySpinHolder, 0)
        for i in 0..<n where LCPU.isOnline(i) {
          Sched.spawn("convoy", suffix: 2 * i, lcpu: i, kind: 8, convoyWaiter, 0)
          Sched.spawn("convoy", suffix: 2 * i + 1, lcpu: i, kind: 8, convoyWaiter, 0)
          Sched.spawn("convoy.spinner", suffix: i, lcpu: i, kind: 8, convoySpinner, 0)
        }
      case .wakeRace:
        for i in 0..<n where LCPU.isOnline(i) {
          Sched.spawn("wake.waiter", suffix: i, lcpu: i, kind: 8, wakeWaiter, UInt64(i))
          Sched.spawn("wake.waker", suffix: i, lcpu: lcpu(i + 1), kind: 8, wakeWaker, UInt64(i))
        }
      case .irqReentry:
        Sched.spawn("reentry.ticket.holder", lcpu: lcpu(2), kind: 8, reentryTicketHolder, 0)
        Sched.spawn("reentry.ticket.waiter", lcpu: lcpu(1), kind: 8, reentryTicketWaiter, 0)
        Sched.spawn("reentry.reader", lcpu: lcpu(1), kind: 8, reentryReader, 0)
        Sched.spawn("reentry.writer", lcpu: lcpu(2), kind: 8, reentryWriter, 0)
      case .scale:
        Scale.start()
      case .panicConsole:
        Sched.spawn("guard.victim", lcpu: lcpu(1), kind: 8, guardVictim, 0)
        Sched.spawn("guard.holder", lcpu: lcpu(2), kind: 8, guardHolder, 0)
      default: break
      }
      Console.log("workload: \(cstring: kworkload_scenario()), \(Sched.used) threads")
    }

    // MARK: helpers

    /// Some computation (xorshift rounds).
    @inline(never)
    static func burn(_ rounds: Int) {
      var x: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ rdtsc()
      for _ in 0..<rounds { x = Work.xorshift(x) }
      if x == 42 { Console.log("burn: unlikely") }
    }

    /// Busy for `microseconds` (TSC).
    static func busy(microseconds: UInt64) { Timer.delay(microseconds: microseconds) }

    /// Counts one operation (thread, workload record, lcpu work_loops).
    static func op() {
      Sched.countOp()
      let i = LCPU.currentIndex
      _ = atomic_add_u64(&kworkload_ops()[Int(i)], 1)
      _ = atomic_add_u64(&LCPU.record(i).pointee.work_loops, 1)
    }

    /// This thread's private part.
    static var me: UnsafeMutablePointer<kthread> { Sched.thread(Sched.currentID) }

    /// Every 64 operations: a short sleep so the lcpus also go idle.
    static func pace(_ ops: inout UInt64) {
      ops &+= 1
      if ops % 64 == 0 { Sched.sleep(microseconds: 1000 &+ Work.random() % 3000) }
    }

    /// The critical section every hammer thread runs under its lock: read the shared counter,
    /// spend `holding` units of work, write it back plus one (a torn update would lose an
    /// increment, which the self-check then finds), and count it as this thread's.
    @inline(__always)
    static func increment(_ counter: UInt32, holding: Int) {
      let c = work_counter(counter)
      let v = c.pointee
      burn(holding)
      c.pointee = v &+ 1
      me.pointee.tally &+= 1
    }

    // MARK: default threads

    static let hammerSpin: Sched.Entry = { _ in
      let l = SpinLock(klock_work_spin_ptr())
      var n: UInt64 = 0
      while true {
        if n % 16 == 0 {
          if l.tryLock() {
            work_counter(cSpin).pointee &+= 1
            me.pointee.tally &+= 1
            l.unlock()
          }
        } else if l.lock() {
          increment(cSpin, holding: 50)
          l.unlock()
        }
        op(); burn(200); pace(&n)
      }
    }

    static let hammerTicket: Sched.Entry = { _ in
      let l = TicketLock(klock_work_ticket_ptr())
      var n: UInt64 = 0
      while true {
        if l.lock() {
          increment(cTicket, holding: 50)
          l.unlock()
        }
        op(); burn(200); pace(&n)
      }
    }

    static let hammerRW: Sched.Entry = { _ in
      let l = RWLock(klock_work_rw_ptr())
      var n: UInt64 = 0
      while true {
        if n % 8 == 0 {
          if l.writeLock() {
            increment(cRW, holding: 50)
            l.writeUnlock()
          }
        } else if l.readLock() {
          let a = kword_load(work_counter(cRW))
          burn(50)
          let b = kword_load(work_counter(cRW))
          if a != b { _ = atomic_add_u64(work_counter(cSlotViolations), 1) }  // a writer got in
          l.readUnlock()
        }
        op(); burn(200); pace(&n)
      }
    }

    static let hammerMutex: Sched.Entry = { _ in
      let outer = Mutex(klock_work_rmutex_ptr())
      let l = Mutex(klock_work_mutex_ptr())
      var n: UInt64 = 0
      while true {
        let nested = n % 4 == 0
        if nested { outer.lock(); outer.lock() }  // recursive: depth 2
        if l.lock() {
          increment(cMutex, holding: 100)
          l.unlock()
        }
        if nested { outer.unlock(); outer.unlock() }
        op(); burn(200); pace(&n)
      }
    }

    /// Takes a work.slots unit and checks that at most 2 holders are inside.
    static func slot(_ body: () -> Void) {
      let s = Semaphore(klock_work_slots_ptr())
      guard s.down() else { return }
      let inside = atomic_add_u64(work_counter(cSlotsInside), 1)
      if inside > 2 { _ = atomic_add_u64(work_counter(cSlotViolations), 1) }
      body()
      _ = atomic_add_u64(work_counter(cSlotsInside), UInt64.max)  // -1
      s.up()
    }

    static let producer: Sched.Entry = { _ in
      var n: UInt64 = 0
      while true {
        slot { burn(100) }
        _ = atomic_add_u64(work_counter(cProduced), 1)
        if let it = items { Semaphore(it).up() }
        op(); burn(300)
        n &+= 1
        if n % 16 == 0 { Sched.sleep(microseconds: 2000 &+ Work.random() % 4000) }
      }
    }

    static let consumer: Sched.Entry = { _ in
      var n: UInt64 = 0
      while true {
        // Every other wait has a 3 ms timeout (a timer-queue entry); a timeout just retries.
        if let it = items, !Semaphore(it).down(timeoutMicroseconds: n % 2 == 0 ? 3000 : 0) {
          n &+= 1
          continue
        }
        _ = atomic_add_u64(work_counter(cConsumed), 1)
        slot { burn(100) }
        op(); burn(100)
        n &+= 1
      }
    }

    static let sleeper: Sched.Entry = { arg in
      let pl = percpuLock(UInt32(arg))
      while true {
        // Deadlines from 100 us to ~20 ms, so every lcpu's queue holds varied entries.
        let us = 100 &+ Work.random() % 20_000
        Sched.sleep(microseconds: us)
        if let p = pl {
          let l = SpinLock(p)
          if l.lock() { burn(20); l.unlock() }
        }
        if let p = sleepersRW {  // irq-save reader; the checker is its writer
          let l = RWLock(p)
          if l.readLock() { burn(20); l.readUnlock() }
          if !cpu_irqs_enabled() { _ = atomic_add_u64(work_counter(cSlotViolations), 1) }  // irq state not restored
        }
        op()
      }
    }

    /// The dynamic lock percpu.N (the list is newest first).
    static func percpuLock(_ i: UInt32) -> UnsafeMutablePointer<klock>? {
      var a = atomic_load_u64(&Inspect.root.pointee.dynamic_locks)
      while a != 0 {
        let r = UnsafeMutablePointer<smptop_lock>(bitPattern: UInt(a))!
        let k = UnsafeMutablePointer<klock>(bitPattern: UInt(r.pointee.address))!
        if r.pointee.kind == SMPTOP_LOCK_SPIN.rawValue
          && UInt32(a - abi_addr(klock_dynamic_record(0))) / abi_lock_stride() == i + 1
        {
          return k
        }
        a = r.pointee.next
      }
      return nil
    }

    /// Sums the tallies of the threads working on counter `kind`.
    static func tally(_ kind: UInt32) -> UInt64 {
      var sum: UInt64 = 0
      for i in 0..<Sched.used where kthread_at(i).pointee.work_kind == kind {
        sum &+= kthread_at(i).pointee.tally
      }
      return sum
    }

    static let checker: Sched.Entry = { _ in
      while true {
        Sched.sleep(microseconds: 100_000)
        var expected: UInt64 = 0
        var observed: UInt64 = 0
        var ok = true
        func compare(_ e: UInt64, _ o: UInt64) { expected &+= e; observed &+= o; if e != o { ok = false } }
        let s = SpinLock(klock_work_spin_ptr())
        if s.lock() { compare(tally(0), work_counter(cSpin).pointee); s.unlock() }
        let t = TicketLock(klock_work_ticket_ptr())
        if t.lock() { compare(tally(1), work_counter(cTicket).pointee); t.unlock() }
        let rw = RWLock(klock_work_rw_ptr())
        if rw.writeLock() { compare(tally(2), work_counter(cRW).pointee); rw.writeUnlock() }
        let m = Mutex(klock_work_mutex_ptr())
        if m.lock() { compare(tally(3), work_counter(cMutex).pointee); m.unlock() }
        if let p = sleepersRW {
          let l = RWLock(p)
          if l.writeLock() { burn(20); l.writeUnlock() }
        }
        let consumed = kword_load(work_counter(cConsumed))
        let produced = kword_load(work_counter(cProduced))
        if consumed > produced { ok = false }
        if kword_load(work_counter(cSlotViolations)) != 0 { ok = false }
        let w = kworkload_record()
        Sched.preemptDisable()  // the seq must not stay odd while another thread runs here
        abi_seq_begin(&w.pointee.seq)
        w.pointee.checks &+= 1
        if !ok { w.pointee.check_failures &+= 1 }
        w.pointee.expected = expected
        w.pointee.observed = observed
        abi_seq_end(&w.pointee.seq)
        Sched.preemptEnable()
        op()
      }
    }

    // MARK: scenarios

    static let abba: Sched.Entry = { which in
      let a = Mutex(klock_deadlock_a_ptr())
      let b = Mutex(klock_deadlock_b_ptr())
      Sched.sleep(microseconds: 200_000)
      let (first, second) = which == 0 ? (a, b) : (b, a)
      first.lock()
      op()
      // Both hold their first lock before either asks for its second: the cycle forms
      // whatever the lcpus' timing (a fixed pause let one thread finish first now and then).
      let held = abbaHeld()
      _ = atomic_add_u64(held, 1)
      while atomic_load_u64(held) < 2 { Sched.sleep(microseconds: 1000) }
      second.lock()  // never returns: the other thread holds it and waits for `first`
      op()
      second.unlock()
      first.unlock()
    }

    /// The deadlock scenario's count of abba threads holding their first lock (a hand-shake
    /// word of lcpu 0's scenario slot, which no other scenario of this run uses).
    static func abbaHeld() -> UnsafeMutablePointer<UInt64> { scenario_slot(0) }

    static let isrVictim: Sched.Entry = { _ in
      let l = SpinLock(klock_isr_misuse_ptr())
      // The other two misuse counters, once each: a release by a non-holder, and recursion
      // (the second lock() is refused instead of deadlocking).
      l.unlock()
      if l.lock() {
        if l.lock() { l.unlock() }
        l.unlock()
      }
      while true {
        if l.lock() { busy(microseconds: 2000); l.unlock() }  // held with interrupts on
        op()
        Sched.sleep(microseconds: 3000)
      }
    }

    /// From every lcpu's timer tick (interrupt context).
    static func timerTick() {
      guard Sched.running else { return }
      if scenario == .irqReentry { reentryTick() }
      guard scenario == .isrMisuse else { return }
      let l = SpinLock(klock_isr_misuse_ptr())
      if l.lock() { burn(20); l.unlock() }
      if LCPU.currentIndex == 0 {
        let m = Mutex(klock_work_mutex_ptr())
        if m.lock() { m.unlock() }  // refused and counted: a sleeping lock in an interrupt
      }
    }

    static let convoyHolder: Sched.Entry = { _ in
      let m = Mutex(klock_convoy_mutex_ptr())
      while true {
        if m.lock() { busy(microseconds: 20_000); m.unlock() }
        op()
        Sched.yield()
      }
    }

    static let convoyWaiter: Sched.Entry = { _ in
      let m = Mutex(klock_convoy_mutex_ptr())
      while true {
        if m.lock() { burn(100); m.unlock() }
        op()
        burn(500)
      }
    }

    static let convoySpinHolder: Sched.Entry = { _ in
      let l = SpinLock(klock_convoy_spin_ptr())
      while true {
        if l.lock() { busy(microseconds: 5000); l.unlock() }
        op()
        Sched.sleep(microseconds: 5000)
      }
    }

    static let convoySpinner: Sched.Entry = { _ in
      let l = SpinLock(klock_convoy_spin_ptr())
      while true {
        if l.lock() { burn(50); l.unlock() }
        op()
        Sched.sleep(microseconds: 1000)
      }
    }

    // MARK: wake-race

    /// A wait loop as every sleeping primitive has one: block, re-check the condition, and
    /// switch out only if it is still false. Its re-check waits (at most 50 us) until the
    /// waker has delivered its wake-up, so every wake-up lands between block() and the
    /// re-check: the thread is woken while it is still running.
    static let wakeWaiter: Sched.Entry = { arg in
      let slot = scenario_slot(UInt32(arg))
      let spin = SpinLock(klock_wake_race_spin_ptr())
      atomic_store_u64(&slot[0], Sched.currentID)
      if arg == 0, spin.lock() {
        Sched.sleep(microseconds: 1000)  // refused: preemption is off (sleep_in_atomic)
        spin.unlock()
      }
      while true {
        let delivered = atomic_load_u64(&slot[3])
        cpu_cli()
        Sched.block(SMPTOP_THREAD_BLOCKED_WAITQ, on: abi_addr(slot))
        atomic_store_u64(&slot[2], 0)
        atomic_store_u64(&slot[1], 1)  // armed: the waker may go
        let end = rdtsc() &+ 50 &* Timer.tscPerMs / 1000
        while atomic_load_u64(&slot[3]) == delivered && rdtsc() < end { cpu_pause() }
        while atomic_load_u64(&slot[2]) == 0 { Sched.schedule() }
        cpu_sti()
        if spin.lock() { burn(50); spin.unlock() }  // contended: SPINNING, then RUNNING again
        op()
      }
    }

    /// Sets the waiter's condition and wakes it, as soon as it is armed.
    static let wakeWaker: Sched.Entry = { arg in
      let slot = scenario_slot(UInt32(arg))
      let spin = SpinLock(klock_wake_race_spin_ptr())
      var polls: UInt64 = 0
      while true {
        while atomic_load_u64(&slot[1]) == 0 {
          cpu_pause()
          polls &+= 1
          if polls % 1024 == 0 { Sched.yield() }  // the waiter may share this lcpu
        }
        atomic_store_u64(&slot[1], 0)
        let id = atomic_load_u64(&slot[0])
        cpu_cli()
        atomic_store_u64(&slot[2], 1)
        Sched.wake(id)
        _ = atomic_add_u64(&slot[3], 1)
        cpu_sti()
        if spin.lock() { burn(50); spin.unlock() }
        op()
      }
    }

    // MARK: irq-reentry

    /// Keeps reentry.ticket for 2 ms stretches with interrupts on.
    static let reentryTicketHolder: Sched.Entry = { _ in
      let l = TicketLock(klock_reentry_ticket_ptr())
      while true {
        if l.lock() { busy(microseconds: 2000); l.unlock() }
        op()
        Sched.sleep(microseconds: 1000)
      }
    }

    /// Takes reentry.ticket often, so it is usually waiting (interrupts on) when its lcpu ticks.
    static let reentryTicketWaiter: Sched.Entry = { _ in
      let l = TicketLock(klock_reentry_ticket_ptr())
      while true {
        if l.lock() { burn(50); l.unlock() }
        op()
        burn(200)
      }
    }

    /// Reads reentry.rw for 2 ms stretches with interrupts on.
    static let reentryReader: Sched.Entry = { _ in
      let l = RWLock(klock_reentry_rw_ptr())
      while true {
        if l.readLock() { busy(microseconds: 2000); l.readUnlock() }
        op()
        Sched.sleep(microseconds: 500)
      }
    }

    /// Writes reentry.rw often, so a writer is usually pending while the reader reads.
    static let reentryWriter: Sched.Entry = { _ in
      let l = RWLock(klock_reentry_rw_ptr())
      while true {
        if l.writeLock() { burn(50); l.writeUnlock() }
        op()
        Sched.sleep(microseconds: 300)
      }
    }

    /// lcpu 1's timer tick takes both reentry locks (refused while its own thread waits for
    /// the ticket or reads the rw lock).
    static func reentryTick() {
      guard LCPU.currentIndex == lcpu(1) else { return }
      let t = TicketLock(klock_reentry_ticket_ptr())
      if t.lock() { burn(20); t.unlock() }
      let rw = RWLock(klock_reentry_rw_ptr())
      if rw.readLock() { burn(20); rw.readUnlock() }
    }

    // MARK: panic-console

    /// Takes the console lock, waits until guard.holder holds the lock's record guard, and
    /// raises #UD: the panic path then finds its own lcpu holding the console lock.
    static let guardVictim: Sched.Entry = { _ in
      let slot = scenario_slot(lcpu(1))
      Sched.sleep(microseconds: 300_000)  // let the workload get going first
      guard Console.lock.lock() else { return }
      atomic_store_u64(&slot[0], 1)
      while atomic_load_u64(&slot[1]) == 0 { cpu_pause() }
      fault_invalid_opcode()
    }

    /// Holds the console lock's record guard for 200 ms once the victim holds the lock, and
    /// checks that nobody wrote the record meanwhile.
    static let guardHolder: Sched.Entry = { _ in
      let slot = scenario_slot(lcpu(1))
      while atomic_load_u64(&slot[0]) == 0 { Sched.sleep(microseconds: 1000) }
      let k = klock_console_ptr()
      let r = k.pointee.rec
      cpu_cli()
      LockCore.meta(k)
      let before = atomic_load_u64(&r.pointee.seq)
      atomic_store_u64(&slot[1], 1)
      Timer.delay(microseconds: 200_000)
      let after = atomic_load_u64(&r.pointee.seq)
      LockCore.unmeta(k)
      cpu_sti()
      if before != after {
        let w = kworkload_record()
        Sched.preemptDisable()
        abi_seq_begin(&w.pointee.seq)
        w.pointee.check_failures &+= 1
        abi_seq_end(&w.pointee.seq)
        Sched.preemptEnable()
      }
      op()
      while true { Sched.sleep(microseconds: 100_000) }
    }
  }
#endif
