/// One lcpu's timer queue as every output shows it: the timers pane and the text snapshot.
public struct TimerQueueRow: Sendable, Identifiable {
  /// The lcpu (the row's identity).
  public var id: UInt32 { record.lcpu }
  /// The record the row was made from.
  public var record: TimerQueueRecord
  /// Timers fired per second over the interval (nil before a second snapshot).
  public var firedPerSecond: Double?
  /// Seconds until the next deadline (negative once it has passed).
  public var due: Double?
  /// The latest a timer ever fired after its deadline, in seconds (nil before any fired).
  public var lateMax: Double?
  /// Mean lateness, in seconds (nil before any fired).
  public var lateMean: Double?
  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of a timer queue row.
  public struct Cells: Sendable, Equatable, Codable {
    /// The lcpu.
    public var lcpu: String
    /// Timers pending.
    public var pending: String
    /// Time until the next deadline, "late 3.0ms" once passed.
    public var due: String
    /// Timers fired per second.
    public var firedPerSecond: String
    /// Latest lateness.
    public var lateMax: String
    /// Mean lateness.
    public var lateMean: String
    /// Timers fired since boot.
    public var fired: String
    /// Non-empty lateness buckets: "<1µs:3 <10µs:12".
    public var lateness: String
    /// The soonest pending timers: "alpha 1.49ms, kernel 3.00ms, …".
    public var earliest: String
    /// " " consistent, "~" changing while read, "!" unreadable.
    public var marker: String
  }

  /// Lateness bucket labels, matching `TimerQueueRecord.lateHistogram` ("us" is the style's unit).
  public static let latenessBuckets = ["<1us", "<10us", "<100us", "<1ms", "<10ms", "<100ms", "<1s", ">=1s"]

  /// The rows of `snapshot`'s timer queues, in record order.
  public static func rows(_ snapshot: Snapshot, rates: SnapshotRates?, style: CellStyle = .unicode)
    -> [TimerQueueRow]
  {
    let clock = snapshot.clock
    let names = ThreadNames(snapshot)
    return snapshot.timerQueues.map {
      TimerQueueRow(
        $0, firedPerSecond: rates?.timersFiredPerSecond[$0.lcpu], clock: clock, names: names, style: style)
    }
  }

  /// One row.
  public init(
    _ q: TimerQueueRecord, firedPerSecond: Double?, clock: GuestClock, names: ThreadNames, style: CellStyle
  ) {
    record = q
    self.firedPerSecond = firedPerSecond
    due = clock.until(q.nextDeadlineTSC)
    lateMax = q.fired == 0 ? nil : clock.seconds(q.lateMaxTSC)
    lateMean = q.fired == 0 ? nil : clock.seconds(Double(q.lateTotalTSC) / Double(q.fired))
    func dueText(_ s: Double?) -> String {
      s.map { Format.due(seconds: $0, micro: style.micro) } ?? style.unknown
    }
    let soonest = q.timers.sorted { Int64(bitPattern: $0.deadlineTSC &- $1.deadlineTSC) < 0 }.prefix(4)
    let earliestParts = soonest.map { t in names(t.ownerThread) + " " + dueText(clock.until(t.deadlineTSC)) }
    var earliest = earliestParts.joined(separator: ", ")
    if Int(q.pending) > soonest.count && !earliestParts.isEmpty { earliest += ", " + style.ellipsis }
    if earliest.isEmpty { earliest = style.none }
    var lateness = ""
    for (i, n) in q.lateHistogram.enumerated() where n > 0 {
      var label = Self.latenessBuckets[min(i, Self.latenessBuckets.count - 1)]
      if label.hasSuffix("us") { label = String(label.dropLast(2)) + style.micro }
      lateness += (lateness.isEmpty ? "" : " ") + label + ":" + Format.human(Double(n))
    }
    let marker = TextTable.marker(q.consistency)
    cells = Cells(
      lcpu: String(q.lcpu), pending: Format.human(Double(q.pending)),
      due: due.map { Format.due(seconds: $0, micro: style.micro) } ?? style.none,
      firedPerSecond: style.rate(firedPerSecond), lateMax: style.duration(lateMax),
      lateMean: style.duration(lateMean), fired: Format.human(Double(q.fired)),
      lateness: lateness.isEmpty ? style.none : lateness, earliest: earliest, marker: marker)
    if case .unreadable(let reason) = q.consistency {
      cells.earliest = "unreadable: " + reason
      due = nil
      lateMax = nil
      lateMean = nil
      cells.due = style.none
      cells.lateMax = style.none
      cells.lateMean = style.none
    }
  }

  /// The columns of the text table (the pane's titles).
  public static let columns: [TextColumn<Cells>] = [
    TextColumn(title: "CPU", width: 4, left: false) { $0.lcpu },
    TextColumn(title: "PEND", width: 5, left: false) { $0.pending },
    TextColumn(title: "DUE IN", width: 11, left: false) { $0.due },
    TextColumn(title: "FIRED/s", width: 8, left: false) { $0.firedPerSecond },
    TextColumn(title: "LATE MAX", width: 9, left: false) { $0.lateMax },
    TextColumn(title: "LATE AVG", width: 8, left: false) { $0.lateMean },
    TextColumn(title: "FIRED", width: 7, left: false) { $0.fired },
    TextColumn(title: "LATENESS", width: 40, left: true) { $0.lateness },
    TextColumn(title: "EARLIEST PENDING", width: 0, left: true) { $0.earliest },
  ]
}
