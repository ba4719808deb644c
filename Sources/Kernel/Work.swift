// Work: the built-in work pattern that keeps the lcpu states moving until a real workload
// exists. Every lcpu alternates BUSY stretches of 2-4 ms of computation (counting
// work_loops) with IDLE halts of 20-60 ms (longer on big machines, so the host's load
// stays about the same whatever -smp is). The BSP sends a remote call to the next lcpu
// every 50 ms, and every 250 ms wakes another one early with a wake-up IPI.

#if SMP_GUEST
  import KernelSupport

  /// The built-in busy/idle pattern and the BSP's remote calls.
  enum Work {
    /// Ticks between the BSP's remote calls.
    static let remoteCallTicks: UInt64 = 5
    /// Ticks between the BSP's early wake-ups.
    static let wakeupTicks: UInt64 = 25
    /// Next lcpu the BSP calls or wakes.
    nonisolated(unsafe) static var nextTarget: UInt32 = 1

    /// A remote call: a short computation of `rounds` xorshift rounds.
    static let probe: IPI.RemoteFunction = { rounds in
      var x: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ rounds
      for _ in 0..<rounds { x = xorshift(x) }
      LCPU.current.pointee.work_random ^= x
    }

    /// One xorshift64 step.
    @inline(__always)
    static func xorshift(_ v: UInt64) -> UInt64 {
      var x = v
      x ^= x << 13
      x ^= x >> 7
      x ^= x << 17
      return x
    }

    /// This lcpu's next pseudo-random number.
    static func random() -> UInt64 {
      let a = LCPU.current
      if a.pointee.work_random == 0 {
        a.pointee.work_random = 0x2545_F491_4F6C_DD1D &+ UInt64(a.pointee.index)
      }
      a.pointee.work_random = xorshift(a.pointee.work_random)
      return a.pointee.work_random
    }

    /// Timer hook: makes a stretch due when its time has come; on the BSP, sends the
    /// periodic remote calls and wake-ups.
    static func tick(now: UInt64) {
      let a = LCPU.current
      if a.pointee.work_next_tsc == 0 {
        a.pointee.work_next_tsc = now &+ idleGap()
      } else if now >= a.pointee.work_next_tsc {
        atomic_store_u64(&a.pointee.work_pending, 1)
      }
      if a.pointee.index == 0 && LCPU.count > 1 {
        let ticks = a.pointee.record.pointee.ticks
        if ticks % remoteCallTicks == 0 {
          IPI.call(advanceTarget(), probe, 2000)
        }
        if ticks % wakeupTicks == 0 {
          let t = advanceTarget()
          atomic_store_u64(&LCPU.area(t).pointee.work_pending, 1)
          IPI.wake(t)
        }
      }
    }

    /// The next AP in round-robin order.
    static func advanceTarget() -> UInt32 {
      let t = nextTarget
      nextTarget = t + 1 < LCPU.count ? t + 1 : 1
      return t
    }

    /// Idle time before the next stretch, scaled with the number of lcpus.
    static func idleGap() -> UInt64 {
      let ms = 20 &+ random() % 40
      let scale = max(1, UInt64(LCPU.count) / 4)
      return ms &* scale &* Timer.tscPerMs
    }

    /// From the idle loop (interrupts off): runs one BUSY stretch if one is due. The stretch
    /// runs with interrupts on, so timer ticks and IPIs nest inside it.
    static func runIfDue() {
      let a = LCPU.current
      guard atomic_xchg_u64(&a.pointee.work_pending, 0) != 0 else { return }
      let r = a.pointee.record
      let end = rdtsc() &+ (2 &+ random() % 3) &* Timer.tscPerMs
      LCPU.busyEnter()
      cpu_sti()
      AllocChurn.stretch(until: end)  // the allocator workload (AllocChurn.swift); returns at `end`
      var x = random()
      while rdtsc() < end {
        for _ in 0..<1000 { x = xorshift(x) }
        _ = atomic_add_u64(&r.pointee.work_loops, 1)  // workload threads on this lcpu add too
      }
      cpu_cli()
      a.pointee.work_random ^= x
      LCPU.busyExit()
      a.pointee.work_next_tsc = rdtsc() &+ idleGap()
    }
  }
#endif
