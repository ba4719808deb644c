import Model

/// Rows the header takes at the top of the screen.
let headerHeight = 3

/// Draws the three header lines: target, source and cost, load summary.
func drawHeader(into g: inout Grid, state: DashboardState, data: DashboardData, width: Int) {
  let glyphs = state.charset.glyphs
  let snap = data.snapshot
  let target = data.target

  // Line 0: what we look at.
  var right = Segments()
  if let up = snap?.uptimeSeconds { right.add("up " + Format.uptime(seconds: up), .value) }
  let rightText = right.pieces.first.map { $0.text } ?? ""
  let rightWidth = displayWidth(rightText)
  if rightWidth > 0 && rightWidth + 10 < width {
    right.draw(into: &g, x: width - rightWidth, y: 0, width: rightWidth, glyphs: glyphs)
  }
  var left = Segments()
  left.add("smptop", .title)
  if let v = target.qemuVersion { left.add("QEMU " + v, .value, priority: 2, separated: true) }
  if let m = target.machine { left.add(m, .normal, priority: 4, separated: true) }
  if let snap {
    if let guest = snap.guest {
      let n = snap.lcpus.count
      var text = "\(n) lcpu\(n == 1 ? "" : "s")"
      if guest.lcpusOnline != UInt64(n) { text += " (\(guest.lcpusOnline) online)" }
      left.add(text, .value, separated: true)
    } else {
      let n = snap.vcpus?.count
      left.add(n.map { "\($0) vCPU\($0 == 1 ? "" : "s")" } ?? "vCPUs ?", .value, separated: true)
    }
    left.add(runStateText(snap), runStateStyle(snap), separated: true)
    if let w = snap.workload {
      left.add(
        w.scenario.isEmpty ? "workload" : w.scenario, .value, priority: 1, separated: true, label: "workload "
      )
      let (text, style) = workloadCheckText(w)
      left.add(text, style, separated: true)
    }
  }
  if let name = target.name { left.add(name, .dim, priority: 5, separated: true, label: "kernel ") }
  left.draw(
    into: &g, x: 0, y: 0, width: max(0, width - (rightWidth > 0 ? rightWidth + 1 : 0)), glyphs: glyphs)

  // Line 1: where the numbers come from and what they cost.
  var src = Segments()
  guard let snap else {
    src.add("waiting for the first snapshot", .dim)
    src.draw(into: &g, x: 0, y: 1, width: width, glyphs: glyphs)
    return
  }
  src.add(sourceText(snap.source), .value, label: "source ")
  src.add("every " + intervalText(state.intervalMilliseconds), .normal, priority: 2, separated: true)
  // What the refresh cost, part by part: the snapshot read, then QMP and the detail view when they ran.
  func time(_ ns: UInt64) -> String { Format.duration(seconds: Double(ns) / 1e9, micro: glyphs.micro) }
  src.add(time(snap.costNanoseconds), .normal, priority: 1, separated: true, label: "read ")
  if let cost = data.cost, cost.qmpNanoseconds > 0 {
    src.add(time(cost.qmpNanoseconds), .normal, priority: 3, separated: true, label: "QMP ")
  }
  if let cost = data.cost, cost.detailNanoseconds > 0 {
    src.add(time(cost.detailNanoseconds), .normal, priority: 4, separated: true, label: "detail ")
  }
  if snap.pauseNanoseconds > 0 {
    src.add(time(snap.pauseNanoseconds), .normal, priority: 3, separated: true, label: "pause ")
  } else if snap.source == .gdbstub {
    src.add("no pause: VM already stopped", .normal, priority: 3, separated: true)
  }
  let p = snap.problems.count
  src.add(p == 0 ? "no problems" : "\(p) problem\(p == 1 ? "" : "s")", p == 0 ? .dim : .warn, separated: true)
  if let first = snap.problems.first {
    src.add(": " + first, .warn, priority: 6, elastic: true)
  }
  src.draw(into: &g, x: 0, y: 1, width: width, glyphs: glyphs)

  // Line 2: the whole machine at a glance.
  if snap.guest == nil {
    var s = Segments()
    s.add("generic mode", .warn)
    s.add(": no inspection ABI in this guest; registers and RIP come from the gdbstub", .dim, elastic: true)
    s.draw(into: &g, x: 0, y: 2, width: width, glyphs: glyphs)
    return
  }
  let rates = data.rates?.lcpus ?? []
  let busy = rates.compactMap(\.busyPercent)
  let average = busy.isEmpty ? nil : busy.reduce(0, +) / Double(busy.count)
  let meterWidth = max(10, min(width / 2, width - 40))
  g.put("Avg", x: 0, y: 2, style: .label)
  g.meter(
    x: 3, y: 2, width: meterWidth - 3, fraction: average.map { $0 / 100 },
    text: average.map { Format.fixed($0, decimals: 1) + "%" } ?? noShareText(snap), glyphs: glyphs)
  var totals = Segments()
  func total(_ key: KeyPath<LCPURates, Double>) -> String {
    rates.isEmpty ? "-" : Format.human(rates.map { $0[keyPath: key] }.reduce(0, +))
  }
  let allIRQs =
    rates.isEmpty
    ? "-"
    : Format.human(
      rates.map { $0.timerIRQsPerSecond + $0.ipisPerSecond + $0.deviceIRQsPerSecond + $0.spuriousPerSecond }
        .reduce(0, +))
  totals.add(allIRQs + "/s", .value, label: "irq ")
  totals.add(total(\.ipisPerSecond) + "/s", .value, priority: 1, separated: true, label: "ipi ")
  totals.add(total(\.deviceIRQsPerSecond) + "/s", .value, priority: 2, separated: true, label: "dev ")
  totals.add(total(\.ticksPerSecond) + "/s", .value, priority: 3, separated: true, label: "ticks ")
  if data.rates?.counterReset == true { totals.add("counters reset", .warn, separated: true) }
  totals.draw(into: &g, x: meterWidth + 2, y: 2, width: width - meterWidth - 2, glyphs: glyphs)
}

