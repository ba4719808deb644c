/// Thread ids to names for one snapshot: "kernel" for 0, "t17" for an id not in the thread table.
public struct ThreadNames: Sendable {
  /// Thread id → name as the thread table gives it ("t<id>" for an empty name).
  public var names: [UInt64: String]

  /// The names in `snapshot`'s thread table.
  public init(_ snapshot: Snapshot) {
    var names: [UInt64: String] = [:]
    names.reserveCapacity(snapshot.threads.count)
    for t in snapshot.threads where names[t.id] == nil { names[t.id] = t.name.isEmpty ? "t\(t.id)" : t.name }
    self.names = names
  }

  /// A thread's name.
  public func callAsFunction(_ id: UInt64) -> String {
    if id == 0 { return "kernel" }
    return names[id] ?? "t\(id)"
  }
}

/// What the lock rows of one snapshot share: its clock, the interval's rates by lock address, and
/// the locks in wait-for cycles.
public struct LockRowContext: Sendable {
  /// The snapshot's clock.
  public var clock: GuestClock
  /// The interval's rates by lock address.
  public var rates: [UInt64: LockRates]
  /// Addresses of the locks in a wait-for cycle.
  public var cycleLocks: Set<UInt64>

  /// The context of `snapshot`'s rows; `waitCycles` when the caller has them already.
  public init(_ snapshot: Snapshot, rates: SnapshotRates?, waitCycles: [WaitCycle]? = nil) {
    clock = snapshot.clock
    cycleLocks = []
    for cycle in waitCycles ?? snapshot.waitCycles {
      for s in cycle.steps { cycleLocks.insert(s.lockAddress) }
    }
    self.rates = [:]
    if let locks = rates?.locks {
      self.rates.reserveCapacity(locks.count)
      for r in locks where self.rates[r.address] == nil { self.rates[r.address] = r }
    }
  }

  /// The row of `lock` with its numbers and blank cells (`LockRow.formatCells` fills them).
  public func row(_ lock: LockRecord) -> LockRow {
    LockRow(lock, rates: rates[lock.address], clock: clock, inCycle: cycleLocks.contains(lock.address))
  }
}

/// One lock as every output shows it: the pane, `smptop locks`, the text snapshot.
///
/// The cells are already formatted; the numbers beside them are what sorting and JSON use.
public struct LockRow: Sendable, Identifiable {
  /// The lock's address (its identity).
  public var id: UInt64
  /// The record the row was made from.
  public var record: LockRecord
  /// The interval's rates, when two snapshots were compared.
  public var rates: LockRates?
  /// Whether the lock is part of a wait-for cycle.
  public var inCycle: Bool

  /// Acquisitions per second over the interval (nil before a second snapshot).
  public var acquisitionsPerSecond: Double?
  /// Contended acquisitions per second over the interval (nil before a second snapshot).
  public var contendedPerSecond: Double?
  /// Contended share of the interval's acquisitions, 0...100 (nil without rates or acquisitions).
  public var contendedPercent: Double?
  /// How long the current holder has held it, in seconds.
  public var heldSeconds: Double?
  /// Mean wait of contended acquisitions (the interval's, else the lifetime's), in seconds.
  public var meanWaitSeconds: Double?
  /// Longest wait ever, in seconds (nil when never contended).
  public var maxWaitSeconds: Double?
  /// Longest hold ever, in seconds (nil when never taken, and for semaphores, which have no holder).
  public var maxHoldSeconds: Double?

  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of a lock row.
  public struct Cells: Sendable, Equatable, Codable {
    /// The lock's name.
    public var name: String
    /// "spin", "ticket", "rw", "mutex", "sem"; a star marks a lock created at run time.
    public var kind: String
    /// "alpha@cpu1", "cpu2", "3 readers", "-", or "unreadable: why".
    public var holder: String
    /// How long it has been held.
    public var held: String
    /// Acquisitions per second.
    public var acquisitions: String
    /// Contended acquisitions per second.
    public var contended: String
    /// Contended share in percent, one decimal.
    public var contendedPercent: String
    /// Mean wait.
    public var meanWait: String
    /// Longest wait.
    public var maxWait: String
    /// Longest hold.
    public var maxHold: String
    /// "2 alpha,beta", "-", with "+1w" for pending writers.
    public var waiters: String
    /// "3 irq-unsafe 1, recursion 2", "-"; static findings first ("S:irq").
    public var misuse: String
    /// Failed try-locks.
    public var tryFailures: String
    /// Where the current (or last) holder took it: "symbol+0x1c", an address, or "-".
    public var site: String
    /// " " consistent, "~" changing while read, "!" unreadable.
    public var marker: String

