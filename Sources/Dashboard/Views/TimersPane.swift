import Model

/// One lcpu's timer queue as the timers pane shows it: the shared row model plus what only the pane needs.
struct TimerRow {
  /// The row every output renders.
  var row: TimerQueueRow
  /// The lcpu.
  var id: Int
  /// The consistency marker drawn after the lcpu number.
  var marker: Unicode.Scalar
  /// How the marker is drawn.
  var markerStyle: Style
  /// Lower-cased text the filter matches against.
  var search: String
  /// The queue's record.
  var record: TimerQueueRecord { row.record }
  /// Seconds until the next deadline.
  var due: Double? { row.due }
  /// Timers fired per second.
  var firedPerSecond: Double? { row.firedPerSecond }
  /// The latest lateness, in seconds.
  var lateMax: Double? { row.lateMax }
}

/// Builds the timer rows.
func timerRows(_ snapshot: Snapshot, rates: SnapshotRates?, context c: PaneContext) -> [TimerRow] {
  TimerQueueRow.rows(snapshot, rates: rates, style: cellStyle(c.glyphs)).map { r in
    let (m, ms) = consistencyMarker(r.record.consistency)
    return TimerRow(
      row: r, id: Int(r.record.lcpu), marker: m, markerStyle: ms,
      search: "cpu\(r.record.lcpu) \(r.cells.earliest)".lowercased())
  }
}

