import Inspector

/// The threads view (key T): every thread, lcpu by lcpu, with its state, what it waits on (a
/// lock's name, its holder) and where it is — its backtrace as source lines, innermost first.
///
/// Returns the whole content; the caller shows the part that fits, scrolled like the detail view.
func threadsContent(state: DashboardState, data: DashboardData, symbolize: Symbolizer, width: Int) -> Grid {
  let glyphs = state.charset.glyphs
  var c = Canvas(width: width, glyphs: glyphs, capacity: 2048)
  guard let snap = data.snapshot else {
    c.line("no snapshot", .dim)
    return c.finished()
  }
  c.line(
    "THREADS  where every thread is (T or Esc closes; backtraces need the kernel ELF)", .title, indent: 0)
  guard !snap.threads.isEmpty else {
    c.line("this guest publishes no threads", .dim)
    return c.finished()
  }
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
      c.line(s, indent: 1)
      if let bt = t.backtrace {
        threadWhere(bt, into: &c, symbolize: symbolize)
      } else {
        c.line("no backtrace (no stack bounds in this guest's ABI, or not read yet)", .dim, indent: 8)
      }
    }
  }
  return c.finished()
}
