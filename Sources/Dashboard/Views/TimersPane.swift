import Inspector

/// One lcpu's timer queue as the timers pane shows it.
struct TimerRow {
  var id: Int
  var record: TimerQueueRecord
  var firedPerSecond: Double?
  var due: Double?
  var lateMax: Double?
  var lateMean: Double?
  var earliest: String
  var marker: Unicode.Scalar
  var markerStyle: Style
  var search: String
}

/// Lateness bucket labels, matching `TimerQueueRecord.lateHistogram`.
let latenessBuckets = ["<1us", "<10us", "<100us", "<1ms", "<10ms", "<100ms", "<1s", ">=1s"]

/// Builds the timer rows.
func timerRows(_ snapshot: Snapshot, rates: SnapshotRates?, context c: PaneContext) -> [TimerRow] {
  snapshot.timerQueues.map { q in
    let (m, ms) = consistencyMarker(q.consistency)
    let soonest = q.timers.sorted { Int64(bitPattern: $0.deadlineTSC &- $1.deadlineTSC) < 0 }.prefix(4)
    let earliest = soonest.map { t in c.threadName(t.ownerThread) + " " + c.due(c.until(t.deadlineTSC)) }
    var text = earliest.joined(separator: ", ")
    if Int(q.pending) > soonest.count { text += earliest.isEmpty ? "" : ", " + String(c.glyphs.ellipsis) }
    if text.isEmpty { text = "-" }
    var row = TimerRow(
      id: Int(q.lcpu), record: q, firedPerSecond: rates?.timersFiredPerSecond[q.lcpu],
      due: c.until(q.nextDeadlineTSC),
      lateMax: q.fired == 0 ? nil : c.seconds(q.lateMaxTSC),
      lateMean: q.fired == 0 ? nil : c.seconds(Double(q.lateTotalTSC) / Double(q.fired)), earliest: text,
      marker: m,
      markerStyle: ms, search: "")
    if case .unreadable(let reason) = q.consistency {
      row.earliest = "unreadable: " + reason
      row.due = nil
      row.lateMax = nil
      row.lateMean = nil
    }
    row.search = "cpu\(q.lcpu) \(row.earliest)".lowercased()
    return row
  }
}

/// The columns of the timers table.
func timerColumns(context c: PaneContext) -> [Column<TimerRow>] {
  let glyphs = c.glyphs
  func time(_ v: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int, warnAbove: Double = .infinity) {
    guard let v else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
    g.field(
      Format.duration(seconds: v, micro: glyphs.micro), x: x, y: y, width: w,
      style: v > warnAbove ? .warn : .normal,
      align: .right, ellipsis: glyphs.ellipsis)
  }
  return [
    .fixed("CPU", 4, priority: 0, key: .index) { g, r, x, y, w in
      g.field(String(r.id), x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(r.marker, r.markerStyle)
    },
    .fixed("PEND", 5, priority: 0, key: .pending) { g, r, x, y, w in
      numberCell(&g, Double(r.record.pending), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("DUE IN", 11, priority: 0, key: .deadline) { g, r, x, y, w in
      guard let due = r.due else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
      g.field(c.due(due), x: x, y: y, width: w, style: due < 0 ? .warn : .normal, align: .right)
    },
    .fixed("FIRED/s", 8, priority: 0, key: .fired) { g, r, x, y, w in
      numberCell(&g, r.firedPerSecond, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("LATE MAX", 9, priority: 0, key: .late) { g, r, x, y, w in
      time(r.lateMax, &g, x, y, w, warnAbove: 0.001)
    },
    .fixed("LATE AVG", 8, priority: 1) { g, r, x, y, w in time(r.lateMean, &g, x, y, w, warnAbove: 0.0001) },
    .fixed("FIRED", 7, priority: 3) { g, r, x, y, w in
      numberCell(&g, Double(r.record.fired), x: x, y: y, width: w, glyphs: glyphs)
    },
    .flexible(
      "LATENESS", minimum: 10, preferred: 10, maximum: 80, weight: 1, priority: 2, bonus: (4, 50),
      align: .left
    ) {
      g, r, x, y, w in
      let h = r.record.lateHistogram
      if w >= 60 {
        var text = ""
        for (i, n) in h.enumerated() where n > 0 {
          if !text.isEmpty { text += " " }
          text +=
            latenessBuckets[min(i, latenessBuckets.count - 1)].replacingMicro(glyphs.micro) + ":"
            + Format.human(Double(n))
        }
        textCell(
          &g, text.isEmpty ? "-" : text, x: x, y: y, width: w, glyphs: glyphs,
          style: text.isEmpty ? .dim : .normal)
      } else {
        g[x, y] = Cell("[", .border)
        g.put(sparkline(h, glyphs: glyphs), x: x + 1, y: y, style: .meterBusy, maxWidth: w - 2)
        g[x + min(w - 1, h.count + 1), y] = Cell("]", .border)
      }
    },
    .flexible("EARLIEST PENDING", minimum: 12, preferred: 24, maximum: 80, weight: 2, priority: 0) {
      g, r, x, y, w in
      let style: Style = r.marker == "!" ? .error : (r.earliest == "-" ? .dim : .normal)
      textCell(&g, r.earliest, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
  ]
}

extension String {
  /// "<10us" with the terminal's microsecond unit.
  func replacingMicro(_ micro: String) -> String {
    guard micro != "us", hasSuffix("us") else { return self }
    return String(dropLast(2)) + micro
  }
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
  drawPaneTable(
    into: &g, state: state, rect: tableArea, columns: timerColumns(context: c), rows: rows, id: \.id,
    layout: &layout)
  if rows.isEmpty { drawEmptyLine(into: &g, noMatch("timer queue", state.filter), rect: tableArea) }
  return layout
}
