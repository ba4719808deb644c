import Model

/// Writes lines top to bottom into a tall grid, then hands back only the rows used.
struct Canvas {
  var grid: Grid
  var y = 0
  let glyphs: Glyphs

  init(width: Int, glyphs: Glyphs, capacity: Int = 512) {
    grid = Grid(width: width, height: capacity)
    self.glyphs = glyphs
  }

  var width: Int { grid.width }

  /// A section title bar across the width.
  mutating func section(_ title: String) {
    if y > 0 { y += 1 }
    grid.fill(Rect(x: 0, y: y, width: width, height: 1), with: Cell(" ", .header))
    grid.put(" " + title, x: 0, y: y, style: .header)
    y += 1
  }

  /// A line of text.
  mutating func line(_ text: String, _ style: Style = .normal, indent: Int = 1) {
    grid.put(text, x: indent, y: y, style: style, maxWidth: width - indent)
    y += 1
  }

  /// A line of segments.
  mutating func line(_ segments: Segments, indent: Int = 1) {
    segments.draw(into: &grid, x: indent, y: y, width: width - indent, glyphs: glyphs)
    y += 1
  }

  /// Label/value pairs laid out in as many columns as fit.
  mutating func pairs(_ items: [(String, String, Style)], labelWidth: Int, valueWidth: Int) {
    let cell = labelWidth + 1 + valueWidth + 3
    let columns = max(1, (width - 1 + 3) / cell)
    let rows = (items.count + columns - 1) / columns
    for (n, (label, value, style)) in items.enumerated() {
      let x = 1 + (n / rows) * cell
      let yy = y + n % rows
      grid.field(label, x: x, y: yy, width: labelWidth, style: .label, align: .right)
      grid.field(
        value, x: x + labelWidth + 1, y: yy, width: valueWidth, style: style, ellipsis: glyphs.ellipsis)
    }
    y += rows
  }

  /// The rows used so far.
  func finished() -> Grid {
    var out = Grid(width: width, height: max(1, y))
    out.blit(grid, x: 0, y: 0)
    return out
  }
}

