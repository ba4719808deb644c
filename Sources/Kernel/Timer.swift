// Timer: the per-lcpu LAPIC timer that drives each lcpu's scheduler clock. The TSC and
// LAPIC rates come from CPUID 0x40000010 when a hypervisor offers it, else from the PIT.
// The timer is one-shot, re-armed at each tick for an absolute TSC deadline (TSC-deadline
// mode when the CPU has it), so ticks do not drift and next_deadline_tsc is exact. With
// profiling on (Profile.swift) the timer is armed for the earlier of the queue's first entry
// and the lcpu's profile deadline; the tick's own deadline and period stay as they are.

#if SMP_GUEST
  import KernelSupport

  /// Per-lcpu LAPIC timers and the kernel's notion of time.
  enum Timer {
    /// IA32_TSC_DEADLINE.
    static let deadlineMSR: UInt32 = 0x6E0
    /// LAPIC timer divider used everywhere (divide configuration 0b0011 = 16).
    static let divider: UInt64 = 16
    /// TSC counts per millisecond.
    nonisolated(unsafe) static var tscPerMs: UInt64 = 0
    /// LAPIC timer counts per millisecond, after the divider.
    nonisolated(unsafe) static var lapicPerMs: UInt64 = 0
    /// Tick period in microseconds (`tick_us=` on the command line).
    nonisolated(unsafe) static var tickMicroseconds: UInt64 = 10_000
    /// Tick period in TSC counts.
    nonisolated(unsafe) static var periodTSC: UInt64 = 0
    /// Whether the timers run in TSC-deadline mode.
    nonisolated(unsafe) static var deadlineMode = false

    /// Measures the TSC and LAPIC timer rates (on the BSP, before the APs start).
    static func calibrate() {
      LAPIC.write(LAPIC.Register.timerDivide, 0x3)
      if CPUFeatures.hypervisorTSCkHz != 0 && CPUFeatures.hypervisorBuskHz != 0 {
        tscPerMs = CPUFeatures.hypervisorTSCkHz
        lapicPerMs = CPUFeatures.hypervisorBuskHz / divider
        Inspect.addFeature(SMPTOP_FEATURE_HYPERVISOR_FREQ.rawValue)
      } else {
        let rates = measureAgainstPIT(milliseconds: 20)
        tscPerMs = max(1, rates.tsc)
        lapicPerMs = max(1, rates.lapic)
      }
      deadlineMode = CPUFeatures.tscDeadline
      if deadlineMode { Inspect.addFeature(SMPTOP_FEATURE_TSC_DEADLINE.rawValue) }
      periodTSC = max(1, tickMicroseconds &* tscPerMs / 1000)
      Console.log(
        "timer: tsc \(tscPerMs)/ms lapic \(lapicPerMs)/ms (\(CPUFeatures.hypervisorTSCkHz != 0 ? "cpuid 0x40000010" : "PIT")), tick \(tickMicroseconds) us, \(deadlineMode ? "tsc-deadline" : "one-shot") mode"
      )
    }

    /// One simultaneous reading of the three clocks.
    struct ClockSample {
      /// PIT channel 2 count (counts down).
      var pit: UInt16
      /// LAPIC timer current count (counts down).
      var lapic: UInt32
      /// TSC in the middle of the other two readings.
      var tsc: UInt64
    }

    /// Reads PIT, LAPIC and TSC together; a reading the host interrupted (its TSC bracket
    /// is wide) is taken again, so a descheduled vCPU cannot skew the calibration.
    static func sampleClocks() -> ClockSample {
      var best = ClockSample(pit: 0, lapic: 0, tsc: 0)
      var narrowest = UInt64.max
      for _ in 0..<50 {
        let before = rdtsc()
        let pit = PIT.count()
        let lapic = LAPIC.read(LAPIC.Register.timerCurrentCount)
        let after = rdtsc()
        if after &- before < narrowest {
          narrowest = after &- before
          best = ClockSample(pit: pit, lapic: lapic, tsc: before &+ (after &- before) / 2)
        }
        if narrowest < 20_000 { break }  // a few microseconds: not interrupted
      }
      return best
    }

    /// Counts the TSC and the LAPIC timer against `milliseconds` of PIT time; returns both
    /// per millisecond.
    static func measureAgainstPIT(milliseconds: UInt64) -> (tsc: UInt64, lapic: UInt64) {
      LAPIC.write(LAPIC.Register.lvtTimer, LAPIC.masked | UInt32(Vector.timer))
      LAPIC.write(LAPIC.Register.timerInitialCount, 0xFFFF_FFFF)
      PIT.startCounting()
      let start = sampleClocks()
      let ticks = PIT.hz * milliseconds / 1000
      while UInt64(start.pit &- PIT.count()) < ticks { cpu_pause() }
      let end = sampleClocks()
      LAPIC.write(LAPIC.Register.timerInitialCount, 0)
      let pitTicks = UInt64(start.pit &- end.pit)
      guard pitTicks > 0 else { return (0, 0) }
      // rate per ms = counts * hz / (pitTicks * 1000)
      let tsc = (end.tsc &- start.tsc) &* (PIT.hz / 1000) / pitTicks
      let lapic = UInt64(start.lapic &- end.lapic) &* (PIT.hz / 1000) / pitTicks
      return (tsc, lapic)
    }

    /// Microseconds since kernel entry (0 until calibrated).
    static func microsecondsSinceBoot() -> UInt64 {
      guard tscPerMs != 0 else { return 0 }
      return (rdtsc() &- boot_entry_tsc()) &* 1000 / tscPerMs
    }

    /// Spins for `microseconds` on the TSC.
    static func delay(microseconds: UInt64) {
      let end = rdtsc() &+ microseconds &* tscPerMs / 1000
      while rdtsc() < end { cpu_pause() }
    }

    /// Starts this lcpu's tick; lcpus are staggered across one period so they do not all
    /// take their tick at the same moment.
    static func start() {
      let a = LCPU.current
      LAPIC.write(LAPIC.Register.timerDivide, 0x3)
      let mode: UInt32 = deadlineMode ? 2 << 17 : 0
      LAPIC.write(LAPIC.Register.lvtTimer, mode | UInt32(Vector.timer))
      // The SDM: in xAPIC mode the LVT write (MMIO) must be ordered before the first
      // IA32_TSC_DEADLINE write, which WRMSR alone does not do; without it the lcpu can
      // miss its first deadline and never tick again.
      if deadlineMode { cpu_mfence() }
      let stagger = periodTSC / UInt64(max(LCPU.count, 1)) &* UInt64(a.pointee.index)
      a.pointee.timer_deadline = rdtsc() &+ periodTSC &+ stagger
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      Profile.start(a, now: rdtsc())
      add(deadline: a.pointee.timer_deadline, thread: 0)  // the tick is the queue's owner-0 entry
      if irqs { cpu_sti() }
    }

    /// Programs this lcpu's timer to fire at TSC `deadline`, or at its profile deadline when
    /// that comes first, and publishes it.
    static func arm(_ queued: UInt64) {
      let sample = LCPU.current.pointee.prof_deadline
      let deadline = sample != 0 && sample < queued ? sample : queued
      abi_store(&LCPU.current.pointee.record.pointee.next_deadline_tsc, deadline)
      if deadlineMode {
        wrmsr(deadlineMSR, deadline)
        return
      }
      let now = rdtsc()
      let delta = deadline > now ? deadline - now : 0
      let count = max(1, min(delta &* lapicPerMs / tscPerMs, 0xFFFF_FFFF))
      LAPIC.write(LAPIC.Register.timerInitialCount, UInt32(truncatingIfNeeded: count))
    }

    /// The timer interrupt: fires every due entry of this lcpu's timer queue (TimerQueue.swift)
    /// and re-arms for the earliest one left. The tick entry (owner 0) counts ticks (every
    /// period that passed), re-queues itself for the next period boundary and runs the
    /// periodic hooks; a thread's entry wakes the sleeping thread.
    static func interrupt(_ frame: UnsafeMutablePointer<trap_frame>) {
      let now = rdtsc()
      let a = LCPU.current
      let r = a.pointee.record
      abi_inc(&r.pointee.irq_timer)
      abi_store(&r.pointee.last_tick_rip, frame.pointee.rip)
      abi_store(&r.pointee.last_tick_tsc, now)
      Sched.sampleTick(frame, now: now)
      Profile.interrupt(frame, a, now: now)

      var tickFired = false
      while let t = popDue(now) {
        publishQueue(fired: now &- t.deadline)
        if Trace.on(SMPTOP_TRACE_TIMER) {
          Trace.emitIRQsOff(
            SMPTOP_TRACE_TIMER_FIRED, object: t.thread, arg: now &- t.deadline, arg2: t.deadline)
        }
        if t.thread == 0 {
          var deadline = a.pointee.timer_deadline
          var periods: UInt64 = 0
          while deadline <= now && periods < 1000 {
            deadline &+= periodTSC
            periods += 1
          }
          if deadline <= now { deadline = now &+ periodTSC }  // far behind: start afresh
          abi_add(&r.pointee.ticks, periods)
          a.pointee.timer_deadline = deadline
          add(deadline: deadline, thread: 0)
          tickFired = periods != 0
        } else {
          Sched.timerExpired(t.thread)
        }
      }
      let next = earliest
      arm(next != 0 ? next : now &+ periodTSC)
      publishQueue(fired: nil)

      if tickFired {
        Work.tick(now: now)
        Panic.tick(now: now)
        Power.tick(now: now)
        VirtioNet.tick(now: now)
        Sched.tick()
        Workload.timerTick()
      }
      LAPIC.endOfInterrupt()
    }
  }
#endif
