// Power: the clean way out. The kernel records why it stops in the root (boot_stage
// SHUTDOWN, shutdown_code), then writes the code to QEMU's isa-debug-exit port (0xf4;
// QEMU exits with code * 2 + 1). Without that device it falls back to ACPI S5 through the
// FADT's PM1a control port (SLP_TYP 0, as QEMU's \_S5), and halts if both fail.
//
// Shutdown codes: 0 = clean, 1 = at least one lcpu is HALTED (panicked or never started).

#if SMP_GUEST
  import KernelSupport
  import Synchronization

  /// Power-off.
  enum Power {
    /// isa-debug-exit's I/O port.
    static let debugExitPort: UInt16 = 0xF4
    /// Seconds after boot the `shutdown=` key asked for, if any.
    nonisolated(unsafe) static var shutdownSeconds: UInt64? = nil
    /// The lcpu (index + 1) that claimed the shutdown once its time came; 0 = not yet.
    /// Any running lcpu can claim it, so a panicked BSP does not keep the machine on.
    static let claimedBy = Atomic<UInt32>(0)

    /// Arms a power-off `seconds` after kernel entry.
    static func scheduleShutdown(afterSeconds seconds: UInt64) {
      shutdownSeconds = seconds
    }

    /// Timer hook: the first lcpu to see the shutdown time claims the shutdown.
    static func tick(now: UInt64) {
      guard let s = shutdownSeconds, claimedBy.load(ordering: .relaxed) == 0,
        now &- boot_entry_tsc() >= s &* 1000 &* Timer.tscPerMs
      else { return }
      _ = claimedBy.compareExchange(expected: 0, desired: LCPU.currentIndex &+ 1, ordering: .relaxed)
    }

    /// Whether this lcpu claimed the shutdown (the scheduler then runs the idle loop).
    static var isClaimedHere: Bool { claimedBy.load(ordering: .relaxed) == LCPU.currentIndex &+ 1 }

    /// From the idle loop: powers off if this lcpu claimed the shutdown.
    static func shutdownIfDue() {
      guard claimedBy.load(ordering: .relaxed) == LCPU.currentIndex &+ 1 else { return }
      var halted: UInt64 = 0
      for i in 0..<LCPU.count where LCPU.state(i) == SMPTOP_LCPU_HALTED.rawValue { halted += 1 }
      powerOff(code: halted == 0 ? 0 : 1)
    }

    /// Prints the per-lcpu summary, records the shutdown and turns the machine off.
    static func powerOff(code: UInt64) -> Never {
      if !Console.quiet { summary() }
      let root = Inspect.root
      root.pointee.shutdown_code = code
      Inspect.setStage(SMPTOP_BOOT_SHUTDOWN)
      Console.log("power: shutdown, code \(code)")
      outl(debugExitPort, UInt32(truncatingIfNeeded: code))
      if ACPI.pm1aControlPort != 0 { outw(ACPI.pm1aControlPort, 1 << 13) }
      Console.log("power: no way to power off; halting")
      cpu_halt_forever()
    }

    /// One console line per lcpu with its counters.
    static func summary() {
      for i in 0..<LCPU.count {
        let r = LCPU.record(i).pointee
        let total = r.cycles_idle &+ r.cycles_busy
        let busy = total == 0 ? 0 : r.cycles_busy &* 100 / total
        Console.log(
          "lcpu \(i): state \(r.state) ticks \(r.ticks) irq_timer \(r.irq_timer) ipi \(r.irq_ipi)/\(r.ipi_sent) remote \(r.remote_calls) loops \(r.work_loops) busy \(busy)% runq checks \(r.runq_checks) failures \(r.runq_check_failures) sleep-in-atomic \(r.sleep_in_atomic)"
        )
      }
    }
  }
#endif
