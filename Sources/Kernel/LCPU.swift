// LCPU: logical CPUs after Unikraft's lcpu model. Each lcpu owns one inspection record
// (struct smptop_lcpu) and one private per-lcpu area (struct lcpu_area, through GS).
//
// States (enum smptop_lcpu_state):
//   OFFLINE --BSP sends INIT--> INIT --AP reaches 64-bit code--> BUSY(1) --> IDLE
//   IDLE <--> BUSY(n): n = nesting of work stretches, interrupt handlers and remote calls
//   any --CPU exception--> HALTED (error_code = vector + 1); INIT --no answer--> HALTED
//       (error_code = LCPU.errorDidNotStart)
// Every change goes under the record's seq and closes the previous state's time into
// cycles_idle or cycles_busy. Only the owning lcpu changes its state, with interrupts off.

#if SMP_GUEST
  import KernelSupport

  /// Logical CPUs: registry, state changes and the idle loop.
  enum LCPU {
    /// HALTED error code of an lcpu that never answered INIT-SIPI-SIPI.
    static let errorDidNotStart: UInt64 = 0x100
    /// HALTED error code of an lcpu whose allocator lock refused it (BuddyLock.refused).
    static let errorLockRefused: UInt64 = 0x101
    /// start_claim values: the AP claimed its INIT record, or the BSP gave up on it.
    static let claimedByAP: UInt64 = 1, claimedByBSP: UInt64 = 2

    /// Claims lcpu `i`'s INIT record for one writer (an AP starting, or the BSP giving up on
    /// it): the first compare-and-swap wins, the loser leaves the record alone.
    static func claimStart(_ i: UInt32, by who: UInt64) -> Bool {
      atomic_cas_u64(&area(i).pointee.start_claim, 0, who)
    }

    /// Number of lcpus found in the MADT (the BSP included).
    nonisolated(unsafe) static var count: UInt32 = 0

    /// The per-lcpu area of lcpu `i`.
    static func area(_ i: UInt32) -> UnsafeMutablePointer<lcpu_area> { lcpu_area_at(i) }

    /// The inspection record of lcpu `i`.
    static func record(_ i: UInt32) -> UnsafeMutablePointer<smptop_lcpu> { abi_lcpu_record(i) }

    /// The area of the lcpu running this code.
    static var current: UnsafeMutablePointer<lcpu_area> { this_lcpu() }

    /// The index of the lcpu running this code.
    static var currentIndex: UInt32 { this_lcpu().pointee.index }

    /// Adds an lcpu with the given APIC id; returns its index, or nil when the table is full
    /// or the id cannot be reached with 8-bit xAPIC destinations.
    static func register(apicID: UInt32) -> UInt32? {
      guard count < SMPTOP_MAX_LCPUS, apicID < 0xFF else { return nil }
      let i = count
      let a = area(i)
      let stacks = lcpu_stacks_base(i)
      a.pointee.self_pointer = a
      a.pointee.record = record(i)
      a.pointee.index = i
      a.pointee.apic_id = apicID
      a.pointee.stack_bottom = stacks + stack_guard_size
      a.pointee.stack_top = stacks + kernel_stack_top_offset
      a.pointee.ist_bottom = a.pointee.stack_top + stack_guard_size
      a.pointee.ist_top = stacks + lcpu_stacks_stride
      let r = record(i)
      r.pointee.index = i
      r.pointee.apic_id = apicID
      r.pointee.stack_bottom = a.pointee.stack_bottom
      r.pointee.stack_top = a.pointee.stack_top
      apic_to_lcpu_table()[Int(apicID)] = UInt8(truncatingIfNeeded: i)
      count += 1
      return i
    }

    /// Whether lcpu `i` is running (IDLE or BUSY).
    static func isOnline(_ i: UInt32) -> Bool {
      let s = atomic_load_u32(&record(i).pointee.state)
      return s == SMPTOP_LCPU_IDLE.rawValue || s == SMPTOP_LCPU_BUSY.rawValue
    }

    /// The state of lcpu `i` as last published.
    static func state(_ i: UInt32) -> UInt32 { atomic_load_u32(&record(i).pointee.state) }

    /// Publishes a new state and depth for lcpu `r` under its seq; closes the previous
    /// state's time into its cycle counter. Interrupts must be off (or `r` not running yet).
    static func setState(
      _ r: UnsafeMutablePointer<smptop_lcpu>, _ state: smptop_lcpu_state, depth: UInt32,
      errorCode: UInt64 = 0
    ) {
      let now = rdtsc()
      abi_seq_begin(&r.pointee.seq)
      let elapsed = now &- r.pointee.state_since_tsc
      if r.pointee.state_since_tsc != 0 {
        if r.pointee.state == SMPTOP_LCPU_IDLE.rawValue { r.pointee.cycles_idle &+= elapsed }
        if r.pointee.state == SMPTOP_LCPU_BUSY.rawValue { r.pointee.cycles_busy &+= elapsed }
      }
      r.pointee.state = state.rawValue
      r.pointee.busy_depth = depth
      r.pointee.error_code = errorCode
      r.pointee.state_since_tsc = now
      abi_seq_end(&r.pointee.seq)
    }

    /// Enters one level of BUSY on this lcpu (work, an interrupt handler, a remote call).
    static func busyEnter() {
      setCurrentDepth(current.pointee.record.pointee.busy_depth &+ 1)
    }

    /// Leaves one level of BUSY; at depth 0 the lcpu is IDLE again.
    static func busyExit() {
      setCurrentDepth(current.pointee.record.pointee.busy_depth &- 1)
    }

    /// Sets this lcpu's busy depth (0 = IDLE, more = BUSY) and, while profiling, when that
    /// changes IDLE to BUSY or back, remembers when (the last LCPU_STATE_CHANGES times, newest
    /// first): the profiler tells from them which state a late sample's deadlines fell in
    /// (Profile.interrupt). Interrupts must be off.
    static func setCurrentDepth(_ depth: UInt32) {
      let a = current
      let r = a.pointee.record
      let state = depth == 0 ? SMPTOP_LCPU_IDLE : SMPTOP_LCPU_BUSY
      let changed = r.pointee.state != state.rawValue
      setState(r, state, depth: depth)
      if changed && Profile.periodTSC != 0 {
        let changes = lcpu_state_changes(a)
        var i = Int(LCPU_STATE_CHANGES) - 1
        while i > 0 {
          changes[i] = changes[i - 1]
          i -= 1
        }
        changes[0] = r.pointee.state_since_tsc
      }
    }

    /// Stops this lcpu's bookkeeping for good: HALTED with `errorCode`, timer stopped.
    static func halt(errorCode: UInt64) {
      let r = current.pointee.record
      setState(r, SMPTOP_LCPU_HALTED, depth: 0, errorCode: errorCode)
      LAPIC.write(LAPIC.Register.lvtTimer, LAPIC.masked | UInt32(Vector.timer))
      abi_store(&r.pointee.next_deadline_tsc, 0)
    }

    /// Registers the BSP as lcpu 0 and marks it BUSY while it boots.
    static func beginBootstrap() {
      let apicID = cpuid(1, 0).ebx >> 24
      _ = register(apicID: apicID)
      setState(record(0), SMPTOP_LCPU_BUSY, depth: 1)
    }

    /// Called by each AP in 64-bit code: BUSY while it sets itself up.
    static func beginAP() {
      setState(current.pointee.record, SMPTOP_LCPU_BUSY, depth: 1)
    }

    /// Ends this lcpu's start-up: BUSY(1) becomes IDLE and the lcpu counts as online.
    static func becomeOnline() {
      cpu_cli()
      busyExit()
      Inspect.lcpuOnline()
    }

    /// Ends the boot: every lcpu that could start is IDLE, the root says RUNNING.
    static func bootstrapDone() {
      Inspect.setStage(SMPTOP_BOOT_RUNNING)
      Console.log("boot: RUNNING, \(Inspect.root.pointee.lcpus_online)/\(count) lcpus online")
    }

    /// The loop every lcpu ends in: run what is due, else halt with interrupts on.
    /// Interrupt handlers run from the halt at depth 1 and bring the state back to IDLE.
    static func idleLoop() -> Never {
      while true {
        cpu_cli()
        Panic.demonstrateIfDue()
        Power.shutdownIfDue()
        Work.runIfDue()
        Sched.idle()  // run ready threads (returns when none is left)
        cpu_sti_hlt()
      }
    }
  }
#endif
