import Inspector

/// One lcpu as the views show it: the record plus everything derived for display, computed once per frame.
struct LCPURow {
  var id: Int
  var record: LCPURecord
  var rates: LCPURates?
  var stateText: String
  var stateStyle: Style
  /// Busy share, 0...100.
  var busy: Double?
  /// What the busy meter says without a share: "stopped" while QEMU says the VM is not running (no
  /// interval to measure), "--" before the second snapshot.
  var noShare: String
  /// All interrupts per second.
  var irqPerSecond: Double?
  /// Where the lcpu runs, and whether that is exact (stopped VM or a fault) or sampled at the last tick.
  var rip: UInt64?
  var ripExact: Bool
  var ripText: String
  /// Seconds until the next timer deadline, relative to the newest tick (negative = overdue).
  var due: Double?
  /// "~" read while changing, "!" unreadable, " " consistent.
  var marker: Character
  var markerStyle: Style
  /// Lower-cased text the filter matches against.
  var search: String
}

/// Builds the display rows of the lcpus pane from a snapshot.
func lcpuRows(_ snapshot: Snapshot, rates: SnapshotRates?, symbolize: Symbolizer) -> [LCPURow] {
  let rateByIndex = Dictionary(
    (rates?.lcpus ?? []).map { ($0.index, $0) }, uniquingKeysWith: { first, _ in first })
  let clock = snapshot.clock
  var vcpuByIndex: [Int: VCPUState] = [:]
  for v in snapshot.vcpus ?? [] where vcpuByIndex[v.index] == nil { vcpuByIndex[v.index] = v }

  return snapshot.lcpus.map { r in
    let id = Int(r.index)
    let rate = rateByIndex[r.index]
    var row = LCPURow(
      id: id, record: r, rates: rate, stateText: r.stateLabel, stateStyle: stateStyle(r.state), busy: nil,
      noShare: noShareText(snapshot), irqPerSecond: nil, rip: nil, ripExact: false, ripText: "-", due: nil,
      marker: " ", markerStyle: .normal,
      search: "")
    if let rate {
      row.busy = rate.busyPercent
      row.irqPerSecond =
        rate.timerIRQsPerSecond + rate.ipisPerSecond + rate.deviceIRQsPerSecond + rate.spuriousPerSecond
    }
    // RIP: a stopped vCPU's register is exact; a fault's RIP says where it died; else the last tick's sample.
    if let v = vcpuByIndex[id], let rip = v.value(of: "rip") {
      row.rip = rip
      row.ripExact = true
    } else if r.state == .halted, let panic = r.panic {
      row.rip = panic.rip
      row.ripExact = true
    } else if r.lastTickRIP != 0 {
      row.rip = r.lastTickRIP
    }
    if let rip = row.rip { row.ripText = symbolize(rip) ?? Format.address(rip) }
    row.due = clock.until(r.nextDeadlineTSC)
    switch r.consistency {
    case .consistent: break
    case .inconsistent:
      row.marker = "~"
      row.markerStyle = .warn
    case .unreadable(let reason):
      row.marker = "!"
      row.markerStyle = .error
      row.stateText = "UNREADABLE"
      row.stateStyle = .error
      row.ripText = reason
    }
    row.search = "cpu\(id) \(row.stateText) \(row.ripText) t\(r.currentThread)".lowercased()
    return row
  }
}

