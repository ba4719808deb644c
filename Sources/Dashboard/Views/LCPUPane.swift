import Model

/// One lcpu as the lcpus pane shows it: the shared row model plus what only the pane needs.
struct LCPUPaneRow {
  /// The row every output renders.
  var row: LCPURow
  /// The row's identity in the table (the lcpu's index).
  var id: Int
  /// How the state is drawn.
  var stateStyle: Style
  /// "~" read while changing, "!" unreadable, " " consistent.
  var marker: Unicode.Scalar
  /// How the marker is drawn.
  var markerStyle: Style
  /// Lower-cased text the filter matches against.
  var search: String
  /// The lcpu's record.
  var record: LCPURecord { row.record }
  /// The interval's rates.
  var rates: LCPURates? { row.rates }
  /// "busy", "idle", "UNREADABLE".
  var stateText: String { row.cells.state }
  /// Busy share, 0...100 (the interval's, else the lifetime's).
  var busy: Double? { row.busyPercent }
  /// All interrupts per second.
  var irqPerSecond: Double? { row.irqPerSecond }
  /// Where the lcpu runs.
  var rip: UInt64? { row.rip }
  /// Whether `rip` is exact (stopped VM or a fault) rather than sampled at the last tick.
  var ripExact: Bool { row.ripExact }
  /// The RIP cell: a symbol, an address, "-", or why the record could not be read.
  var ripText: String { row.cells.rip }
  /// Seconds until the next timer deadline, relative to the newest tick (negative = overdue).
  var due: Double? { row.due }
}

/// Builds the display rows of the lcpus pane from a snapshot.
func lcpuRows(
  _ snapshot: Snapshot, rates: SnapshotRates?, symbolize: Symbolizer, glyphs: Glyphs
) -> [LCPUPaneRow] {
  LCPURow.rows(snapshot, rates: rates, style: cellStyle(glyphs), symbolize: symbolize).map { r in
    let id = Int(r.id)
    let (marker, markerStyle) = consistencyMarker(r.record.consistency)
    let unreadable = marker == "!"
    return LCPUPaneRow(
      row: r, id: id, stateStyle: unreadable ? .error : stateStyle(r.record.state), marker: marker,
      markerStyle: markerStyle,
      search: "cpu\(id) \(r.cells.state) \(r.cells.rip) t\(r.record.currentThread)".lowercased())
  }
}

/// What a busy meter shows without a share: "stopped" when QEMU says the VM is not running, else "--".
func noShareText(_ snapshot: Snapshot) -> String {
  LCPURow.noShare(vmStopped: snapshot.runState.map { !$0.isRunning } == true)
}

/// The colour of an lcpu state.
func stateStyle(_ state: LCPUState) -> Style {
  switch state {
  case .busy: return .ok
  case .idle: return .normal
  case .offline: return .dim
  case .initializing, .unknown: return .warn
  case .halted: return .error
  }
}

/// Rows filtered by the filter text and sorted by the pane's sort key (ties by index).
func arrange(_ rows: [LCPUPaneRow], filter: String, sort: PaneState) -> [LCPUPaneRow] {
  let needle = filter.lowercased()
  var out = needle.isEmpty ? rows : rows.filter { $0.search.contains(needle) }
  func order(_ a: LCPUPaneRow, _ b: LCPUPaneRow) -> Bool? {
    func cmp<T: Comparable>(_ x: T?, _ y: T?) -> Bool? {
      switch (x, y) {
      case (nil, nil): return nil
      case (nil, _): return false  // unknown values sort last either way
      case (_, nil): return true
      case (let x?, let y?): return x == y ? nil : (sort.descending ? x > y : x < y)
      }
    }
    switch sort.sortKey {
    case .index: return cmp(a.id, b.id)
    case .state: return cmp(stateRank(a.record), stateRank(b.record))
    case .busy: return cmp(a.busy, b.busy)
    case .irq: return cmp(a.irqPerSecond, b.irqPerSecond)
    case .ipi: return cmp(a.rates?.ipisPerSecond, b.rates?.ipisPerSecond)
    case .thread: return cmp(a.record.currentThread, b.record.currentThread)
    case .rip: return cmp(a.ripText, b.ripText)
    case .deadline: return cmp(a.due, b.due)
    default: return nil
    }
  }
  out.sort { a, b in order(a, b) ?? (sort.descending && sort.sortKey == .index ? a.id > b.id : a.id < b.id) }
  return out
}