    /// Every cell empty: a row whose cells are not formatted yet.
    public static let blank = Cells(
      name: "", kind: "", holder: "", held: "", acquisitions: "", contended: "", contendedPercent: "",
      meanWait: "", maxWait: "", maxHold: "", waiters: "", misuse: "", tryFailures: "", site: "", marker: "")
  }

  /// The rows of `snapshot`'s locks in registry order.
  ///
  /// - Parameters:
  ///   - rates: the interval's rates, when two snapshots were compared.
  ///   - symbolize: names acquire sites.
  ///   - staticFindings: lock address → comma-separated static findings ("irq-unsafe,sleep-in-irq").
  ///   - waitCycles: the snapshot's wait-for cycles when the caller has them already.
  ///   - formatted: false leaves every row's `cells` blank for `formatCells` to fill later (an
  ///     output that shows a few of many rows formats only those).
  public static func rows(
    _ snapshot: Snapshot, rates: SnapshotRates?, style: CellStyle = .unicode, symbolize: (UInt64) -> String?,
    staticFindings: [UInt64: String] = [:], waitCycles: [WaitCycle]? = nil, formatted: Bool = true
  ) -> [LockRow] {
    let context = LockRowContext(snapshot, rates: rates, waitCycles: waitCycles)
    let names = formatted ? ThreadNames(snapshot) : nil
    return snapshot.locks.map { l in
      var row = context.row(l)
      if let names {
        row.formatCells(
          names: names, style: style, symbolize: symbolize, staticFinding: staticFindings[l.address])
      }
      return row
    }
  }

  /// One row.
  public init(
    _ l: LockRecord, rates rate: LockRates?, clock: GuestClock, names: ThreadNames, inCycle: Bool,
    style: CellStyle, symbolize: (UInt64) -> String?, staticFinding: String? = nil
  ) {
    self.init(l, rates: rate, clock: clock, inCycle: inCycle)
    formatCells(names: names, style: style, symbolize: symbolize, staticFinding: staticFinding)
  }

  /// One row's numbers, with blank cells (`formatCells` fills them).
  public init(_ l: LockRecord, rates rate: LockRates?, clock: GuestClock, inCycle: Bool) {
    id = l.address
    record = l
    self.inCycle = inCycle
    cells = Cells.blank
    if case .unreadable = l.consistency { return }
    rates = rate
    acquisitionsPerSecond = rate?.acquisitionsPerSecond
    contendedPerSecond = rate?.contendedPerSecond
    contendedPercent = rate?.contendedPercent
    heldSeconds = l.isHeld ? clock.since(l.acquiredTSC) : nil
    let lifetimeMean = l.contended == 0 ? nil : Double(l.waitTotalTSC) / Double(l.contended)
    meanWaitSeconds = (rate?.meanWaitTSC ?? lifetimeMean).flatMap { clock.seconds($0) }
    maxWaitSeconds = l.contended == 0 ? nil : clock.seconds(l.waitMaxTSC)
    maxHoldSeconds = l.acquisitions == 0 || l.kind == .semaphore ? nil : clock.seconds(l.holdMaxTSC)
  }

