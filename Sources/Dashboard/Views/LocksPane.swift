import Model

/// One lock as the locks pane shows it: the shared row model plus what only the pane needs.
///
/// The row's numbers are ready for sorting; its cells are formatted the first time a column
/// draws them, so a table of a thousand locks formats only the rows on screen.
struct LockPaneRow {
  /// The row every output renders, its cells blank until `cells` is first read.
  var row: LockRow
  /// The row's identity in the table (the lock's address).
  var id: Int
  /// The consistency marker drawn in the name column's first cell.
  var marker: Unicode.Scalar
  /// How the marker is drawn.
  var markerStyle: Style
  /// Lower-cased text the filter matches against (empty when no filter is set).
  var search: String
  /// Formats (and keeps) the frame's cells.
  let formatter: LockCellFormatter
  /// The lock's record.
  var record: LockRecord { row.record }
  /// Whether the lock is part of a wait-for cycle.
  var inCycle: Bool { row.inCycle }
  /// The formatted cells.
  var cells: LockRow.Cells { formatter.cells(of: row) }
}

/// Formats lock rows' cells on first use and keeps them, for one frame.
final class LockCellFormatter {
  private let names: ThreadNames
  private let style: CellStyle
  private let symbolize: Symbolizer
  private let staticFindings: [UInt64: String]
  private var done: [UInt64: LockRow.Cells] = [:]

  init(
    names: ThreadNames, style: CellStyle, symbolize: @escaping Symbolizer, staticFindings: [UInt64: String]
  ) {
    self.names = names
    self.style = style
    self.symbolize = symbolize
    self.staticFindings = staticFindings
  }

  /// Whether the static check found something on the lock at `address`.
  func hasStaticFinding(_ address: UInt64) -> Bool { staticFindings[address] != nil }

  /// `row`'s cells, formatted the first time they are asked for.
  func cells(of row: LockRow) -> LockRow.Cells {
    if let cells = done[row.id] { return cells }
    var copy = row
    copy.formatCells(names: names, style: style, symbolize: symbolize, staticFinding: staticFindings[row.id])
    done[row.id] = copy.cells
    return copy.cells
  }
}

/// The cell style of a glyph set.
func cellStyle(_ glyphs: Glyphs) -> CellStyle {
  CellStyle(micro: glyphs.micro, unknown: glyphs.unknown, ellipsis: String(glyphs.ellipsis))
}

/// The pane's row of `row` (cells formatted on first use, or at once when `searchable`).
func lockPaneRow(_ r: LockRow, formatter: LockCellFormatter, searchable: Bool) -> LockPaneRow {
  let (marker, markerStyle) = consistencyMarker(r.record.consistency)
  var row = LockPaneRow(
    row: r, id: Int(truncatingIfNeeded: r.id), marker: marker, markerStyle: markerStyle, search: "",
    formatter: formatter)
  guard searchable else { return row }
  let c = row.cells
  row.search = "\(c.name) \(r.record.kind.rawValue) \(c.holder) \(c.waiters) \(c.site)".lowercased()
  if r.record.misuseTotal > 0 { row.search += " misuse" }
  if formatter.hasStaticFinding(r.id) { row.search += " static" }
  if r.inCycle { row.search += " deadlock" }
  return row
}

/// Sort values of a lock row.
func lockSortValues(_ r: LockRow, _ key: SortKey) -> [SortValue?] {
  switch key {
  case .contention:
    let (perSecond, share, _) = r.contentionKey
    return [r.contendedPerSecond == nil ? nil : .number(perSecond), .number(share)]
  case .name: return [.text(r.record.name)]
  case .acquisitions: return [r.acquisitionsPerSecond.map { .number($0) }]
  case .wait: return [r.meanWaitSeconds.map { .number($0) }, r.maxWaitSeconds.map { .number($0) }]
  case .hold: return [r.maxHoldSeconds.map { .number($0) }]
  case .waiters: return [.number(Double(r.record.waiterCount))]
  case .misuse: return [.number(Double(r.record.misuseTotal))]
  default: return []
  }
}

