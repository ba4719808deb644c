import Inspector

/// One lock as the locks pane shows it.
struct LockRow {
  var id: Int
  var record: LockRecord
  var rates: LockRates?
  var holder: String
  var heldFor: Double?
  var meanWait: Double?
  var maxWait: Double?
  var maxHold: Double?
  var waiters: String
  var misuse: String
  var site: String
  var inCycle: Bool
  var marker: Unicode.Scalar
  var markerStyle: Style
  var search: String
}

/// Builds the lock rows.
func lockRows(
  _ snapshot: Snapshot, rates: SnapshotRates?, context c: PaneContext, cycleLocks: Set<UInt64>,
  symbolize: Symbolizer, searchable: Bool = true, staticFindings: [UInt64: String] = [:]
)
  -> [LockRow]
{
  var rateByAddress: [UInt64: LockRates] = [:]
  for r in rates?.locks ?? [] where rateByAddress[r.address] == nil { rateByAddress[r.address] = r }
  return snapshot.locks.map { l in
    let (marker, markerStyle) = consistencyMarker(l.consistency)
    let rate = rateByAddress[l.address]
    var holder = "-"
    switch (l.holderLCPU, l.holderThread) {
    case (let cpu?, let t?): holder = "\(c.threadName(t))@cpu\(cpu)"
    case (nil, let t?): holder = c.threadName(t)
    case (let cpu?, nil): holder = "cpu\(cpu)"
    case (nil, nil):
      if l.kind == .rw && l.readers > 0 { holder = "\(l.readers) reader\(l.readers == 1 ? "" : "s")" }
    }
    var waiterNames: [String] = []
    for w in l.waiters.prefix(3) {
      if let t = w.thread {
        waiterNames.append(c.threadName(t))
      } else if let cpu = w.lcpu {
        waiterNames.append("cpu\(cpu)")
      }
    }
    var waiters = l.waiterCount == 0 ? "-" : "\(l.waiterCount)"
    if !waiterNames.isEmpty { waiters += " " + waiterNames.joined(separator: ",") }
    if Int(l.waiterCount) > waiterNames.count && !waiterNames.isEmpty {
      waiters += "," + String(c.glyphs.ellipsis)
    }
    if l.pendingWriters > 0 { waiters += " +\(l.pendingWriters)w" }
    var misuse = "-"
    if l.misuseTotal > 0 {
      var parts: [String] = []
      if l.misuseIRQUnsafe > 0 { parts.append("irq-unsafe \(l.misuseIRQUnsafe)") }
      if l.misuseSleepInIRQ > 0 { parts.append("sleep-in-irq \(l.misuseSleepInIRQ)") }
      if l.misuseRecursion > 0 { parts.append("recursion \(l.misuseRecursion)") }
      if l.misuseBadUnlock > 0 { parts.append("bad-unlock \(l.misuseBadUnlock)") }
      misuse = "\(l.misuseTotal) " + parts.joined(separator: ", ")
    }
    if let found = staticFindings[l.address] {
      // First, so a narrow column still shows it: S:irq (irq-unsafe), S:sleep (sleep-in-irq).
      let kinds = found.split(separator: ",").map {
        $0 == "sleep-in-irq" ? "sleep" : $0 == "irq-unsafe" ? "irq" : $0
      }
      misuse = "S:" + kinds.joined(separator: "/") + (misuse == "-" ? "" : " " + misuse)
    }
    let lifetimeMean = l.contended == 0 ? nil : Double(l.waitTotalTSC) / Double(l.contended)
    var row = LockRow(
      id: Int(truncatingIfNeeded: l.address), record: l, rates: rate, holder: holder,
      heldFor: l.isHeld ? c.since(l.acquiredTSC) : nil,
      meanWait: (rate?.meanWaitTSC ?? lifetimeMean).flatMap { c.seconds($0) },
      maxWait: l.contended == 0 ? nil : c.seconds(l.waitMaxTSC),
      maxHold: l.acquisitions == 0 || l.kind == .semaphore ? nil : c.seconds(l.holdMaxTSC), waiters: waiters,
      misuse: misuse,
      site: l.acquireSite == 0 ? "-" : (symbolize(l.acquireSite) ?? Format.address(l.acquireSite)),
      inCycle: cycleLocks.contains(l.address), marker: marker, markerStyle: markerStyle, search: "")
    if case .unreadable(let reason) = l.consistency {
      row.holder = "unreadable: " + reason
      row.heldFor = nil
      row.rates = nil
      row.meanWait = nil
      row.maxWait = nil
      row.maxHold = nil
    }
    guard searchable else { return row }
    row.search = "\(l.name) \(l.kind.rawValue) \(row.holder) \(row.waiters) \(row.site)".lowercased()
    if l.misuseTotal > 0 { row.search += " misuse" }
    if staticFindings[l.address] != nil { row.search += " static" }
    if row.inCycle { row.search += " deadlock" }
    return row
  }
}