/// The detail view of one lcpu (or vCPU): registers, counters, fault, backtrace and code around RIP.
///
/// Returns the whole content; the caller shows the part that fits, scrolled by `state.detailScroll`.
func detailContent(state: DashboardState, data: DashboardData, symbolize: Symbolizer, width: Int) -> Grid {
  if state.threadsView {
    return threadsContent(state: state, data: data, symbolize: symbolize, width: width).grid
  }
  let glyphs = state.charset.glyphs
  var c = Canvas(width: width, glyphs: glyphs)
  guard let id = state.detail, let snap = data.snapshot else {
    c.line("no snapshot", .dim)
    return c.finished()
  }
  let record = snap.lcpus.first { Int($0.index) == id }
  let vcpu = snap.vcpus?.first { $0.index == id }
  let extra = data.detail?.lcpu == id ? data.detail : nil
  let row =
    record == nil
    ? nil : lcpuRows(snap, rates: data.rates, symbolize: symbolize, glyphs: glyphs).first { $0.id == id }
  let rip = row?.rip ?? vcpu?.value(of: "rip")

  // Title line.
  var title = Segments()
  title.add(snap.guest == nil ? "vCPU \(id)" : "lcpu \(id)", .title)
  if let row {
    title.add(row.stateText, row.stateStyle, separated: true)
    if let r = record { title.add("APIC \(r.apicID)", .normal, priority: 3, separated: true) }
    if let busy = row.busy {
      title.add("busy " + Format.fixed(busy, decimals: 1) + "%", .value, priority: 1, separated: true)
    }
    if let r = record, r.currentThread != 0 {
      title.add("thread \(r.currentThread)", .normal, priority: 2, separated: true)
    }
    switch row.record.consistency {
    case .consistent: break
    case .inconsistent(let retries):
      title.add("inconsistent after \(retries) retries", .warn, separated: true)
    case .unreadable(let reason):
      title.add("unreadable: " + reason, .error, separated: true)
    }
  } else if let vcpu {
    title.add(vcpu.halted ? "hlt" : "running", vcpu.halted ? .dim : .ok, separated: true)
  } else {
    title.add("not in this snapshot", .warn, separated: true)
  }
  if let rip {
    let where_ = symbolize(rip) ?? Format.address(rip)
    title.add("at " + where_, .symbol, separated: true)
    title.add(row?.ripExact == false ? " (last tick)" : " (exact)", .dim, priority: 4)
  }
  c.line(title, indent: 0)

  // The fault, when there was one: the first thing to read.
  if let panic = record?.panic {
    c.section("PANIC " + panic.vectorName)
    var s = Segments()
    s.add(panic.vectorName, .error)
    s.add(" error " + Format.address(panic.errorCode), .normal)
    s.add(" at ", .dim)
    s.add(symbolize(panic.rip) ?? Format.address(panic.rip), .symbol, elastic: true)
    c.line(s)
    c.pairs(
      [
        ("rip", Format.hex(panic.rip), .address), ("cr2", Format.hex(panic.cr2), .address),
        ("rsp", Format.hex(panic.rsp), .address), ("rbp", Format.hex(panic.rbp), .address),
        ("rflags", Format.hex(panic.rflags, digits: 8), .address),
      ], labelWidth: 7, valueWidth: 16)
    if !panic.consistency.isConsistent { c.line("the panic record was still being written", .warn) }
  }
  let top = c.finished()

  // Backtrace and code around RIP: side by side when wide.
  let wide = width >= 120
  let back = backtraceContent(
    record: record, extra: extra, rip: rip, paused: state.vmPaused, symbolize: symbolize, glyphs: glyphs,
    width: wide ? width * 2 / 5 : width)
  let code = disassemblyContent(
    extra: extra, rip: rip, symbolize: symbolize, glyphs: glyphs,
    width: wide ? width - width * 2 / 5 - 1 : width)

  // Registers, then the guest's own counters.
  var bottom = Canvas(width: width, glyphs: glyphs)
  bottom.section("REGISTERS")
  if let vcpu, !vcpu.registers.isEmpty {
    // Long names (k_gs_base) get their full width when three columns still fit.
    let longest = min(9, vcpu.registers.map { displayWidth($0.name) }.max() ?? 3)
    let labelWidth = (width - 1 + 3) / (longest + 1 + 16 + 3) >= 3 ? longest : 7
    bottom.pairs(
      vcpu.registers.map { ($0.name, Format.hex($0.value), Style.address) }, labelWidth: labelWidth,
      valueWidth: 16)
  } else {
    bottom.line("Registers need a stopped VM: press space to pause (or s to step).", .warn)
  }
  if let r = record {
    bottom.section("COUNTERS")
    let newest = snap.lcpus.map(\.lastTickTSC).max() ?? 0
    let perMs = snap.guest?.tscPerMs ?? 0
    func ago(_ tsc: UInt64) -> String {
      guard perMs > 0, tsc > 0, newest >= tsc else { return "-" }
      return Format.duration(seconds: Double(newest - tsc) / Double(perMs) / 1000, micro: glyphs.micro)
        + " ago"
    }
    let n = { (v: UInt64) in (String(v), Style.value) }
    let items: [(String, (String, Style))] = [
      ("timer irq", n(r.irqTimer)), ("ipi irq", n(r.irqIPI)), ("device irq", n(r.irqDevice)),
      ("spurious", n(r.irqSpurious)), ("ipi sent", n(r.ipiSent)), ("ipi recv", n(r.ipiReceived)),
      ("remote", n(r.remoteCalls)), ("ticks", n(r.ticks)), ("loops", n(r.workLoops)),
      ("busy cyc", (Format.human(Double(r.cyclesBusy)), .value)),
      ("idle cyc", (Format.human(Double(r.cyclesIdle)), .value)),
      ("state for", (ago(r.stateSinceTSC), .normal)),
      ("due in", (row?.due.map { Format.duration(seconds: $0, micro: glyphs.micro) } ?? "-", .normal)),
      ("last tick", (ago(r.lastTickTSC), .normal)),
      ("error", (r.errorCode == 0 ? "0" : Format.address(r.errorCode), r.errorCode == 0 ? .dim : .error)),
    ]
    bottom.pairs(items.map { ($0.0, $0.1.0, $0.1.1) }, labelWidth: 10, valueWidth: 13)
    var stack = Segments()
    stack.add(
      Format.address(r.stackBottom) + " - " + Format.address(r.stackTop), .address, label: "stack ")
    if r.stackTop > r.stackBottom {
      stack.add(" (" + Format.bytes(r.stackTop - r.stackBottom) + ")", .dim, priority: 1)
    }
    bottom.line(stack, indent: 6)
    let threads = snap.threads.filter { $0.lcpu == r.index }
    if !threads.isEmpty {
      bottom.section("THREADS ON THIS LCPU")
      var lockNames: [UInt64: String] = [:]
      for l in snap.locks where lockNames[l.address] == nil { lockNames[l.address] = l.name }
      let context = PaneContext(snapshot: snap, glyphs: glyphs)
      for t in threads.prefix(32) {
        var s = Segments()
        s.add(t.id == r.currentThread ? glyphs.pointer : " ", .current)
        s.add(" " + String(t.id).padding(toWidth: 4), .value)
        s.add(t.name.padding(toWidth: 16), .normal)
        let blocked = t.blockedOn != 0
        s.add(t.state.rawValue.padding(toWidth: 14), blocked ? .warn : (t.state == .running ? .ok : .normal))
        if blocked {
          s.add(lockNames[t.blockedOn] ?? Format.address(t.blockedOn), .warn, label: "on ")
        } else if t.wakeTSC != 0 {
          s.add(context.duration(context.until(t.wakeTSC)), .normal, label: "wakes in ")
        }
        if !t.consistency.isConsistent { s.add(" (read while changing)", .warn, priority: 1) }
        bottom.line(s, indent: 1)
        if let bt = t.backtrace { threadWhere(bt, into: &bottom, symbolize: symbolize) }
      }
      if threads.count > 32 { bottom.line("+\(threads.count - 32) more threads", .dim) }
    }
  }
  let rest = bottom.finished()

  // Blocks one under the other with a blank line between; backtrace and code share a band when wide.
  let middle = wide ? max(back.height, code.height) : back.height + 1 + code.height
  var out = Grid(width: width, height: top.height + 1 + middle + 1 + rest.height)
  out.blit(top, x: 0, y: 0)
  let y = top.height + 1
  out.blit(back, x: 0, y: y)
  out.blit(code, x: wide ? back.width + 1 : 0, y: y + (wide ? 0 : back.height + 1))
  out.blit(rest, x: 0, y: y + middle + 1)
  return out
}

