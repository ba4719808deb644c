/// The lock contention table as plain text (`smptop locks`, the text snapshot): the same `LockRow`
/// cells the dashboard's locks pane draws, most contended first, then the deadlock and misuse sentences.
public struct LockTable: Sendable {
  /// The rows shown, most contended first.
  public var rows: [LockRow]
  /// Locks left out by `top`.
  public var omitted: Int
  /// One sentence per wait-for cycle.
  public var deadlocks: [String]
  /// The misuse sentence, when any lock was misused.
  public var misuse: String?

  /// The `top` most contended locks of `snapshot` (0 = all).
  public init(snapshot: Snapshot, rates: SnapshotRates?, top: Int, symbolize: (UInt64) -> String?) {
    let all = LockRow.rows(snapshot, rates: rates, style: .unicode, symbolize: symbolize)
      .sorted(by: LockRow.byContention)
    rows = top > 0 ? Array(all.prefix(top)) : all
    omitted = all.count - rows.count
    let names = ThreadNames(snapshot)
    deadlocks = snapshot.waitCycles.map { $0.sentence(names: names) }
    misuse = snapshot.misuseSentence()
  }

  /// Where the waiters of the shown locks wait, one line each, most contended lock first:
  /// `work.rmutex  mutex.2@cpu2 waits at Workload.swift:298 in closure #1 in …` (the site from
  /// ``WaiterSites``, or "site not known" when its backtrace did not show it).
  public func waiterLines(names: ThreadNames) -> [String] {
    var lines: [String] = []
    for r in rows {
      for w in r.record.waiters {
        let who: String
        switch (w.thread, w.lcpu) {
        case (let t?, let cpu?) where t != 0: who = "\(names(t))@cpu\(cpu)"
        case (let t?, nil) where t != 0: who = names(t)
        case (_, let cpu?): who = "cpu\(cpu)"
        default: who = "-"
        }
        let place =
          w.location.map { "waits at " + $0.text + ($0.inlined ? " [inlined]" : "") }
          ?? "waits (site not known)"
        lines.append("  \(r.record.name)  \(who) \(place)")
      }
    }
    return lines
  }

  /// One column of the lock table.
  public typealias Column = TextColumn<LockRow.Cells>

  /// The columns, in order (the dashboard pane's, with its titles).
  public static let columns: [Column] = [
    Column(title: "LOCK", width: 24, left: true) { $0.name },
    Column(title: "KIND", width: 6, left: true) { $0.kind },
    Column(title: "HOLDER", width: 16, left: true) { $0.holder },
    Column(title: "HELD", width: 6, left: false) { $0.held },
    Column(title: "ACQ/s", width: 6, left: false) { $0.acquisitions },
    Column(title: "CONT/s", width: 7, left: false) { $0.contended },
    Column(title: "CONT%", width: 6, left: false) { $0.contendedPercent },
    Column(title: "WAIT", width: 6, left: false) { $0.meanWait },
    Column(title: "WMAX", width: 6, left: false) { $0.maxWait },
    Column(title: "HOLD", width: 6, left: false) { $0.maxHold },
    Column(title: "WAITERS", width: 16, left: true) { $0.waiters },
    Column(title: "MISUSE", width: 18, left: true) { $0.misuse },
    Column(title: "TRYFAIL", width: 7, left: false) { $0.tryFailures },
    Column(title: "ACQUIRED AT", width: 0, left: true) { $0.site },
  ]

  /// The table: a marker column (" ", "~" changing while read, "!" unreadable), then the cells; a cell
  /// too long for its column ends in "…".
  public var text: String {
    var lines = TextTable.lines(Self.columns, rows: rows.map { ($0.cells.marker, $0.cells) })
    if rows.isEmpty { lines.append("(the guest publishes no locks)") }
    if omitted > 0 { lines.append("(\(omitted) more locks: smptop locks --top 0)") }
    lines += deadlocks
    if let misuse { lines.append(misuse) }
    return lines.joined(separator: "\n")
  }
}