/// Sort values of a lock row.
func lockSortValues(_ r: LockRow, _ key: SortKey) -> [SortValue?] {
  switch key {
  case .contention:
    return [
      r.rates.map { .number($0.contendedPerSecond) },
      .number(r.rates?.contendedPercent ?? r.record.contendedPercent),
    ]
  case .name: return [.text(r.record.name)]
  case .acquisitions: return [r.rates.map { .number($0.acquisitionsPerSecond) }]
  case .wait: return [r.meanWait.map { .number($0) }, r.maxWait.map { .number($0) }]
  case .hold: return [r.maxHold.map { .number($0) }]
  case .waiters: return [.number(Double(r.record.waiterCount))]
  case .misuse: return [.number(Double(r.record.misuseTotal))]
  default: return []
  }
}

/// The columns of the locks table.
func lockColumns(glyphs: Glyphs) -> [Column<LockRow>] {
  let e = glyphs.ellipsis
  func time(_ v: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int, warnAbove: Double = .infinity) {
    guard let v else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
    g.field(
      Format.duration(seconds: v, micro: glyphs.micro), x: x, y: y, width: w,
      style: v > warnAbove ? .warn : .normal,
      align: .right, ellipsis: e)
  }
  return [
    .flexible("NAME", minimum: 10, preferred: 14, maximum: 28, weight: 2, priority: 0, key: .name) {
      g, r, x, y, w in
      g[x, y] = Cell(r.marker, r.markerStyle)
      let style: Style = r.inCycle || r.record.misuseTotal > 0 ? .error : .value
      textCell(&g, r.record.name, x: x + 1, y: y, width: w - 1, glyphs: glyphs, style: style)
    },
    .fixed("KIND", 6, priority: 3, align: .left) { g, r, x, y, w in
      // "semaphore" does not fit the column; "sem" does, with room for the dynamic-lock star.
      let kind = r.record.kind == .semaphore ? "sem" : r.record.kind.rawValue
      textCell(
        &g, kind + (r.record.dynamic ? "*" : ""), x: x, y: y, width: w, glyphs: glyphs, style: .dim)
    },
    .flexible("HOLDER", minimum: 8, preferred: 10, maximum: 24, weight: 1, priority: 0, align: .left) {
      g, r, x, y, w in
      let style: Style = r.marker == "!" ? .error : (r.holder == "-" ? .dim : (r.inCycle ? .error : .normal))
      textCell(&g, r.holder, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
    .fixed("HELD", 6, priority: 1) { g, r, x, y, w in time(r.heldFor, &g, x, y, w, warnAbove: 0.01) },
    .fixed("ACQ/s", 6, priority: 0, key: .acquisitions) { g, r, x, y, w in
      numberCell(&g, r.rates?.acquisitionsPerSecond, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("CONT/s", 7, priority: 0, key: .contention) { g, r, x, y, w in
      numberCell(&g, r.rates?.contendedPerSecond, x: x, y: y, width: w, glyphs: glyphs, style: .warn)
    },
    .fixed("CONT%", 6, priority: 4) { g, r, x, y, w in
      guard let rate = r.rates else {
        return g.field(glyphs.unknown, x: x, y: y, width: w, style: .dim, align: .right)
      }
      guard let p = rate.contendedPercent else {
        return g.field("-", x: x, y: y, width: w, style: .dim, align: .right)
      }
      g.field(
        Format.fixed(p, decimals: 1), x: x, y: y, width: w,
        style: p >= 25 ? .warn : (p == 0 ? .dim : .normal),
        align: .right)
    },
    .fixed("WAIT", 6, priority: 0, key: .wait) { g, r, x, y, w in time(r.meanWait, &g, x, y, w) },
    .fixed("WMAX", 6, priority: 2) { g, r, x, y, w in time(r.maxWait, &g, x, y, w, warnAbove: 0.001) },
    .fixed("HOLD", 6, priority: 5, key: .hold) { g, r, x, y, w in
      time(r.maxHold, &g, x, y, w, warnAbove: 0.001)
    },
    .flexible(
      "WAITERS", minimum: 7, preferred: 8, maximum: 30, weight: 1, priority: 1, key: .waiters, align: .left
    ) {
      g, r, x, y, w in
      textCell(
        &g, r.waiters, x: x, y: y, width: w, glyphs: glyphs,
        style: r.waiters == "-" ? .dim : (r.inCycle ? .error : .warn))
    },
    .flexible(
      "MISUSE", minimum: 6, preferred: 6, maximum: 40, weight: 1, priority: 0, bonus: (6, 18), key: .misuse,
      align: .left
    ) {
      g, r, x, y, w in
      textCell(
        &g, r.misuse, x: x, y: y, width: w, glyphs: glyphs,
        style: r.record.misuseTotal > 0 ? .error : (r.misuse == "-" ? .dim : .warn))
    },
    .fixed("TRYFAIL", 7, priority: 8) { g, r, x, y, w in
      numberCell(&g, Double(r.record.trylockFailures), x: x, y: y, width: w, glyphs: glyphs)
    },
    .flexible("ACQUIRED AT", minimum: 12, preferred: 24, maximum: 60, weight: 2, priority: 7, align: .left) {
      g, r, x, y, w in
      g.field(
        truncateSymbol(r.site, to: w, ellipsis: e), x: x, y: y, width: w,
        style: r.site == "-" ? .dim : .symbol, ellipsis: e)
    },
  ]
}

/// One thread as the locks pane shows it.
struct ThreadRow {
  var record: ThreadRecord
  var blockedOn: String
  var wakeIn: Double?
}

/// Threads, the blocked ones first, then by id.
func threadRows(_ snapshot: Snapshot, context c: PaneContext, filter: String) -> [ThreadRow] {
  var lockNames: [UInt64: String] = [:]
  for l in snapshot.locks where lockNames[l.address] == nil { lockNames[l.address] = l.name }
  let needle = filter.lowercased()
  var rows = snapshot.threads.map { t in
    ThreadRow(
      record: t,
      blockedOn: t.blockedOn == 0 ? "-" : (lockNames[t.blockedOn] ?? Format.address(t.blockedOn)),
      wakeIn: t.wakeTSC == 0 ? nil : c.until(t.wakeTSC))
  }
  if !needle.isEmpty {
    rows = rows.filter {
      "\($0.record.name) \($0.record.state.rawValue) \($0.blockedOn)".lowercased().contains(needle)
    }
  }
  func rank(_ s: ThreadState) -> Int {
    switch s {
    case .blockedOnLock, .blockedOnSemaphore, .blockedOnWaitQueue: return 0
    case .spinning: return 1
    case .running: return 2
    case .ready: return 3
    case .sleeping: return 4
    default: return 5
    }
  }
  rows.sort { (rank($0.record.state), $0.record.id) < (rank($1.record.state), $1.record.id) }
  return rows
}

/// The columns of the thread list.
func threadColumns(context c: PaneContext) -> [Column<ThreadRow>] {
  let glyphs = c.glyphs
  return [
    .fixed("TID", 5, priority: 0) { g, r, x, y, w in
      let (m, ms) = consistencyMarker(r.record.consistency)
      g.field(String(r.record.id), x: x, y: y, width: w - 1, style: .value, align: .right)
      g[x + w - 1, y] = Cell(m, ms)
    },
    .flexible("THREAD", minimum: 8, preferred: 12, maximum: 24, weight: 1, priority: 0) { g, r, x, y, w in
      textCell(&g, r.record.name, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("STATE", 13, priority: 0, align: .left) { g, r, x, y, w in
      let style: Style
      switch r.record.state {
      case .blockedOnLock, .blockedOnSemaphore, .blockedOnWaitQueue, .spinning: style = .warn
      case .running: style = .ok
      case .unknown: style = .error
      default: style = .normal
      }
      textCell(&g, r.record.state.rawValue, x: x, y: y, width: w, glyphs: glyphs, style: style)
    },
    .fixed("CPU", 4, priority: 0) { g, r, x, y, w in
      g.field(String(r.record.lcpu), x: x, y: y, width: w, style: .normal, align: .right)
    },
    .flexible("BLOCKED ON", minimum: 8, preferred: 14, maximum: 28, weight: 1, priority: 0) { g, r, x, y, w in
      textCell(
        &g, r.blockedOn, x: x, y: y, width: w, glyphs: glyphs, style: r.blockedOn == "-" ? .dim : .warn)
    },
    .fixed("WAKE IN", 11, priority: 1) { g, r, x, y, w in
      g.field(
        r.wakeIn.map { Format.due(seconds: $0, micro: glyphs.micro) } ?? "-", x: x, y: y, width: w,
        style: r.wakeIn == nil ? .dim : (r.wakeIn ?? 0 < 0 ? .warn : .normal), align: .right)
    },
    .fixed("CPU TIME", 8, priority: 2) { g, r, x, y, w in
      g.field(c.duration(c.seconds(r.record.cpuTSC)), x: x, y: y, width: w, align: .right)
    },
    .fixed("SWITCHES", 8, priority: 3) { g, r, x, y, w in
      numberCell(&g, Double(r.record.switches), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("OPS", 6, priority: 3) { g, r, x, y, w in
      numberCell(&g, Double(r.record.ops), x: x, y: y, width: w, glyphs: glyphs)
    },
  ]
}

/// "deadlock: alpha waits lock-B held by beta waits lock-A held by alpha".
func deadlockText(_ cycle: WaitCycle, context c: PaneContext) -> String {
  guard let first = cycle.steps.first else { return "deadlock" }
  var s = "deadlock: " + c.threadName(first.thread)
  for (i, step) in cycle.steps.enumerated() {
    let next = cycle.steps[(i + 1) % cycle.steps.count]
    s += " waits \(step.lock) held by \(c.threadName(next.thread))"
  }
  return s
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
  var cycleLocks = Set<UInt64>()
  for cycle in cycles { for s in cycle.steps { cycleLocks.insert(s.lockAddress) } }

  // Banners: every cycle (at most a third of the body), then one misuse line.
  var banners: [(String, Style)] = []
  for cycle in cycles.prefix(max(1, body.height / 3)) {
    banners.append((deadlockText(cycle, context: c), .error))
  }
  if cycles.count > max(1, body.height / 3) {
    banners.append(("\(cycles.count) wait-for cycles in all", .error))
  }
  let misused = snapshot.misusedLocks
  if !misused.isEmpty {
    let names = misused.prefix(4).map { "\($0.name) (\($0.misuseTotal))" }.joined(separator: ", ")
    banners.append(("misuse on \(misused.count) lock\(misused.count == 1 ? "" : "s"): " + names, .error))
  }
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

  let all = lockRows(
    snapshot, rates: data.rates, context: c, cycleLocks: cycleLocks, symbolize: symbolize,
    searchable: !state.filter.isEmpty, staticFindings: state.staticLockFindings)
  let rows = arrangeRows(
    all, filter: state.filter, sort: state.current, search: \.search, id: \.id, values: lockSortValues)
  drawPaneTable(
    into: &g, state: state, rect: lockArea, columns: lockColumns(glyphs: glyphs), rows: rows, id: \.id,
    layout: &layout)
  if all.isEmpty {
    drawEmptyLine(into: &g, "no locks published by this guest", rect: lockArea)
  } else if rows.isEmpty {
    drawEmptyLine(into: &g, noMatch("lock", state.filter), rect: lockArea)
  }

  if threadArea.height >= 2 {
    let threads = threadRows(snapshot, context: c, filter: state.filter)
    let blocked = threads.filter { $0.record.blockedOn != 0 }.count
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
    if threads.count > table.height - 1 && table.height >= 2 {
      let more = "+\(threads.count - (table.height - 2)) more"
      g.fill(Rect(x: table.x, y: table.maxY - 1, width: table.width, height: 1))
      g.put(more, x: table.x + 1, y: table.maxY - 1, style: .dim)
    }
  }
  return layout
}