/// The backtrace section: the fault's frames, else the caller's frame-pointer walk, each frame
/// with its source line (`#1 Workload.swift:212 in Workload.mutexWorker()`), inlined frames
/// marked, untrusted frames flagged and the reason the walk ended last.
func backtraceContent(
  record: LCPURecord?, extra: DetailData?, rip: UInt64?, paused: Bool, symbolize: Symbolizer, glyphs: Glyphs,
  width: Int
) -> Grid {
  var c = Canvas(width: width, glyphs: glyphs, capacity: 96)
  if let bt = extra?.backtrace {
    let origin =
      switch bt.origin {
      case .panic: " (from the panic record)"
      case .tick: " (as of the thread's latest timer tick)"
      case .savedContext: " (saved context)"
      case .registers: ""
      }
    c.section("BACKTRACE" + origin)
    backtraceLines(bt, into: &c, symbolize: symbolize, width: width)
    return c.finished()
  }
  let frames: [UInt64]?
  if let panic = record?.panic {
    c.section("BACKTRACE (from the panic record)")
    frames = [panic.rip] + panic.backtrace
  } else {
    c.section("BACKTRACE")
    frames = extra?.frames.map { frames in (rip.map { [$0] } ?? []) + frames }
  }
  guard let frames, !frames.isEmpty else {
    c.line(
      paused ? "no frame-pointer chain was read" : "needs a stopped VM: press space", paused ? .dim : .warn)
    return c.finished()
  }
  for (i, address) in frames.prefix(32).enumerated() {
    var x =
      1 + c.grid.put(("#" + String(i)).padding(toWidth: 4), x: 1, y: c.y, style: i == 0 ? .current : .dim)
    // The address goes first when space is short: the symbol is the part worth keeping.
    if width - x >= 17 + 16 { x += c.grid.put(Format.hex(address) + " ", x: x, y: c.y, style: .address) }
    let name = symbolize(address) ?? Format.address(address)
    c.grid.put(truncateSymbol(name, to: width - x, ellipsis: glyphs.ellipsis), x: x, y: c.y, style: .symbol)
    c.y += 1
  }
  return c.finished()
}