/// "live shared RAM", "gdbstub, VM stopped", "recording".
func sourceText(_ source: MemorySourceKind) -> String {
  switch source {
  case .sharedRAM: return "live shared RAM"
  case .gdbstub: return "gdbstub, VM stopped"
  case .recording: return "recording"
  }
}

/// QEMU's run state, or the guest's boot stage when QEMU did not say.
///
/// QEMU calls a VM its debugger stopped (the gdbstub, after a step or an interrupt) `debug`; the header
/// says who stopped it instead.
func runStateText(_ snap: Snapshot) -> String {
  if let r = snap.runState { return r == .debug ? "stopped (gdbstub)" : r.word }
  if let guest = snap.guest { return guest.isRunning ? "guest running" : "guest booting" }
  return "state ?"
}

/// Green when running, yellow when paused or anything else.
func runStateStyle(_ snap: Snapshot) -> Style {
  guard let r = snap.runState else { return .normal }
  if r.isRunning { return .ok }
  return r.isFailed && r != .unreachable ? .error : .warn
}

/// The tab bar: panes by number, the active one highlighted; on the right the status message, or else the
/// filter and, when its column did not fit, the sort key.
func drawTabs(
  into g: inout Grid, state: DashboardState, generic: Bool, hiddenSortKey: SortKey?, y: Int, width: Int
) {
  var x = 0
  // The timeline's and profile's tabs show when there is room beside the status (or when they
  // are the pane shown).
  for pane in Pane.allCases where pane.rawValue < Pane.timeline.rawValue || pane == state.pane || width >= 100
  {
    let label = " \(pane.rawValue) \(pane.title(generic: generic)) "
    x += g.put(label, x: x, y: y, style: pane == state.pane ? .tabActive : .tabInactive, maxWidth: width - x)
    x += g.put(" ", x: x, y: y, maxWidth: width - x)
  }
  var right = ""
  var style = Style.status
  if let message = state.statusMessage {
    right = message
  } else {
    var parts: [String] = []
    if !state.filter.isEmpty && !state.isEditingFilter {
      parts.append("filter: " + state.filter)
      style = .filter
    }
    if let key = hiddenSortKey {
      parts.append(sortText(key, descending: state.current.descending, glyphs: state.charset.glyphs))
    }
    right = parts.joined(separator: state.charset.glyphs.separator)
  }
  guard !right.isEmpty, width - x > 4 else { return }
  let text = truncate(right, to: width - x - 1, ellipsis: state.charset.glyphs.ellipsis)
  g.put(text, x: width - displayWidth(text), y: y, style: style)
}

