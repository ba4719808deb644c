import Model

/// The threads view (key T): every thread, lcpu by lcpu, with its state, what it waits on (a
/// lock's name, its holder) and where it is — its backtrace as source lines, innermost first.
///
/// The threads view's content and where its rows are, so the cursor can move through them.
struct ThreadsContent {
  /// Every line of the view.
  var grid: Grid
  /// Thread ids in display order.
  var ids: [UInt64] = []
  /// The line of each thread's row in `grid`.
  var lines: [Int] = []
}

/// Returns the whole content; the caller shows the part that fits, scrolled like the detail view.
/// The selected thread's row (`state.selectedThread`, else the first) is highlighted.
func threadsContent(state: DashboardState, data: DashboardData, symbolize: Symbolizer, width: Int)
  -> ThreadsContent
{
  let glyphs = state.charset.glyphs
  var c = Canvas(width: width, glyphs: glyphs, capacity: 2048)
  guard let snap = data.snapshot else {
    c.line("no snapshot", .dim)
    return ThreadsContent(grid: c.finished())
  }
  c.line(
    "THREADS  where every thread is (\(glyphs.up)\(glyphs.down) select, Enter opens one, T or Esc closes)",
    .title, indent: 0)
  guard !snap.threads.isEmpty else {
    c.line("this guest publishes no threads", .dim)
    return ThreadsContent(grid: c.finished())
  }
  var ids: [UInt64] = []
  var lines: [Int] = []
  // Without a selection, the first row shown: the first thread of the lowest lcpu.
  let firstLCPU = snap.threads.map(\.lcpu).min()
  let selected = state.selectedThread ?? snap.threads.first { $0.lcpu == firstLCPU }?.id
  var locks: [UInt64: LockRecord] = [:]
  for l in snap.locks where locks[l.address] == nil { locks[l.address] = l }
  let running = Dictionary(snap.lcpus.map { ($0.currentThread, $0.index) }, uniquingKeysWith: { a, _ in a })
  let context = PaneContext(snapshot: snap, glyphs: glyphs)
  for lcpu in Set(snap.threads.map(\.lcpu)).sorted() {
    c.section("LCPU \(lcpu)")
    for t in snap.threads where t.lcpu == lcpu {
      var s = Segments()
      s.add(running[t.id] != nil ? glyphs.pointer : " ", .current)
      s.add(" " + String(t.id).padding(toWidth: 4), .value)
      s.add(t.name.padding(toWidth: 16), .normal)
      let blocked = t.blockedOn != 0
      s.add(t.state.rawValue.padding(toWidth: 14), blocked ? .warn : (t.state == .running ? .ok : .normal))
      if blocked {
        let lock = locks[t.blockedOn]
        s.add(lock?.name ?? Format.address(t.blockedOn), .warn, label: "on ")
        if let holder = lock?.holderThread {
          let name = snap.threads.first { $0.id == holder }?.name ?? "?"
          s.add(" held by \(holder) \(name)", .normal, priority: 1)
        }
      } else if t.wakeTSC != 0 {
        s.add(context.duration(context.until(t.wakeTSC)), .normal, label: "wakes in ")
      }
      if !t.consistency.isConsistent { s.add(" (read while changing)", .warn, priority: 1) }
      ids.append(t.id)
      lines.append(c.y)
      c.line(s, indent: 1)
      if t.id == selected { c.grid.restyle(y: c.y - 1, from: 0, to: width, .selected) }
      if let bt = t.backtrace {
        threadWhere(bt, into: &c, symbolize: symbolize)
      } else {
        c.line("no backtrace (no stack bounds in this guest's ABI, or not read yet)", .dim, indent: 8)
      }
    }
  }
  return ThreadsContent(grid: c.finished(), ids: ids, lines: lines)
}
