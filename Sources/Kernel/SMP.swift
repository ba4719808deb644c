// SMP: starting the APs. The BSP copies the 16-bit trampoline (trampoline.S) below 1 MiB,
// marks every AP INIT and sends INIT to all of them, waits 10 ms, then sends the start-up
// IPIs (twice, 200 us apart, as the SDM asks) -- all APs boot in parallel, each finding its
// own stack and per-lcpu area through its APIC id. Each AP ends in `ap_main`.

#if SMP_GUEST
  import KernelSupport

  /// Application-processor start-up.
  enum SMP {
    /// Starts every registered AP and waits until each is IDLE or given up on.
    static func startAPs() {
      Inspect.setStage(SMPTOP_BOOT_SMP)
      let n = LCPU.count
      guard n > 1 else {
        Console.log("smp: 1/1 lcpus online")
        return
      }
      copyTrampoline()
      let startTSC = rdtsc()
      for i in 1..<n {
        LCPU.setState(LCPU.record(i), SMPTOP_LCPU_INIT, depth: 0)
        LAPIC.sendInit(to: LCPU.area(i).pointee.apic_id)
      }
      Timer.delay(microseconds: 10_000)
      let page = UInt32(TRAMPOLINE_ADDR / PAGE_SIZE)
      for i in 1..<n { LAPIC.sendStartup(to: LCPU.area(i).pointee.apic_id, page: page) }
      Timer.delay(microseconds: 200)
      for i in 1..<n where LCPU.state(i) == SMPTOP_LCPU_INIT.rawValue {
        LAPIC.sendStartup(to: LCPU.area(i).pointee.apic_id, page: page)
      }

      // Under TCG every vCPU is a host thread; allow generously for a busy host.
      let timeout = rdtsc() &+ (2000 &+ 100 &* UInt64(n)) &* Timer.tscPerMs
      while settled() < n - 1 && rdtsc() < timeout { cpu_pause() }
      for i in 1..<n where LCPU.state(i) == SMPTOP_LCPU_INIT.rawValue {
        guard LCPU.claimStart(i, by: LCPU.claimedByBSP) else { continue }  // it is starting after all
        LCPU.setState(LCPU.record(i), SMPTOP_LCPU_HALTED, depth: 0, errorCode: LCPU.errorDidNotStart)
        Console.log("smp: lcpu \(i) (apic id \(LCPU.area(i).pointee.apic_id)) did not start")
      }
      let ms = (rdtsc() &- startTSC) / Timer.tscPerMs
      Console.log(
        "smp: \(Inspect.root.pointee.lcpus_online + 1)/\(n) lcpus online (APs started in \(ms) ms)")
    }

    /// APs that are done starting: online (reached IDLE once) or HALTED.
    static func settled() -> UInt32 {
      var halted: UInt32 = 0
      for i in 1..<LCPU.count where LCPU.state(i) == SMPTOP_LCPU_HALTED.rawValue { halted += 1 }
      return UInt32(truncatingIfNeeded: atomic_load_u64(&Inspect.root.pointee.lcpus_online)) + halted
    }

    /// Copies the real-mode trampoline to TRAMPOLINE_ADDR (the SIPI vector's page).
    static func copyTrampoline() {
      let start = trampoline_image_start()
      let size = Int(trampoline_image_end() - start)
      guard let from = UnsafeRawPointer(bitPattern: UInt(start)),
        let to = UnsafeMutableRawPointer(bitPattern: UInt(TRAMPOLINE_ADDR))
      else { return }
      to.copyMemory(from: from, byteCount: size)
    }
  }

  /// Every AP's 64-bit entry (trampoline.S): its GS base already points at its area.
  @c func ap_main(_ index: UInt32) -> Never {
    // An AP so late that the BSP already gave up on it (and writes its record) stays out of the way.
    guard LCPU.claimStart(index, by: LCPU.claimedByAP) else { cpu_halt_forever() }
    LCPU.beginAP()
    GDT.loadTSS(lcpu: index)
    LAPIC.enable()
    Timer.start()
    Console.detail("lcpu \(index) online (apic id \(LCPU.current.pointee.apic_id))")
    LCPU.becomeOnline()
    LCPU.idleLoop()
  }
#endif
