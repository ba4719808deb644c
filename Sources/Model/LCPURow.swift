/// One lcpu as every output shows it: the lcpus pane and the text snapshot.
public struct LCPURow: Sendable, Identifiable {
  /// The lcpu's index (the row's identity).
  public var id: UInt32 { record.index }
  /// The record the row was made from.
  public var record: LCPURecord
  /// The interval's rates, when two snapshots were compared.
  public var rates: LCPURates?
  /// Busy share, 0...100: the interval's, else the lifetime's (nil when neither is known).
  public var busyPercent: Double?
  /// Whether `busyPercent` is the lifetime share (there was no interval to measure).
  public var busyIsLifetime: Bool
  /// All interrupts per second over the interval.
  public var irqPerSecond: Double?
  /// Where the lcpu runs (nil when not known).
  public var rip: UInt64?
  /// Whether `rip` is exact (a stopped vCPU's register, a fault's RIP) rather than the last tick's sample.
  public var ripExact: Bool
  /// Seconds until the next timer deadline (negative once it has passed).
  public var due: Double?
  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of an lcpu row.
  public struct Cells: Sendable, Equatable, Codable {
    /// The lcpu's index.
    public var lcpu: String
    /// Its local APIC id.
    public var apic: String
    /// "busy", "idle", "OFFLINE", "HALTED", "UNREADABLE".
    public var state: String
    /// What the busy meter says: "12.5%", the state ("offline", "halted"), "?" when unreadable,
    /// "stopped" while the VM is not running, "--" before the share is known.
    public var busy: String
    /// All interrupts per second.
    public var irq: String
    /// Timer interrupts per second.
    public var timer: String
    /// Device interrupts per second.
    public var device: String
    /// IPIs received per second.
    public var ipi: String
    /// Spurious interrupts per second.
    public var spurious: String
    /// IPIs sent per second.
    public var sent: String
    /// Scheduler loops per second.
    public var loops: String
    /// The current thread's id, "-" for none.
    public var thread: String
    /// Time until the next timer deadline, "late 3.0ms" once passed, "-" for none, "?" without a clock.
    public var due: String
    /// Where it runs: a symbol, an address, "-", or why the record could not be read.
    public var rip: String
    /// " " consistent, "~" changing while read, "!" unreadable.
    public var marker: String
  }

  /// The rows of `snapshot`'s lcpus, in record order.
  ///
  /// - Parameters:
  ///   - rates: the interval's rates, when two snapshots were compared.
  ///   - symbolize: names RIPs.
  public static func rows(
    _ snapshot: Snapshot, rates: SnapshotRates?, style: CellStyle = .unicode, symbolize: (UInt64) -> String?
  ) -> [LCPURow] {
    var rateByIndex: [UInt32: LCPURates] = [:]
    for r in rates?.lcpus ?? [] where rateByIndex[r.index] == nil { rateByIndex[r.index] = r }
    var vcpuByIndex: [Int: VCPUState] = [:]
    for v in snapshot.vcpus ?? [] where vcpuByIndex[v.index] == nil { vcpuByIndex[v.index] = v }
    let stopped = snapshot.runState.map { !$0.isRunning } == true
    return snapshot.lcpus.map { r in
      LCPURow(
        r, rates: rateByIndex[r.index], vcpu: vcpuByIndex[Int(r.index)], clock: snapshot.clock,
        vmStopped: stopped, style: style, symbolize: symbolize)
    }
  }

  /// What a busy meter shows without a share: "stopped" while the VM is not running, else "--".
  public static func noShare(vmStopped: Bool) -> String { vmStopped ? "stopped" : "--" }