/// States in an order that makes sense to sort by: problems and work first when descending.
func stateRank(_ r: LCPURecord) -> Int {
  switch r.state {
  case .offline: return 0
  case .initializing: return 1
  case .idle: return 2
  case .busy: return 3 + Int(min(r.busyDepth, 1000))
  case .unknown: return 2000
  case .halted: return 3000
  }
}

/// The columns of the lcpus table, most important first by priority.
func lcpuColumns(glyphs: Glyphs, ripTitle: String) -> [Column<LCPUPaneRow>] {
  let e = glyphs.ellipsis
  return [
    .fixed("CPU", 4, priority: 0, key: .index) { g, r, x, y, w in
      g.field(r.row.cells.lcpu, x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(r.marker, r.markerStyle)
    },
    .fixed("APIC", 4, priority: 7) { g, r, x, y, w in
      g.field(r.row.cells.apic, x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("STATE", 10, priority: 0, key: .state, align: .left) { g, r, x, y, w in
      g.field(r.stateText, x: x, y: y, width: w, style: r.stateStyle, ellipsis: e)
    },
    .flexible("BUSY%", minimum: 8, preferred: 14, maximum: 32, weight: 1, priority: 0, key: .busy) {
      g, r, x, y, w in
      drawBusyMeter(&g, r, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("IRQ/s", 6, priority: 0, key: .irq) { g, r, x, y, w in
      cellNumber(r.row.cells.irq, r.irqPerSecond, &g, x, y, w)
    },
    .fixed("TMR/s", 6, priority: 5) { g, r, x, y, w in
      cellNumber(r.row.cells.timer, r.rates?.timerIRQsPerSecond, &g, x, y, w)
    },
    .fixed("DEV/s", 6, priority: 6) { g, r, x, y, w in
      cellNumber(r.row.cells.device, r.rates?.deviceIRQsPerSecond, &g, x, y, w)
    },
    .fixed("IPI/s", 6, priority: 1, key: .ipi) { g, r, x, y, w in
      cellNumber(r.row.cells.ipi, r.rates?.ipisPerSecond, &g, x, y, w)
    },
    .fixed("SPU/s", 6, priority: 9) { g, r, x, y, w in
      cellNumber(r.row.cells.spurious, r.rates?.spuriousPerSecond, &g, x, y, w)
    },
    .fixed("SENT/s", 6, priority: 8) { g, r, x, y, w in
      cellNumber(r.row.cells.sent, r.rates?.ipisSentPerSecond, &g, x, y, w)
    },
    .fixed("LOOPS/s", 7, priority: 10) { g, r, x, y, w in
      cellNumber(r.row.cells.loops, r.rates?.workLoopsPerSecond, &g, x, y, w)
    },
    .fixed("THREAD", 7, priority: 3, key: .thread) { g, r, x, y, w in
      let t = r.record.currentThread
      g.field(r.row.cells.thread, x: x, y: y, width: w, style: t == 0 ? .dim : .normal, align: .right)
    },
    .fixed("DUE IN", 11, priority: 2, key: .deadline) { g, r, x, y, w in
      let style: Style = r.due.map { $0 < 0 ? .warn : .normal } ?? .dim
      g.field(r.row.cells.due, x: x, y: y, width: w, style: style, align: .right, ellipsis: e)
    },
    .flexible(
      ripTitle, minimum: 10, preferred: 20, maximum: Int.max / 4, weight: 3, priority: 0, bonus: (4, 16),
      key: .rip
    ) {
      g, r, x, y, w in
      let style: Style = r.marker == "!" ? .error : (r.rip == nil ? .dim : .symbol)
      g.field(truncateSymbol(r.ripText, to: w, ellipsis: e), x: x, y: y, width: w, style: style, ellipsis: e)
    },
  ]
}

/// An lcpu's busy meter: the share while running, the state when there is no share to show; its
/// text is the row model's cell.
func drawBusyMeter(_ g: inout Grid, _ r: LCPUPaneRow, x: Int, y: Int, width: Int, glyphs: Glyphs) {
  let text = r.row.cells.busy
  switch r.record.state {
  case .halted where r.marker != "!":
    g.meter(x: x, y: y, width: width, fraction: 1, text: text, glyphs: glyphs, fillStyle: .error)
  case .offline, .initializing, .halted:
    g.meter(x: x, y: y, width: width, fraction: nil, text: text, glyphs: glyphs)
  default:
    g.meter(x: x, y: y, width: width, fraction: r.busy.map { $0 / 100 }, text: text, glyphs: glyphs)
  }
}

/// How the lcpus pane arranges itself in a body rectangle.
struct LCPUPaneLayout {
  /// Compact meters grid: columns and rows (nil = plain table).
  var meterColumns: Int
  var meterRows: Int
  /// Where the table goes (may be empty).
  var table: Rect
  /// A one-line summary of the selected lcpu when there is no room for a table.
  var summaryLine: Int?
  var compact: Bool { meterRows > 0 }
}

/// Plain table when every lcpu fits, else htop-style meters in columns above a scrolling table.
func planLCPUPane(count: Int, body: Rect) -> LCPUPaneLayout {
  if count + 1 <= body.height || count == 0 {
    return LCPUPaneLayout(meterColumns: 0, meterRows: 0, table: body, summaryLine: nil)
  }
  let digits = String(max(0, count - 1)).count
  let cellMinimum = digits + 1 + 10
  let maxColumns = max(1, (body.width + 1) / (cellMinimum + 1))
  func rows(_ c: Int) -> Int { (count + c - 1) / c }
  func cellWidth(_ c: Int) -> Int { (body.width + 1) / c - 1 }
  // Meters in at most half the body with cells no wider than 60 columns; when that is impossible,
  // as many columns as fit, so the table below keeps as many rows as it can.
  let columns =
    (1...maxColumns).first(where: { rows($0) <= body.height / 2 && cellWidth($0) <= 60 }) ?? maxColumns
  let meterRows = min(rows(columns), body.height)
  let rest = body.height - meterRows
  if rest >= 3 {
    return LCPUPaneLayout(
      meterColumns: columns, meterRows: meterRows,
      table: Rect(x: body.x, y: body.y + meterRows, width: body.width, height: rest), summaryLine: nil)
  }
  return LCPUPaneLayout(
    meterColumns: columns, meterRows: meterRows,
    table: Rect(x: body.x, y: body.maxY, width: body.width, height: 0),
    summaryLine: rest >= 1 ? body.y + meterRows : nil)
}

/// Draws the compact per-lcpu meters in index order, like htop's CPU meters.
func drawMeters(
  into g: inout Grid, rows: [LCPUPaneRow], plan: LCPUPaneLayout, body: Rect, selected: Int?, glyphs: Glyphs
) {
  let sorted = rows.sorted { $0.id < $1.id }
  let digits = String(sorted.last?.id ?? 0).count
  let cellWidth = (body.width + 1) / plan.meterColumns - 1
  for (n, r) in sorted.enumerated() {
    let col = n / plan.meterRows
    let line = n % plan.meterRows
    guard col < plan.meterColumns else { break }
    let x = body.x + col * (cellWidth + 1)
    let y = body.y + line
    let isSelected = r.id == selected
    g.field(String(r.id), x: x, y: y, width: digits, style: isSelected ? .selected : .value, align: .right)
    g[x + digits, y] = Cell(r.marker, r.markerStyle)
    drawBusyMeter(&g, r, x: x + digits + 1, y: y, width: cellWidth - digits - 1, glyphs: glyphs)
  }
}

/// One line about the selected lcpu, for compact layouts with no room for a table.
func drawSummary(into g: inout Grid, row: LCPUPaneRow?, x: Int, y: Int, width: Int, glyphs: Glyphs) {
  guard let r = row else { return }
  var s = Segments()
  s.add("cpu\(r.id)", .value)
  s.add(r.stateText, r.stateStyle, separated: true)
  if let irq = r.irqPerSecond {
    s.add("irq " + Format.human(irq) + "/s", .normal, priority: 2, separated: true)
  }
  if r.record.currentThread != 0 {
    s.add("thread \(r.record.currentThread)", .normal, priority: 3, separated: true)
  }
  if let due = r.due {
    s.add(
      due < 0
        ? Format.due(seconds: due, micro: glyphs.micro)
        : "due in " + Format.due(seconds: due, micro: glyphs.micro),
      due < 0 ? .warn : .normal, priority: due < 0 ? 2 : 4, separated: true)
  }
  s.add(r.ripText, .symbol, priority: 1, separated: true)
  s.draw(into: &g, x: x, y: y, width: width, glyphs: glyphs)
}