/// The columns of the timers table.
func timerColumns(context c: PaneContext) -> [Column<TimerRow>] {
  let glyphs = c.glyphs
  func time(_ text: String, _ v: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int, warnAbove: Double) {
    g.field(
      text, x: x, y: y, width: w, style: v == nil ? .dim : (v ?? 0 > warnAbove ? .warn : .normal),
      align: .right,
      ellipsis: glyphs.ellipsis)
  }
  return [
    .fixed("CPU", 4, priority: 0, key: .index) { g, r, x, y, w in
      g.field(r.row.cells.lcpu, x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(r.marker, r.markerStyle)
    },
    .fixed("PEND", 5, priority: 0, key: .pending) { g, r, x, y, w in
      cellNumber(r.row.cells.pending, Double(r.record.pending), &g, x, y, w)
    },
    .fixed("DUE IN", 11, priority: 0, key: .deadline) { g, r, x, y, w in
      let style: Style = r.due.map { $0 < 0 ? .warn : .normal } ?? .dim
      g.field(r.row.cells.due, x: x, y: y, width: w, style: style, align: .right)
    },
    .fixed("FIRED/s", 8, priority: 0, key: .fired) { g, r, x, y, w in
      cellNumber(r.row.cells.firedPerSecond, r.firedPerSecond, &g, x, y, w)
    },
    .fixed("LATE MAX", 9, priority: 0, key: .late) { g, r, x, y, w in
      time(r.row.cells.lateMax, r.lateMax, &g, x, y, w, warnAbove: 0.001)
    },
    .fixed("LATE AVG", 8, priority: 1) { g, r, x, y, w in
      time(r.row.cells.lateMean, r.row.lateMean, &g, x, y, w, warnAbove: 0.0001)
    },
    .fixed("FIRED", 7, priority: 3) { g, r, x, y, w in
      cellNumber(r.row.cells.fired, Double(r.record.fired), &g, x, y, w)
    },
    .flexible(
      "LATENESS", minimum: 10, preferred: 10, maximum: 80, weight: 1, priority: 2, bonus: (4, 50),
      align: .left
    ) {
      g, r, x, y, w in
      let h = r.record.lateHistogram
      if w >= 60 {
        let text = r.row.cells.lateness
        textCell(&g, text, x: x, y: y, width: w, glyphs: glyphs, style: text == "-" ? .dim : .normal)
      } else {
        g[x, y] = Cell("[", .border)
        g.put(sparkline(h, glyphs: glyphs), x: x + 1, y: y, style: .meterBusy, maxWidth: w - 2)
        g[x + min(w - 1, h.count + 1), y] = Cell("]", .border)
      }
    },
    .flexible("EARLIEST PENDING", minimum: 12, preferred: 24, maximum: 80, weight: 2, priority: 0) {
      g, r, x, y, w in
      let earliest = r.row.cells.earliest
      let style: Style = r.marker == "!" ? .error : (earliest == "-" ? .dim : .normal)
      textCell(&g, earliest, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
  ]
}

/// The timers pane: a summary line, then one row per lcpu's timer queue.
func drawTimersPane(
  into g: inout Grid, state: DashboardState, data: DashboardData, snapshot: Snapshot, body: Rect,
  layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  guard !snapshot.timerQueues.isEmpty else {
    g.put(
      "no timer queues published by this guest", x: body.x + 1, y: body.y, style: .dim,
      maxWidth: body.width - 2)
    layout.rowIDs = []
    return layout
  }
  let c = PaneContext(snapshot: snapshot, glyphs: glyphs)
  let all = timerRows(snapshot, rates: data.rates, context: c)
  var s = Segments()
  s.add("\(snapshot.timerQueues.reduce(0) { $0 + Int($1.pending) }) pending", .value)
  let fired = data.rates.map { $0.timersFiredPerSecond.values.reduce(0, +) }
  s.add((fired.map(Format.human) ?? glyphs.unknown) + "/s", .value, separated: true, label: "fired ")
  let worst = all.compactMap { r in r.lateMax.map { (id: r.id, late: $0) } }.max { $0.late < $1.late }
  if let worst {
    let late = worst.late
    s.add(
      c.duration(late) + " on cpu\(worst.id)", late > 0.001 ? .warn : .value, priority: 1, separated: true,
      label: "worst lateness ")
  }
  s.draw(into: &g, x: body.x, y: body.y, width: body.width, glyphs: glyphs)
  let (_, tableArea) = splitRows(body, top: 2)
  let rows = arrangeRows(
    all, filter: state.filter, sort: state.current, search: \.search, id: \.id,
    values: { r, key in
      switch key {
      case .index: return [.number(Double(r.id))]
      case .pending: return [.number(Double(r.record.pending))]
      case .deadline: return [r.due.map { .number($0) }]
      case .fired: return [r.firedPerSecond.map { .number($0) }]
      case .late: return [r.lateMax.map { .number($0) }]
      default: return []
      }
    })
  // Where each shown queue's next timer's owner waits for it, under the table when it fits.
  let owners = timerOwnerLines(rows.map(\.record), context: c)
  var table = tableArea
  if !owners.isEmpty, tableArea.height >= rows.count + 1 + 2 + owners.count {
    table.height = rows.count + 1
    let y = table.y + table.height + 1
    g.put("NEXT TIMER'S OWNER WAITS AT", x: body.x + 1, y: y, style: .label, maxWidth: body.width - 2)
    for (i, line) in owners.enumerated() {
      g.put(line, x: body.x + 1, y: y + 1 + i, style: .symbol, maxWidth: body.width - 2)
    }
  }
  drawPaneTable(
    into: &g, state: state, rect: table, columns: timerColumns(context: c), rows: rows, id: \.id,
    layout: &layout)
  if rows.isEmpty { drawEmptyLine(into: &g, noMatch("timer queue", state.filter), rect: tableArea) }
  return layout
}

/// "cpu1  rw.1 in 1.67ms  Workload.swift:232 in Workload.pace(_:)": for each queue whose earliest
/// timer's owner is placed (its backtrace shows it waiting for that deadline).
func timerOwnerLines(_ queues: [TimerQueueRecord], context c: PaneContext) -> [String] {
  queues.compactMap { q in
    guard let t = q.timers.min(by: { $0.deadlineTSC < $1.deadlineTSC }), let place = t.ownerLocation else {
      return nil
    }
    return "cpu\(q.lcpu)  \(c.threadName(t.ownerThread)) \(c.due(c.until(t.deadlineTSC)))  \(place.text)"
  }
}