  /// One row.
  ///
  /// - Parameters:
  ///   - vcpu: the lcpu's stopped vCPU, whose RIP is exact.
  ///   - vmStopped: QEMU says the VM is not running (no interval to measure).
  public init(
    _ r: LCPURecord, rates rate: LCPURates?, vcpu: VCPUState?, clock: GuestClock, vmStopped: Bool,
    style: CellStyle, symbolize: (UInt64) -> String?
  ) {
    record = r
    rates = rate
    busyIsLifetime = rate == nil
    if let rate {
      busyPercent = rate.busyPercent
      irqPerSecond =
        rate.timerIRQsPerSecond + rate.ipisPerSecond + rate.deviceIRQsPerSecond + rate.spuriousPerSecond
    } else {
      let total = r.cyclesBusy &+ r.cyclesIdle
      busyPercent = total == 0 ? nil : 100 * Double(r.cyclesBusy) / Double(total)
      irqPerSecond = nil
    }
    // RIP: a stopped vCPU's register is exact; a fault's RIP says where it died; else the last tick's sample.
    if let v = vcpu, let value = v.value(of: "rip") {
      rip = value
      ripExact = true
    } else if r.state == .halted, let panic = r.panic {
      rip = panic.rip
      ripExact = true
    } else {
      rip = r.lastTickRIP == 0 ? nil : r.lastTickRIP
      ripExact = false
    }
    due = clock.until(r.nextDeadlineTSC)

    let busy: String
    switch r.state {
    case .offline, .initializing: busy = r.stateLabel.lowercased()
    case .halted: busy = "halted"
    default:
      busy = busyPercent.map { Format.fixed($0, decimals: 1) + "%" } ?? Self.noShare(vmStopped: vmStopped)
    }
    var dueText = r.nextDeadlineTSC == 0 ? style.none : "?"
    if let due { dueText = Format.due(seconds: due, micro: style.micro) }
    cells = Cells(
      lcpu: String(r.index), apic: String(r.apicID), state: r.stateLabel, busy: busy,
      irq: style.rate(irqPerSecond), timer: style.rate(rate?.timerIRQsPerSecond),
      device: style.rate(rate?.deviceIRQsPerSecond), ipi: style.rate(rate?.ipisPerSecond),
      spurious: style.rate(rate?.spuriousPerSecond), sent: style.rate(rate?.ipisSentPerSecond),
      loops: style.rate(rate?.workLoopsPerSecond),
      thread: r.currentThread == 0 ? style.none : String(r.currentThread),
      due: dueText, rip: rip.map { symbolize($0) ?? Format.address($0) } ?? style.none,
      marker: TextTable.marker(r.consistency))
    if case .unreadable(let reason) = r.consistency {
      cells.state = "UNREADABLE"
      cells.busy = "?"
      cells.rip = reason
      busyPercent = nil
    }
  }

  /// The columns of the text table (the pane's titles; the RIP column's title says what the RIP is).
  public static func columns(ripTitle: String = "RIP") -> [TextColumn<Cells>] {
    [
      TextColumn(title: "CPU", width: 4, left: false) { $0.lcpu },
      TextColumn(title: "APIC", width: 4, left: false) { $0.apic },
      TextColumn(title: "STATE", width: 10, left: true) { $0.state },
      TextColumn(title: "BUSY%", width: 7, left: false) { $0.busy },
      TextColumn(title: "IRQ/s", width: 6, left: false) { $0.irq },
      TextColumn(title: "TMR/s", width: 6, left: false) { $0.timer },
      TextColumn(title: "DEV/s", width: 6, left: false) { $0.device },
      TextColumn(title: "IPI/s", width: 6, left: false) { $0.ipi },
      TextColumn(title: "SPU/s", width: 6, left: false) { $0.spurious },
      TextColumn(title: "SENT/s", width: 6, left: false) { $0.sent },
      TextColumn(title: "LOOPS/s", width: 7, left: false) { $0.loops },
      TextColumn(title: "THREAD", width: 7, left: false) { $0.thread },
      TextColumn(title: "DUE IN", width: 11, left: false) { $0.due },
      TextColumn(title: ripTitle, width: 0, left: true) { $0.rip },
    ]
  }
}
