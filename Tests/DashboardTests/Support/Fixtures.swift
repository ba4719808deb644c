import Dashboard
import Foundation
import Inspector

/// Synthetic snapshots for view tests.
///
/// `LCPURecord`, `GuestInfo`, `PanicRecord`, `VCPUState` and `LCPURates` have public fields but no public
/// initializer, so a blank value is decoded from JSON once and then edited through its public vars.
enum Fixtures {
  struct DecodeFailure: Error { var what: String }

  static func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(json.utf8))
  }

  static func blankLCPU() throws -> LCPURecord {
    try decode(
      LCPURecord.self,
      """
      {"index":0,"apicID":0,"state":"IDLE","rawState":2,"busyDepth":0,"errorCode":0,"stateSinceTSC":0,
       "irqTimer":0,"irqIPI":0,"irqDevice":0,"irqSpurious":0,"ipiSent":0,"ipiReceived":0,"remoteCalls":0,
       "ticks":0,"cyclesIdle":0,"cyclesBusy":0,"currentThread":0,"nextDeadlineTSC":0,"lastTickRIP":0,
       "lastTickTSC":0,"stackBottom":0,"stackTop":0,"workLoops":0,"consistency":{"state":"consistent"}}
      """)
  }

  static func guest(lcpus: Int) throws -> GuestInfo {
    var g = try decode(
      GuestInfo.self,
      """
      {"abiVersion":1,"buildID":"3f2a9c","bootStage":2,"features":3,"bootTSC":1000000,"tscPerMs":2000000,
       "lapicPerMs":100000,"tickMicroseconds":1000,"lcpusPresent":0,"lcpusOnline":0,"ramBytes":134217728,
       "kernelStart":1048576,"kernelEnd":2097152,"textStart":1048576,"textEnd":1572864,"shutdownCode":0,
       "commandLine":"workload=mixed"}
      """)
    g.lcpusPresent = UInt64(lcpus)
    g.lcpusOnline = UInt64(lcpus)
    return g
  }

  static func panic(rip: UInt64, backtrace: [UInt64]) throws -> PanicRecord {
    var p = try decode(
      PanicRecord.self,
      """
      {"vector":14,"errorCode":2,"rip":0,"rsp":1200000,"rbp":1200128,"rflags":66118,"cr2":57005,"tsc":0,
       "backtrace":[],"consistency":{"state":"consistent"}}
      """)
    p.rip = rip
    p.backtrace = backtrace
    return p
  }

  static func rates(
    _ entries: [(index: Int, busy: Double?, timer: Double, ipi: Double, device: Double)], interval: Double = 1
  )
    throws -> SnapshotRates
  {
    let items = entries.map { e in
      """
      {"index":\(e.index),\(e.busy.map { "\"busyPercent\":\($0)," } ?? "")"timerIRQsPerSecond":\(e.timer),
       "ipisPerSecond":\(e.ipi),"deviceIRQsPerSecond":\(e.device),"spuriousPerSecond":\(e.index == 2 ? 1 : 0),
       "ipisSentPerSecond":\(e.ipi / 2),"ticksPerSecond":\(e.timer),"workLoopsPerSecond":\(e.busy.map { $0 * 1000 } ?? 0)}
      """
    }
    return try decode(
      SnapshotRates.self,
      "{\"intervalSeconds\":\(interval),\"counterReset\":false,\"lcpus\":[\(items.joined(separator: ","))],"
        + "\"locks\":[],\"virtqueues\":[],\"allocOrders\":[],\"workloadOpsPerSecond\":[],\"timersFiredPerSecond\":[]}"
    )
  }

  static let registerNames = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15",
    "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base", "k_gs_base", "cr0", "cr2",
    "cr3",
    "cr4", "cr8", "efer",
  ]

  static func vcpu(_ index: Int, rip: UInt64, halted: Bool) throws -> VCPUState {
    var v = try decode(VCPUState.self, "{\"index\":\(index),\"halted\":false,\"registers\":[]}")
    v.halted = halted
    v.registers = registerNames.enumerated().map { n, name in
      let value: UInt64
      switch name {
      case "rip": value = rip
      case "eflags": value = 0x246
      case "cs": value = 0x8
      case "ss", "ds", "es", "fs", "gs": value = 0x10
      case "cr0": value = 0x8001_0033
      case "cr3": value = 0x1000
      case "cr4": value = 0x20
      case "efer": value = 0xd00
      case "rsp": value = 0x0012_4f00 + UInt64(index) * 0x1_0000
      case "rbp": value = 0x0012_4f40 + UInt64(index) * 0x1_0000
      default: value = UInt64(n * 0x1111 + index)
      }
      return VCPUState.Register(name: name, value: value)
    }
    return v
  }

  /// Code addresses and names for the test symbolizer.
  static let symbols: [(start: UInt64, name: String)] = [
    (0x10_0000, "boot.start"),
    (0x10_1000, "kernel.idleLoop()"),
    (0x10_1400, "kernel.Workload.spin(iterations:)"),
    (0x10_2000, "kernel.Scheduler.tick(now:)"),
    (0x10_3000, "kernel.Buddy.allocate(order:)"),
    (0x10_4000, "kernel.Traps.pageFault(frame:)"),
    (0x10_5000, "generic specialization <Swift.Int> of kernel.SpinLock.withLock<A>(_:) -> A"),
  ]

  /// "name+0x1a" for addresses within 4 KiB after a known start.
  static func symbolize(_ address: UInt64) -> String? {
    guard let s = symbols.last(where: { $0.start <= address }), address - s.start < 0x1000 else { return nil }
    let offset = address - s.start
    return offset == 0 ? s.name : s.name + "+0x" + String(offset, radix: 16)
  }

  /// The bundled guest as `smptop run` names it: the file name of its ELF.
  static let target = TargetInfo(qemuVersion: "9.2.0", machine: "pc-q35-9.2", name: "Kernel")
  /// Some other kernel without the inspection ABI, attached with `--kernel hello.elf`.
  static let genericTarget = TargetInfo(qemuVersion: "9.2.0", machine: "pc-q35-9.2", name: "hello.elf")

  /// The newest tick: 12.5 s after boot at 2 GHz.
  static let now: UInt64 = 1_000_000 + 25_000_000_000

  /// Four lcpus in every interesting state: busy, idle, read while changing, halted on a #PF.
  static func fourLCPUs(stopped: Bool = false) throws -> (Snapshot, SnapshotRates) {
    let blank = try blankLCPU()
    var records: [LCPURecord] = []
    for i in 0..<4 {
      var r = blank
      r.index = UInt32(i)
      r.apicID = UInt32(i * 2)
      r.lastTickTSC = now - UInt64(i) * 1000
      r.irqTimer = 12_500 + UInt64(i)
      r.ticks = 12_500
      r.stackBottom = 0x20_0000 + UInt64(i) * 0x1_0000
      r.stackTop = r.stackBottom + 0x1_0000
      records.append(r)
    }
    records[0].state = .busy
    records[0].busyDepth = 1
    records[0].currentThread = 3
    records[0].lastTickRIP = 0x10_141a
    records[0].nextDeadlineTSC = now + 1_600_000  // 0.8 ms
    records[1].state = .idle
    records[1].lastTickRIP = 0x10_1004
    records[1].nextDeadlineTSC = now + 2_000_000_000  // 1 s
    records[2].state = .busy
    records[2].busyDepth = 2
    records[2].currentThread = 7
    records[2].lastTickRIP = 0x10_5088
    records[2].nextDeadlineTSC = now - 300_000  // overdue 150 µs
    records[2].consistency = .inconsistent(retries: 16)
    records[3].state = .halted
    records[3].errorCode = 15
    records[3].lastTickRIP = 0x10_2010
    records[3].panic = try panic(rip: 0x10_303c, backtrace: [0x10_2010, 0x10_1444, 0x10_0020])
    let vcpus =
      try stopped
      ? (0..<4).map { try vcpu($0, rip: [0x10_1420, 0x10_1001, 0x10_5090, 0x10_4010][$0], halted: $0 == 1) }
      : nil
    let snap = Snapshot(
      timeNanoseconds: 5_000_000_000, source: stopped ? .gdbstub : .sharedRAM, guest: try guest(lcpus: 4),
      lcpus: records, vcpus: vcpus, runState: stopped ? "paused" : "running",
      problems: ["lcpu 2: record still changing after 16 retries"], costNanoseconds: 41_000,
      pauseNanoseconds: stopped ? 1_250_000 : 0)
    let rates = try rates([
      (0, 87.5, 1000, 120, 2500), (1, 3.2, 1000, 4, 0), (2, 55, 1000, 3400, 12), (3, nil, 0, 0, 0),
    ])
    return (snap, rates)
  }

  /// `n` lcpus with a spread of loads, one halted, one offline, one inconsistent.
  static func manyLCPUs(_ n: Int) throws -> (Snapshot, SnapshotRates) {
    let blank = try blankLCPU()
    var records: [LCPURecord] = []
    var rateEntries: [(index: Int, busy: Double?, timer: Double, ipi: Double, device: Double)] = []
    for i in 0..<n {
      var r = blank
      r.index = UInt32(i)
      r.apicID = UInt32(i)
      r.lastTickTSC = now
      r.state = i % 3 == 2 ? .idle : .busy
      r.busyDepth = r.state == .busy ? UInt32(1 + i % 2) : 0
      r.currentThread = r.state == .busy ? UInt64(100 + i) : 0
      r.lastTickRIP = r.state == .busy ? 0x10_1400 + UInt64(i * 4) : 0x10_1004
      r.nextDeadlineTSC = now + UInt64(1 + i % 5) * 400_000
      var busy: Double? = Double((i * 37) % 101)
      if i == 42 {
        r.state = .halted
        r.errorCode = 15
        r.panic = try panic(rip: 0x10_3042, backtrace: [0x10_2010])
        busy = nil
      }
      if i == n - 1 && n > 8 {
        r.state = .offline
        r.lastTickRIP = 0
        r.nextDeadlineTSC = 0
        r.lastTickTSC = 0
        busy = nil
      }
      if i == 13 { r.consistency = .inconsistent(retries: 16) }
      records.append(r)
      rateEntries.append((i, busy, busy == nil ? 0 : 1000, Double(i * 10), Double(i % 4 == 0 ? 1500 : 0)))
    }
    let snap = Snapshot(
      timeNanoseconds: 9_000_000_000, source: .sharedRAM, guest: try guest(lcpus: n), lcpus: records,
      runState: "running", costNanoseconds: 180_000)
    return (snap, try rates(rateEntries))
  }

  /// A guest without the ABI: two vCPUs seen through the gdbstub with the VM stopped.
  static func generic(withRegisters: Bool = true) throws -> Snapshot {
    Snapshot(
      timeNanoseconds: 1_000_000_000, source: .gdbstub, guest: nil, lcpus: [],
      vcpus: withRegisters
        ? [try vcpu(0, rip: 0x10_1420, halted: false), try vcpu(1, rip: 0x10_1001, halted: true)] : nil,
      runState: "paused", costNanoseconds: 2_300_000, pauseNanoseconds: 2_100_000)
  }

  /// Bytes of a small function and its address: push rbp; mov rbp,rsp; mov rax,[rdi+8]; add rax,1;
  /// mov [rdi+8],rax; ud2; pop rbp; ret.
  static let codeBase: UInt64 = 0x10_3030
  static let code: [UInt8] = [
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x8b, 0x47, 0x08, 0x48, 0x83, 0xc0, 0x01, 0x48, 0x89, 0x47, 0x08, 0x0f,
    0x0b,
    0x5d, 0xc3,
  ]
}