/// The bottom line: htop's function-key bar, or the filter editor while typing one.
func drawFunctionBar(into g: inout Grid, state: DashboardState, y: Int, width: Int) {
  if state.isEditingFilter {
    var x = g.put("Filter: ", x: 0, y: y, style: .functionKey)
    x += g.put(state.filter + "_", x: x, y: y, style: .filter, maxWidth: width - x)
    x += g.put("  ", x: x, y: y, maxWidth: width - x)
    let keys: [(String, String)] = [("Enter", "Done"), ("Esc", "Undo")]
    for (k, label) in keys {
      x += g.put(k, x: x, y: y, style: .functionKey, maxWidth: width - x)
      x += g.put(label + " ", x: x, y: y, style: .functionLabel, maxWidth: width - x)
    }
    return
  }
  // (key, label, priority): on narrow terminals the least needed go first; Help and Quit always stay.
  let pause = state.vmPaused ? "Resume" : "Pause"
  let keys: [(String, String, Int)]
  if state.whereView != nil {
    keys = [("Esc", "Back", 0), ("↑↓", "Scroll", 4), ("F5", pause, 1), ("F8", "Cont", 5), ("F10", "Quit", 0)]
  } else if state.threadsView {
    keys = [
      ("Esc", "Back", 0), ("↑↓", "Select", 4), ("Enter", "Thread", 2), ("F5", pause, 1), ("F8", "Cont", 5),
      ("F10", "Quit", 0),
    ]
  } else if state.detail != nil {
    keys = [
      ("Esc", "Back", 0), ("←→", "lcpu", 3), ("↑↓", "Scroll", 4), ("F5", pause, 1), ("F7", "Step", 2),
      ("F8", "Cont", 5), ("F10", "Quit", 0),
    ]
  } else {
    keys = [
      ("F1", "Help", 0), ("F2", "Color", 6), ("F4", "Filter", 3), ("F5", pause, 1), ("F6", "SortBy", 4),
      ("F7", "Step", 2), ("F8", "Cont", 5), ("F10", "Quit", 0),
    ]
  }
  let ascii = state.charset == .ascii
  var items = keys.map {
    (key: ascii ? $0.0.replacingArrows() : $0.0, label: $0.1.padding(toWidth: 6), priority: $0.2)
  }
  while items.map({ displayWidth($0.key) + displayWidth($0.label) }).reduce(0, +) > width,
    let worst = items.map(\.priority).max(), worst > 0,
    let i = items.lastIndex(where: { $0.priority == worst })
  {
    items.remove(at: i)
  }
  var x = 0
  for item in items {
    x += g.put(item.key, x: x, y: y, style: .functionKey, maxWidth: width - x)
    x += g.put(item.label, x: x, y: y, style: .functionLabel, maxWidth: width - x)
  }
  if x < width { g.fill(Rect(x: x, y: y, width: width - x, height: 1), with: Cell(" ", .functionLabel)) }
}

extension String {
  /// The string padded with blanks to at least `width` columns.
  func padding(toWidth width: Int) -> String {
    let w = displayWidth(self)
    return w >= width ? self : self + String(repeating: " ", count: width - w)
  }

  /// Arrow glyphs spelled in ASCII.
  func replacingArrows() -> String {
    var out = ""
    for c in self {
      switch c {
      case "←": out += "<"
      case "→": out += ">"
      case "↑": out += "^"
      case "↓": out += "v"
      default: out.append(c)
      }
    }
    return out
  }
}

/// "check ok 12/12", "CHECK FAILED 3", "check ?" for a record read while changing.
func workloadCheckText(_ w: WorkloadRecord) -> (String, Style) {
  switch w.consistency {
  case .unreadable: return ("check unreadable", .error)
  case .inconsistent: return ("check ~\(w.checks - min(w.checks, w.checkFailures))/\(w.checks)", .warn)
  case .consistent: break
  }
  if w.checkFailures > 0 { return ("CHECK FAILED \(w.checkFailures)", .error) }
  if w.checks == 0 { return ("no checks yet", .dim) }
  return ("check ok \(w.checks)/\(w.checks)", .ok)
}