/// What a busy meter shows without a share: "stopped" when QEMU says the VM is not running, else "--".
func noShareText(_ snapshot: Snapshot) -> String {
  snapshot.runState.map { $0 != "running" } == true ? "stopped" : "--"
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
func arrange(_ rows: [LCPURow], filter: String, sort: PaneState) -> [LCPURow] {
  let needle = filter.lowercased()
  var out = needle.isEmpty ? rows : rows.filter { $0.search.contains(needle) }
  func order(_ a: LCPURow, _ b: LCPURow) -> Bool? {
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
func lcpuColumns(glyphs: Glyphs, ripTitle: String) -> [Column<LCPURow>] {
  let e = glyphs.ellipsis
  func number(_ value: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int) {
    guard let value else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
    g.field(Format.human(value), x: x, y: y, width: w, style: value == 0 ? .dim : .normal, align: .right)
  }
  return [
    .fixed("CPU", 4, priority: 0, key: .index) { g, r, x, y, w in
      g.field(String(r.id), x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(Unicode.Scalar(String(r.marker)) ?? " ", r.markerStyle)
    },
    .fixed("APIC", 4, priority: 7) { g, r, x, y, w in
      g.field(String(r.record.apicID), x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("STATE", 10, priority: 0, key: .state, align: .left) { g, r, x, y, w in
      g.field(r.stateText, x: x, y: y, width: w, style: r.stateStyle, ellipsis: e)
    },
    .flexible("BUSY%", minimum: 8, preferred: 14, maximum: 32, weight: 1, priority: 0, key: .busy) {
      g, r, x, y, w in
      drawBusyMeter(&g, r, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("IRQ/s", 6, priority: 0, key: .irq) { g, r, x, y, w in number(r.irqPerSecond, &g, x, y, w) },
    .fixed("TMR/s", 6, priority: 5) { g, r, x, y, w in number(r.rates?.timerIRQsPerSecond, &g, x, y, w) },
    .fixed("DEV/s", 6, priority: 6) { g, r, x, y, w in number(r.rates?.deviceIRQsPerSecond, &g, x, y, w) },
    .fixed("IPI/s", 6, priority: 1, key: .ipi) { g, r, x, y, w in number(r.rates?.ipisPerSecond, &g, x, y, w)
    },
    .fixed("SPU/s", 6, priority: 9) { g, r, x, y, w in number(r.rates?.spuriousPerSecond, &g, x, y, w) },
    .fixed("SENT/s", 6, priority: 8) { g, r, x, y, w in number(r.rates?.ipisSentPerSecond, &g, x, y, w) },
    .fixed("LOOPS/s", 7, priority: 10) { g, r, x, y, w in number(r.rates?.workLoopsPerSecond, &g, x, y, w) },
    .fixed("THREAD", 7, priority: 3, key: .thread) { g, r, x, y, w in
      let t = r.record.currentThread
      g.field(t == 0 ? "-" : String(t), x: x, y: y, width: w, style: t == 0 ? .dim : .normal, align: .right)
    },
    .fixed("DUE IN", 11, priority: 2, key: .deadline) { g, r, x, y, w in
      guard let due = r.due else {
        return g.field(
          r.record.nextDeadlineTSC == 0 ? "-" : "?", x: x, y: y, width: w, style: .dim, align: .right)
      }
      g.field(
        Format.due(seconds: due, micro: glyphs.micro), x: x, y: y, width: w,
        style: due < 0 ? .warn : .normal,
        align: .right, ellipsis: e)
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

/// An lcpu's busy meter: the share while running, the state when there is no share to show.
func drawBusyMeter(_ g: inout Grid, _ r: LCPURow, x: Int, y: Int, width: Int, glyphs: Glyphs) {
  switch r.record.state {
  case .offline, .initializing:
    g.meter(x: x, y: y, width: width, fraction: nil, text: r.stateText.lowercased(), glyphs: glyphs)
  case .halted:
    g.meter(x: x, y: y, width: width, fraction: 1, text: "halted", glyphs: glyphs, fillStyle: .error)
  default:
    if r.marker == "!" {
      g.meter(x: x, y: y, width: width, fraction: nil, text: "?", glyphs: glyphs)
    } else if let busy = r.busy {
      g.meter(
        x: x, y: y, width: width, fraction: busy / 100, text: Format.fixed(busy, decimals: 1) + "%",
        glyphs: glyphs)
    } else {
      g.meter(x: x, y: y, width: width, fraction: nil, text: r.noShare, glyphs: glyphs)
    }
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
  into g: inout Grid, rows: [LCPURow], plan: LCPUPaneLayout, body: Rect, selected: Int?, glyphs: Glyphs
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
    g[x + digits, y] = Cell(Unicode.Scalar(String(r.marker)) ?? " ", r.markerStyle)
    drawBusyMeter(&g, r, x: x + digits + 1, y: y, width: cellWidth - digits - 1, glyphs: glyphs)
  }
}

/// One line about the selected lcpu, for compact layouts with no room for a table.
func drawSummary(into g: inout Grid, row: LCPURow?, x: Int, y: Int, width: Int, glyphs: Glyphs) {
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