/// The columns of the locks table: each draws a cell of the shared row model, styled by its value.
func lockColumns(glyphs: Glyphs) -> [Column<LockPaneRow>] {
  let e = glyphs.ellipsis
  func time(
    _ text: String, _ v: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int, warnAbove: Double = .infinity
  ) {
    g.field(
      text, x: x, y: y, width: w, style: v == nil ? .dim : (v ?? 0 > warnAbove ? .warn : .normal),
      align: .right,
      ellipsis: e)
  }
  return [
    .flexible("NAME", minimum: 10, preferred: 14, maximum: 28, weight: 2, priority: 0, key: .name) {
      g, r, x, y, w in
      g[x, y] = Cell(r.marker, r.markerStyle)
      let style: Style = r.inCycle || r.record.misuseTotal > 0 ? .error : .value
      textCell(&g, r.cells.name, x: x + 1, y: y, width: w - 1, glyphs: glyphs, style: style)
    },
    .fixed("KIND", 6, priority: 3, align: .left) { g, r, x, y, w in
      textCell(&g, r.cells.kind, x: x, y: y, width: w, glyphs: glyphs, style: .dim)
    },
    .flexible("HOLDER", minimum: 8, preferred: 10, maximum: 24, weight: 1, priority: 0, align: .left) {
      g, r, x, y, w in
      let holder = r.cells.holder
      let style: Style = r.marker == "!" ? .error : (holder == "-" ? .dim : (r.inCycle ? .error : .normal))
      textCell(&g, holder, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
    .fixed("HELD", 6, priority: 1) { g, r, x, y, w in
      time(r.cells.held, r.row.heldSeconds, &g, x, y, w, warnAbove: 0.01)
    },
    .fixed("ACQ/s", 6, priority: 0, key: .acquisitions) { g, r, x, y, w in
      cellNumber(r.cells.acquisitions, r.row.acquisitionsPerSecond, &g, x, y, w)
    },
    .fixed("CONT/s", 7, priority: 0, key: .contention) { g, r, x, y, w in
      cellNumber(r.cells.contended, r.row.contendedPerSecond, &g, x, y, w, style: .warn)
    },
    .fixed("CONT%", 6, priority: 4) { g, r, x, y, w in
      let p = r.row.contendedPercent
      g.field(
        r.cells.contendedPercent, x: x, y: y, width: w,
        style: p.map { $0 >= 25 ? .warn : ($0 == 0 ? .dim : .normal) } ?? .dim, align: .right)
    },
    .fixed("WAIT", 6, priority: 0, key: .wait) { g, r, x, y, w in
      time(r.cells.meanWait, r.row.meanWaitSeconds, &g, x, y, w)
    },
    .fixed("WMAX", 6, priority: 2) { g, r, x, y, w in
      time(r.cells.maxWait, r.row.maxWaitSeconds, &g, x, y, w, warnAbove: 0.001)
    },
    .fixed("HOLD", 6, priority: 5, key: .hold) { g, r, x, y, w in
      time(r.cells.maxHold, r.row.maxHoldSeconds, &g, x, y, w, warnAbove: 0.001)
    },
    .flexible(
      "WAITERS", minimum: 7, preferred: 8, maximum: 30, weight: 1, priority: 1, key: .waiters, align: .left
    ) {
      g, r, x, y, w in
      let waiters = r.cells.waiters
      textCell(
        &g, waiters, x: x, y: y, width: w, glyphs: glyphs,
        style: waiters == "-" ? .dim : (r.inCycle ? .error : .warn))
    },
    .flexible(
      "MISUSE", minimum: 6, preferred: 6, maximum: 40, weight: 1, priority: 0, bonus: (6, 18), key: .misuse,
      align: .left
    ) {
      g, r, x, y, w in
      let misuse = r.cells.misuse
      textCell(
        &g, misuse, x: x, y: y, width: w, glyphs: glyphs,
        style: r.record.misuseTotal > 0 ? .error : (misuse == "-" ? .dim : .warn))
    },
    .fixed("TRYFAIL", 7, priority: 8) { g, r, x, y, w in
      cellNumber(r.cells.tryFailures, Double(r.record.trylockFailures), &g, x, y, w)
    },
    .flexible("ACQUIRED AT", minimum: 12, preferred: 24, maximum: 60, weight: 2, priority: 7, align: .left) {
      g, r, x, y, w in
      let site = r.cells.site
      g.field(
        truncateSymbol(site, to: w, ellipsis: e), x: x, y: y, width: w,
        style: site == "-" ? .dim : .symbol, ellipsis: e)
    },
  ]
}

/// Threads, the blocked ones first, then by id (the shared row model), matching the filter.
///
/// Without a filter only the first `limit` rows are made.
func threadRows(_ snapshot: Snapshot, context c: PaneContext, filter: String, limit: Int? = nil)
  -> [ThreadRow]
{
  let needle = filter.lowercased()
  let rows = ThreadRow.rows(snapshot, style: cellStyle(c.glyphs), limit: needle.isEmpty ? limit : nil)
  guard !needle.isEmpty else { return rows }
  return rows.filter {
    "\($0.cells.name) \($0.cells.state) \($0.cells.blockedOn)".lowercased().contains(needle)
  }
}

/// The columns of the thread list.
func threadColumns(context c: PaneContext) -> [Column<ThreadRow>] {
  let glyphs = c.glyphs
  return [
    .fixed("TID", 5, priority: 0) { g, r, x, y, w in
      let (m, ms) = consistencyMarker(r.record.consistency)
      g.field(r.cells.id, x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(m, ms)
    },
    .flexible("THREAD", minimum: 8, preferred: 12, maximum: 24, weight: 1, priority: 0) { g, r, x, y, w in
      textCell(&g, r.cells.name, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("STATE", 13, priority: 0, align: .left) { g, r, x, y, w in
      let style: Style
      switch r.record.state {
      case .blockedOnLock, .blockedOnSemaphore, .blockedOnWaitQueue, .spinning: style = .warn
      case .running: style = .ok
      case .unknown: style = .error
      default: style = .normal
      }
      textCell(&g, r.cells.state, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
    .fixed("CPU", 4, priority: 0) { g, r, x, y, w in
      g.field(r.cells.lcpu, x: x, y: y, width: w, style: .normal, align: .right)
    },
    .flexible("BLOCKED ON", minimum: 8, preferred: 14, maximum: 28, weight: 1, priority: 0) { g, r, x, y, w in
      textCell(&g, r.cells.blockedOn, x: x, y: y, width: w, glyphs: glyphs, style: r.isBlocked ? .warn : .dim)
    },
    .fixed("WAKE IN", 11, priority: 1) { g, r, x, y, w in
      g.field(
        r.cells.wakeIn, x: x, y: y, width: w,
        style: r.wakeIn == nil ? .dim : (r.wakeIn ?? 0 < 0 ? .warn : .normal), align: .right)
    },
    .fixed("CPU TIME", 8, priority: 2) { g, r, x, y, w in
      g.field(r.cells.cpuTime, x: x, y: y, width: w, align: .right)
    },
    .fixed("SWITCHES", 8, priority: 3) { g, r, x, y, w in
      g.field(
        r.cells.switches, x: x, y: y, width: w, style: r.record.switches == 0 ? .dim : .normal, align: .right)
    },
    .fixed("OPS", 6, priority: 3) { g, r, x, y, w in
      g.field(r.cells.ops, x: x, y: y, width: w, style: r.record.ops == 0 ? .dim : .normal, align: .right)
    },
  ]
}

/// The locks pane: deadlock and misuse banners, the lock table, and the thread list below when there is room.
func drawLocksPane(
  into g: inout Grid, state: DashboardState, data: DashboardData, snapshot: Snapshot, symbolize: Symbolizer,
  body: Rect, layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  let c = PaneContext(snapshot: snapshot, glyphs: glyphs)
  let cycles = snapshot.waitCycles

  // Banners: every cycle (at most a third of the body), then one misuse line.
  var banners: [(String, Style)] = []
  for cycle in cycles.prefix(max(1, body.height / 3)) {
    banners.append((cycle.sentence(names: c.threadNames), .error))
  }
  if cycles.count > max(1, body.height / 3) {
    banners.append(("\(cycles.count) wait-for cycles in all", .error))
  }
  if let misuse = snapshot.misuseSentence() { banners.append((misuse, .error)) }
  for (n, (text, style)) in banners.enumerated() where n < body.height {
    textCell(&g, text, x: body.x, y: body.y + n, width: body.width, glyphs: glyphs, style: style)
  }
  let (_, rest) = splitRows(body, top: banners.count)

  // Threads take the lower part when the body is tall enough for both.
  let threadCount = snapshot.threads.count
  var lockArea = rest
  var threadArea = Rect(x: rest.x, y: rest.maxY, width: rest.width, height: 0)
  if threadCount > 0 && rest.height >= 12 {
    let threadWanted = threadCount + 2
    let lockWanted = snapshot.locks.count + 2
    var threadHeight = min(threadWanted, rest.height * 2 / 5)
    if lockWanted + threadHeight < rest.height { threadHeight = min(threadWanted, rest.height - lockWanted) }
    (lockArea, threadArea) = splitRows(rest, top: min(lockWanted, rest.height - threadHeight))
  }

  // Every lock's numbers are computed for the filter and the sort; only the rows on screen are
  // built in full, and their cells (which hold the symbolizer) only while the table is drawn.
  withoutActuallyEscaping(symbolize) { symbolize in
    let context = LockRowContext(snapshot, rates: data.rates, waitCycles: cycles)
    let formatter = LockCellFormatter(
      names: c.threadNames, style: cellStyle(glyphs), symbolize: symbolize,
      staticFindings: state.staticLockFindings)
    let needle = state.filter.lowercased()
    var kept: [Int] = []
    var ids: [Int] = []
    var keys: [[SortValue?]] = []
    kept.reserveCapacity(snapshot.locks.count)
    ids.reserveCapacity(snapshot.locks.count)
    keys.reserveCapacity(snapshot.locks.count)
    for (i, lock) in snapshot.locks.enumerated() {
      let row = context.row(lock)
      if !needle.isEmpty {
        let paneRow = lockPaneRow(row, formatter: formatter, searchable: true)
        if !paneRow.search.contains(needle) { continue }
      }
      kept.append(i)
      ids.append(Int(truncatingIfNeeded: row.id))
      keys.append(lockSortValues(row, state.current.sortKey))
    }
    let order = sortedOrder(ids: ids, keys: keys, sort: state.current)
    drawPaneTable(
      into: &g, state: state, rect: lockArea, columns: lockColumns(glyphs: glyphs),
      ids: order.map { ids[$0] },
      id: \.id, layout: &layout
    ) { position in
      lockPaneRow(context.row(snapshot.locks[kept[order[position]]]), formatter: formatter, searchable: false)
    }
    if snapshot.locks.isEmpty {
      drawEmptyLine(into: &g, "no locks published by this guest", rect: lockArea)
    } else if order.isEmpty {
      drawEmptyLine(into: &g, noMatch("lock", state.filter), rect: lockArea)
    }
  }

  if threadArea.height >= 2 {
    let threads = threadRows(snapshot, context: c, filter: state.filter, limit: threadArea.height)
    let listed = state.filter.isEmpty ? threadCount : threads.count
    let blocked =
      state.filter.isEmpty
      ? snapshot.threads.filter { $0.blockedOn != 0 }.count
      : threads.filter { $0.record.blockedOn != 0 }.count
    var title = Segments()
    title.add("threads", .title)
    title.add("\(threadCount)", .value, separated: true)
    if blocked > 0 { title.add("\(blocked) blocked", .warn, separated: true) }
    g.hline(x: threadArea.x, y: threadArea.y, width: threadArea.width, glyphs: glyphs)
    title.draw(into: &g, x: threadArea.x + 2, y: threadArea.y, width: threadArea.width - 4, glyphs: glyphs)
    let table = Rect(
      x: threadArea.x, y: threadArea.y + 1, width: threadArea.width, height: threadArea.height - 1)
    drawTable(
      into: &g, rect: table, columns: placeColumns(threadColumns(context: c), width: table.width),
      rows: threads,
      scroll: 0, selected: nil, sortKey: nil, descending: false, glyphs: glyphs,
      id: { Int(truncatingIfNeeded: $0.record.id) })
    if listed > table.height - 1 && table.height >= 2 {
      let more = "+\(listed - (table.height - 2)) more"
      g.fill(Rect(x: table.x, y: table.maxY - 1, width: table.width, height: 1))
      g.put(more, x: table.x + 1, y: table.maxY - 1, style: .dim)
    }
  }
  return layout
}
