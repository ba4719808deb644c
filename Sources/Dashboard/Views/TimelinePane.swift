import Foundation
import Model

/// What the timeline pane shows: spans and instants built from the guest's trace rings.
public struct TimelineData: Sendable {
  /// Spans, instants and hand-overs (a copy taken when the view froze, else the live one).
  public var model: TraceModel
  /// Guest TSC rate (TSC counts per millisecond).
  public var tscPerMs: UInt64
  /// Names of locks, threads and code sites.
  public var names: TraceNames
  /// The classes the guest traces right now.
  public var enabled: TraceClasses
  /// Records lost since the view opened.
  public var lost: UInt64
  /// Problems with the rings, for a person.
  public var problems: [String]
  /// lcpus present (lanes).
  public var lcpus: Int

  /// Creates the pane's input.
  public init(
    model: TraceModel, tscPerMs: UInt64, names: TraceNames = TraceNames(), enabled: TraceClasses,
    lost: UInt64 = 0,
    problems: [String] = [], lcpus: Int
  ) {
    self.model = model
    self.tscPerMs = tscPerMs
    self.names = names
    self.enabled = enabled
    self.lost = lost
    self.problems = problems
    self.lcpus = lcpus
  }
}

/// The timeline pane's own choices: window, position, freeze.
public struct TimelineState: Sendable, Equatable, Codable {
  /// Index into `windows`.
  public var zoom: Int = 3
  /// How many half windows the view sits left of the newest event (0 = at the live edge).
  public var back: Int = 0
  /// Space froze the view: new events are still drained but not shown.
  public var frozen = false
  /// The first lane shown (lcpu index) when the lcpus do not all fit.
  public var firstLane: Int = 0
  /// What `t` asks for next: true = tracing switched on by the user.
  public var traceOn = false

  /// The windows `+`/`-` step through, in milliseconds (10 ms … 10 s).
  public static let windows: [Double] = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]

  /// The window in milliseconds.
  public var windowMs: Double { Self.windows[max(0, min(zoom, Self.windows.count - 1))] }

  /// Creates the default state (100 ms, live).
  public init() {}
}

/// A span's stable identity for selection (start TSC and lcpu).
func timelineID(_ span: TraceSpan) -> Int {
  Int(
    truncatingIfNeeded: span.start &* 131 &+ UInt64(span.lcpu) &* 7
      &+ UInt64(span.kind == .hold ? 1 : span.kind == .wait ? 2 : 3))
}

/// Millisecond text for a span of TSC counts.
func timelineDuration(_ tsc: UInt64, _ tscPerMs: UInt64, glyphs: Glyphs) -> String {
  let us = Double(tsc) * 1000 / Double(max(tscPerMs, 1))
  return formatMicroseconds(us, glyphs: glyphs)
}

/// Microseconds as `12.3µs`, `4.5ms` or `1.2s`.
func formatMicroseconds(_ us: Double, glyphs: Glyphs) -> String {
  if us < 1000 { return String(format: "%.1f", us) + glyphs.micro + "s" }
  if us < 1_000_000 { return String(format: "%.1fms", us / 1000) }
  return String(format: "%.2fs", us / 1_000_000)
}