  /// Formats the row's cells from its record and numbers.
  public mutating func formatCells(
    names: ThreadNames, style: CellStyle, symbolize: (UInt64) -> String?, staticFinding: String? = nil
  ) {
    let l = record
    var holder = style.none
    switch (l.holderLCPU, l.holderThread) {
    case (let cpu?, let t?): holder = "\(names(t))@cpu\(cpu)"
    case (nil, let t?): holder = names(t)
    case (let cpu?, nil): holder = "cpu\(cpu)"
    case (nil, nil):
      if l.kind == .rw && l.readers > 0 { holder = "\(l.readers) reader\(l.readers == 1 ? "" : "s")" }
    }
    var waiterNames: [String] = []
    for w in l.waiters.prefix(3) {
      if let t = w.thread {
        waiterNames.append(names(t))
      } else if let cpu = w.lcpu {
        waiterNames.append("cpu\(cpu)")
      }
    }
    var waiters = l.waiterCount == 0 ? style.none : "\(l.waiterCount)"
    if !waiterNames.isEmpty { waiters += " " + waiterNames.joined(separator: ",") }
    if Int(l.waiterCount) > waiterNames.count && !waiterNames.isEmpty { waiters += "," + style.ellipsis }
    if l.pendingWriters > 0 { waiters += " +\(l.pendingWriters)w" }
    var misuse = style.none
    if l.misuseTotal > 0 {
      var parts: [String] = []
      if l.misuseIRQUnsafe > 0 { parts.append("irq-unsafe \(l.misuseIRQUnsafe)") }
      if l.misuseSleepInIRQ > 0 { parts.append("sleep-in-irq \(l.misuseSleepInIRQ)") }
      if l.misuseRecursion > 0 { parts.append("recursion \(l.misuseRecursion)") }
      if l.misuseBadUnlock > 0 { parts.append("bad-unlock \(l.misuseBadUnlock)") }
      misuse = "\(l.misuseTotal) " + parts.joined(separator: ", ")
    }
    if let found = staticFinding {
      // First, so a narrow column still shows it: S:irq (irq-unsafe), S:sleep (sleep-in-irq).
      let kinds = found.split(separator: ",").map {
        $0 == "sleep-in-irq" ? "sleep" : $0 == "irq-unsafe" ? "irq" : $0
      }
      misuse = "S:" + kinds.joined(separator: "/") + (misuse == style.none ? "" : " " + misuse)
    }
    let marker = TextTable.marker(l.consistency)
    var percent = style.unknown
    if rates != nil { percent = contendedPercent.map { Format.fixed($0, decimals: 1) } ?? style.none }
    cells = Cells(
      name: l.name, kind: (l.kind == .semaphore ? "sem" : l.kind.rawValue) + (l.dynamic ? "*" : ""),
      holder: holder, held: style.duration(heldSeconds), acquisitions: style.rate(acquisitionsPerSecond),
      contended: style.rate(contendedPerSecond), contendedPercent: percent,
      meanWait: style.duration(meanWaitSeconds), maxWait: style.duration(maxWaitSeconds),
      maxHold: style.duration(maxHoldSeconds), waiters: waiters, misuse: misuse,
      tryFailures: Format.human(Double(l.trylockFailures)),
      site: l.acquireSite == 0 ? style.none : (symbolize(l.acquireSite) ?? Format.address(l.acquireSite)),
      marker: marker)
    if case .unreadable(let reason) = l.consistency {
      cells.holder = "unreadable: " + reason
      cells.held = style.none
      cells.acquisitions = style.unknown
      cells.contended = style.unknown
      cells.contendedPercent = style.unknown
      cells.meanWait = style.none
      cells.maxWait = style.none
      cells.maxHold = style.none
    }
  }

  /// What "most contended" sorts by: contended per second (unknown = -1), then the contended share
  /// (the interval's; the lifetime's when there are no rates), then acquisitions per second.
  public var contentionKey: (Double, Double, Double) {
    let share = rates == nil ? record.contendedPercent : (contendedPercent ?? 0)
    return (contendedPerSecond ?? -1, share, acquisitionsPerSecond ?? -1)
  }

  /// Most contended first (by `contentionKey`), ties by address.
  public static func byContention(_ a: LockRow, _ b: LockRow) -> Bool {
    let ka = a.contentionKey
    let kb = b.contentionKey
    if ka != kb { return ka > kb }
    return a.id < b.id
  }
}

extension WaitCycle {
  /// "deadlock: alpha waits lock-B held by beta waits lock-A held by alpha".
  public func sentence(names: ThreadNames) -> String {
    guard let first = steps.first else { return "deadlock" }
    var s = "deadlock: " + names(first.thread)
    for (i, step) in steps.enumerated() {
      let next = steps[(i + 1) % steps.count]
      s += " waits \(step.lock) held by \(names(next.thread))"
    }
    return s
  }
}

extension Snapshot {
  /// "misuse on 2 locks: a (3), b (1)" naming at most `limit` locks; nil when no lock was misused.
  public func misuseSentence(limit: Int = 4) -> String? {
    let misused = misusedLocks
    guard !misused.isEmpty else { return nil }
    let names = misused.prefix(limit).map { "\($0.name) (\($0.misuseTotal))" }.joined(separator: ", ")
    return "misuse on \(misused.count) lock\(misused.count == 1 ? "" : "s"): " + names
  }
}