/// The lines of a backtrace: one per source frame (an inlined frame shares its address with
/// the frames it was inlined into, and is marked), then why the walk ended.
func backtraceLines(_ bt: Backtrace, into c: inout Canvas, symbolize: Symbolizer, width: Int) {
  var n = 0
  for frame in bt.frames.prefix(32) {
    let chain =
      frame.location?.chain
      ?? [
        CodeLocation(
          function: symbolize(frame.lookupAddress) ?? Format.address(frame.address), file: nil, line: 0)
      ]
    for (k, loc) in chain.enumerated() {
      var x =
        1 + c.grid.put(("#" + String(n)).padding(toWidth: 4), x: 1, y: c.y, style: n == 0 ? .current : .dim)
      if width - x >= 17 + 24 {
        x += c.grid.put(
          (k == 0 ? Format.hex(frame.address) : String(repeating: " ", count: 16)) + " ", x: x, y: c.y,
          style: .address)
      }
      var text = loc.text
      if loc.inlined { text += " [inlined]" }
      if !frame.trusted { text += " (untrusted: " + (frame.note ?? "?") + ")" }
      c.grid.put(
        truncateSymbol(text, to: width - x, ellipsis: c.glyphs.ellipsis), x: x, y: c.y,
        style: frame.trusted ? .symbol : .warn)
      c.y += 1
      n += 1
    }
  }
  if let stop = bt.stop { c.line("walk ended: " + stop, .dim) }
}

/// Where a thread is, under its row: one line per source frame (up to 8), innermost first,
/// `File.swift:LINE in function`, inlined frames marked, untrusted ones flagged.
func threadWhere(_ bt: Backtrace, into c: inout Canvas, symbolize: Symbolizer) {
  var shown = 0
  let origin =
    switch bt.origin {
    case .tick: " (at its latest tick)"
    case .registers: " (registers)"
    default: ""
    }
  for frame in bt.frames {
    let chain =
      frame.location?.chain
      ?? [
        CodeLocation(
          function: symbolize(frame.lookupAddress) ?? Format.address(frame.address), file: nil, line: 0)
      ]
    for loc in chain {
      guard shown < 8 else { break }
      var text = (shown == 0 ? "at " : "   ") + loc.text + (loc.inlined ? " [inlined]" : "")
      if shown == 0 { text += origin }
      if !frame.trusted { text += " (untrusted: " + (frame.note ?? "?") + ")" }
      c.line(text, frame.trusted ? .symbol : .warn, indent: 8)
      shown += 1
    }
  }
  if let stop = bt.stop { c.line("walk ended: " + stop, .dim, indent: 8) }
}

/// The disassembly section: instructions around RIP, the current one marked.
func disassemblyContent(
  extra: DetailData?, rip: UInt64?, symbolize: Symbolizer, glyphs: Glyphs, width: Int
) -> Grid {
  var c = Canvas(width: width, glyphs: glyphs, capacity: 128)
  // The caller says where it disassembled (a fault's RIP, say); otherwise mark the lcpu's RIP.
  let rip = extra?.rip ?? rip
  let at = rip.map { " at " + (symbolize($0) ?? Format.address($0)) } ?? ""
  c.section("DISASSEMBLY" + at)
  guard let extra, !extra.disassembly.isEmpty else {
    c.line(extra?.note ?? "no code: needs the kernel ELF or readable guest memory at RIP", .dim)
    return c.finished()
  }
  if let note = extra.note { c.line(note, .warn) }
  // Show up to 8 instruction bytes when there is room, fewer on narrow screens, none on tiny ones.
  let byteCount = width >= 72 ? 8 : (width >= 56 ? 5 : 0)
  for insn in extra.disassembly.prefix(96) {
    if let source = insn.source {
      c.grid.put(String(c.glyphs.ellipsis) + " " + source, x: 2, y: c.y, style: .dim, maxWidth: width - 2)
      c.y += 1
    }
    let current = insn.address == rip
    var x = c.grid.put(current ? glyphs.pointer : " ", x: 0, y: c.y, style: .current)
    x = max(x, 1) + 1
    x += c.grid.put(Format.hex(insn.address) + "  ", x: x, y: c.y, style: current ? .current : .address)
    if byteCount > 0 {
      var hex = insn.bytes.prefix(byteCount).map { Format.hex(UInt64($0), digits: 2) }.joined(separator: " ")
      if insn.bytes.count > byteCount { hex += String(glyphs.ellipsis) }
      x += c.grid.put(hex.padding(toWidth: byteCount * 3 + 1), x: x, y: c.y, style: .dim)
    }
    let text = insn.mnemonic.padding(toWidth: 7) + " " + insn.operands
    c.grid.put(
      text, x: x, y: c.y, style: current ? .current : (insn.mnemonic == "(bad)" ? .error : .normal),
      maxWidth: width - x)
    c.y += 1
  }
  return c.finished()
}