/// The timeline pane: one lane per lcpu over the chosen window, the selected span's details below.
///
/// Lane cells: hold `█`/`#`, wait `░`/`-`, interrupt `!`, context switch `|`, timer `^`
/// (the selected span in reverse). Up/down select spans, left/right scroll, `+`/`-` zoom,
/// PgUp/PgDn move through lanes, space freezes, `t` switches tracing on or off.
func drawTimelinePane(
  into g: inout Grid, state: DashboardState, timeline: TimelineData?, body: Rect, layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  let ascii = state.charset == .ascii
  let t = state.timeline
  guard let data = timeline else {
    drawPlaceholder(
      into: &g,
      lines: [
        "No trace rings.",
        "The timeline reads the guest's trace rings live from its shared RAM file (--memory-file).",
      ],
      body: body)
    return layout
  }
  let model = data.model
  let perMs = Double(max(data.tscPerMs, 1))
  let window = UInt64(t.windowMs * perMs)
  let edge = model.lastTSC &- min(model.lastTSC, UInt64(t.back) * (window / 2))
  let left = edge > window ? edge - window : 0
  // The window's left end on the TSC axis; before the first event it may lie below zero.
  let origin = Int64(bitPattern: edge) &- Int64(bitPattern: window)
  // Header line.
  let mode = t.frozen ? "FROZEN" : "live"
  var header = "\(formatMicroseconds(t.windowMs * 1000, glyphs: glyphs)) window, \(mode)"
  if t.back > 0 {
    header +=
      ", \(formatMicroseconds(Double(model.lastTSC - edge) * 1000 / perMs, glyphs: glyphs)) back"
  }
  header += "  trace: \(data.enabled.spelled)  lost \(data.lost)"
  g.put(header, x: body.x, y: body.y, style: t.frozen ? .warn : .title, maxWidth: body.width)
  if data.enabled.isEmpty && model.spans.isEmpty && model.instants.isEmpty {
    drawPlaceholder(
      into: &g,
      lines: data.problems.isEmpty
        ? [
          "The guest traces nothing.",
          "Press t to switch tracing on (the one write smptop makes to guest memory), or boot the guest with trace=all.",
        ] : data.problems,
      body: Rect(x: body.x, y: body.y + 1, width: body.width, height: max(0, body.height - 1)))
    return layout
  }
  // Geometry: lanes, then 3 detail lines.
  let detailRows = body.height >= 10 ? 3 : 1
  let laneRows = max(1, body.height - 1 - detailRows)
  let lcpus = max(data.lcpus, (model.lcpus.max().map { Int($0) + 1 }) ?? 0)
  let labelWidth = 8
  let columns = max(1, body.width - labelWidth)
  let perColumn = max(1, window / UInt64(columns))
  let visible = model.spans.filter { s in (s.end ?? model.lastTSC) >= left && s.start <= edge }
  // Selection: spans in the window, by start.
  let ordered = visible.sorted { ($0.start, $0.lcpu) < ($1.start, $1.lcpu) }
  layout.rowIDs = ordered.map(timelineID)
  layout.pageRows = max(1, laneRows)
  let selectedID = state.panes[.timeline]?.selectedID.flatMap { id in layout.rowIDs.contains(id) ? id : nil }
  let selected = selectedID.flatMap { id in ordered.first { timelineID($0) == id } }
  // Lanes shown: keep the selected span's lcpu visible.
  var first = max(0, min(t.firstLane, max(0, lcpus - laneRows)))
  if let s = selected, Int(s.lcpu) < first || Int(s.lcpu) >= first + laneRows {
    first = max(0, min(Int(s.lcpu), max(0, lcpus - laneRows)))
  }
  func column(_ tsc: UInt64) -> Int {
    let offset = Int64(bitPattern: tsc) &- origin
    return offset <= 0 ? 0 : min(columns - 1, Int(UInt64(offset) / perColumn))
  }
  for row in 0..<laneRows {
    let lane = first + row
    guard lane < lcpus else { break }
    let y = body.y + 1 + row
    g.put(String("lcpu \(lane)".prefix(labelWidth - 1)), x: body.x, y: y, style: .label)
    var cells = [(Unicode.Scalar, Style)](repeating: (ascii ? "." : "·", .dim), count: columns)
    // Priority by drawing order: hold, then wait over it, then interrupts, then instants.
    for kind in [TraceSpan.Kind.hold, .wait, .irq] {
      for s in visible where s.kind == kind && Int(s.lcpu) == lane {
        let from = column(max(s.start, left))
        let to = column(min(s.end ?? model.lastTSC, edge))
        let glyph: (Unicode.Scalar, Style) =
          switch kind {
          case .hold: (ascii ? "#" : "█", .meterBusy)
          case .wait: (ascii ? "-" : "░", .warn)
          case .irq: ("!", .error)
          }
        for c in from...max(from, to) { cells[c] = glyph }
      }
    }
    for e in model.instants where Int(e.ring) == lane && e.tsc >= left && e.tsc <= edge {
      let glyph: Unicode.Scalar =
        switch e.kind {
        case .contextSwitch: "|"
        case .timerFired: "^"
        case .virtioKick, .virtioInterrupt: "v"
        default: "*"
        }
      cells[column(e.tsc)] = (glyph, .value)
    }
    if let s = selected, Int(s.lcpu) == lane {
      let from = column(max(s.start, left))
      let to = column(min(s.end ?? model.lastTSC, edge))
      for c in from...max(from, to) { cells[c].1 = .selected }
    }
    for (i, cell) in cells.enumerated() { g[body.x + labelWidth + i, y] = Cell(cell.0, cell.1) }
  }
  if lcpus > laneRows {
    let note = "lcpus \(first)-\(min(lcpus, first + laneRows) - 1) of \(lcpus)"
    g.put(note, x: body.x + body.width - note.count, y: body.y, style: .dim, maxWidth: body.width)
  }
  // Details of the selected span.
  let dy = body.y + 1 + laneRows
  let lines = timelineDetail(selected, data: data, glyphs: glyphs, count: visible.count)
  for (i, line) in lines.prefix(detailRows).enumerated() {
    g.put(line, x: body.x, y: dy + i, style: i == 0 ? .header : .normal, maxWidth: body.width)
  }
  return layout
}

/// Up to three lines describing a span: what, who, where.
func timelineDetail(_ span: TraceSpan?, data: TimelineData, glyphs: Glyphs, count: Int) -> [String] {
  guard let s = span else {
    let problem = data.problems.first.map { "  problem: \($0)" } ?? ""
    return ["\(count) spans in the window; up/down select one.\(problem)", "", ""]
  }
  let n = data.names
  let length = (s.end ?? data.model.lastTSC) &- s.start
  let open = s.end == nil ? " (still open)" : ""
  let duration = timelineDuration(length, data.tscPerMs, glyphs: glyphs) + open
  switch s.kind {
  case .hold:
    return [
      "hold \(n.lock(s.object))  \(duration)",
      "holder \(n.thread(s.thread)) on lcpu \(s.lcpu)",
      "taken at \(n.siteText(s.site))",
    ]
  case .wait:
    let holder =
      s.holderThread.map { "holder \(n.thread($0))" + (s.holderLCPU.map { " on lcpu \($0)" } ?? "") }
      ?? "holder unknown"
    return [
      "wait \(n.lock(s.object))  \(duration)",
      "waiter \(n.thread(s.thread)) on lcpu \(s.lcpu); \(holder)",
      "asked at \(n.siteText(s.site))" + (s.holderSite.map { "; holder took it at \(n.siteText($0))" } ?? ""),
    ]
  case .irq:
    return [
      "interrupt vector 0x\(String(s.object, radix: 16))  \(duration)", "on lcpu \(s.lcpu)",
      "interrupted \(n.siteText(s.site))",
    ]
  }
}
