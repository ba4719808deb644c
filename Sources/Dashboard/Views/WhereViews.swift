import Model

/// The content of a lock or thread view; the caller shows the part that fits, scrolled by
/// `state.detailScroll` like the detail view.
func whereContent(
  _ view: WhereView, state: DashboardState, data: DashboardData, symbolize: Symbolizer, width: Int
) -> Grid {
  var c = Canvas(width: width, glyphs: state.charset.glyphs, capacity: 1024)
  guard let snap = data.snapshot else {
    c.line("no snapshot", .dim)
    return c.finished()
  }
  switch view {
  case .lock(let address):
    lockView(address, snap: snap, data: data, state: state, symbolize: symbolize, into: &c)
  case .thread(let id):
    threadView(id, snap: snap, symbolize: symbolize, into: &c)
  }
  return c.finished()
}

/// A lock, who holds it and who waits for it, each with where it is:
///
/// the lock (name, kind, address, its row's numbers, the acquire site as `File.swift:LINE`), the
/// holder (thread, lcpu, its backtrace with source lines) and every waiter (thread, lcpu, for how
/// long, where it waits — the first frame of its backtrace outside the lock and scheduler code —
/// and its backtrace).
func lockView(
  _ address: UInt64, snap: Snapshot, data: DashboardData, state: DashboardState, symbolize: Symbolizer,
  into c: inout Canvas
) {
  let glyphs = c.glyphs
  let context = PaneContext(snapshot: snap, glyphs: glyphs)
  guard let lock = snap.locks.first(where: { $0.address == address }) else {
    c.line("LOCK " + Format.address(address) + "  (Esc goes back)", .title, indent: 0)
    c.line("this lock is not in the latest snapshot", .warn)
    return
  }
  let row = LockRow.rows(
    snap, rates: data.rates, style: cellStyle(glyphs), symbolize: symbolize,
    staticFindings: state.staticLockFindings
  ).first { $0.id == address }
  var title = Segments()
  title.add("LOCK " + lock.name, .title)
  title.add(row?.cells.kind ?? lock.kind.rawValue, .normal, separated: true)
  title.add(Format.address(lock.address), .address, priority: 2, separated: true)
  switch lock.consistency {
  case .consistent: break
  case .inconsistent(let retries):
    title.add("changing while read (\(retries) retries)", .warn, separated: true)
  case .unreadable(let reason): title.add("unreadable: " + reason, .error, separated: true)
  }
  title.add("  (Esc goes back)", .dim, priority: 3)
  c.line(title, indent: 0)
  if let cells = row?.cells {
    c.pairs(
      [
        ("acq/s", cells.acquisitions, .value), ("cont/s", cells.contended, .value),
        ("cont%", cells.contendedPercent, .value), ("wait", cells.meanWait, .value),
        ("wmax", cells.maxWait, .value), ("hold", cells.maxHold, .value),
        ("tryfail", cells.tryFailures, .value),
        ("misuse", cells.misuse, (row?.record.misuseTotal ?? 0) == 0 ? .dim : .error),
      ], labelWidth: 7, valueWidth: 12)
  }
  var site = Segments()
  if lock.acquireSite != 0 {
    let place =
      lock.acquireSiteLocation?.text ?? symbolize(lock.acquireSite) ?? Format.address(lock.acquireSite)
    site.add(place, .symbol, elastic: true, label: lock.isHeld ? "acquired at " : "last acquired at ")
    site.add("  " + Format.hex(lock.acquireSite), .address, priority: 2)
  } else {
    site.add("no acquire site recorded", .dim)
  }
  c.line(site)

  c.section("HOLDER")
  if let id = lock.holderThread, id != 0 {
    var s = Segments()
    s.add("thread \(id) " + context.threadName(id), .value)
    if let cpu = lock.holderLCPU { s.add("lcpu \(cpu)", .normal, separated: true) }
    if let held = row?.cells.held, lock.isHeld { s.add(held, .warn, separated: true, label: "held ") }
    c.line(s)
    threadBacktrace(id, snap: snap, symbolize: symbolize, into: &c)
  } else if let cpu = lock.holderLCPU {
    c.line("lcpu \(cpu), not in a thread (interrupt or idle context)", .value)
    vcpuBacktrace(lcpu: cpu, snap: snap, symbolize: symbolize, into: &c)
  } else if lock.kind == .rw && lock.readers > 0 {
    c.line("\(lock.readers) reader\(lock.readers == 1 ? "" : "s") (readers are counted, not named)", .value)
  } else {
    c.line(lock.kind == .semaphore ? "a semaphore has no holder" : "nobody holds it", .dim)
  }

  let more = Int(lock.waiterCount) - lock.waiters.count
  var heading = "WAITERS (\(lock.waiterCount))"
  if lock.pendingWriters > 0 { heading += ", \(lock.pendingWriters) pending writer(s)" }
  c.section(heading)
  if lock.waiters.isEmpty && lock.waiterCount == 0 { c.line("nobody waits", .dim) }
  for w in lock.waiters {
    var s = Segments()
    if let id = w.thread, id != 0 {
      s.add("thread \(id) " + context.threadName(id), .value)
    } else {
      s.add("no thread (interrupt or idle context)", .value)
    }
    if let cpu = w.lcpu { s.add("lcpu \(cpu)", .normal, separated: true) }
    if w.sinceTSC != 0 {
      s.add(context.duration(context.since(w.sinceTSC)), .warn, separated: true, label: "for ")
    }
    c.line(s)
    let thread = w.thread.flatMap { id in snap.threads.first { $0.id == id } }
    let place = w.location ?? thread?.backtrace.flatMap { WaiterSites.site(in: $0)?.location }
    if let place {
      c.line("waits at " + place.text + (place.inlined ? " [inlined]" : ""), .symbol, indent: 4)
    } else {
      c.line("waits at: no trusted frame outside the lock code", .dim, indent: 4)
    }
    if let id = w.thread, id != 0 {
      threadBacktrace(id, snap: snap, symbolize: symbolize, into: &c)
    } else if let cpu = w.lcpu {
      vcpuBacktrace(lcpu: cpu, snap: snap, symbolize: symbolize, into: &c)
    }
  }
  if more > 0 {
    c.line("+\(more) more waiting (the lock record keeps the first \(lock.waiters.count))", .dim)
  }
}

/// One thread: its state, the lock it waits on and that lock's holder (with where the holder
/// is), the locks it holds, and its backtrace with source lines.
func threadView(_ id: UInt64, snap: Snapshot, symbolize: Symbolizer, into c: inout Canvas) {
  let glyphs = c.glyphs
  let context = PaneContext(snapshot: snap, glyphs: glyphs)
  guard let t = snap.threads.first(where: { $0.id == id }) else {
    c.line("THREAD \(id)  (Esc goes back)", .title, indent: 0)
    c.line("this thread is not in the latest snapshot", .warn)
    return
  }
  var title = Segments()
  title.add("THREAD \(t.id) " + t.name, .title)
  title.add(
    t.state.rawValue, t.blockedOn != 0 ? .warn : (t.state == .running ? .ok : .normal), separated: true)
  title.add("lcpu \(t.lcpu)", .normal, separated: true)
  if !t.consistency.isConsistent { title.add("read while changing", .warn, separated: true) }
  title.add("  (Esc goes back)", .dim, priority: 3)
  c.line(title, indent: 0)
  var facts: [(String, String, Style)] = [
    ("cpu time", context.duration(context.seconds(t.cpuTSC)), .value),
    ("switches", Format.human(Double(t.switches)), .value),
    ("ops", Format.human(Double(t.ops)), .value),
  ]
  if t.wakeTSC != 0 { facts.append(("wakes in", context.duration(context.until(t.wakeTSC)), .value)) }
  c.pairs(facts, labelWidth: 8, valueWidth: 10)

  if t.blockedOn != 0 {
    c.section("WAITS ON")
    if let lock = snap.locks.first(where: { $0.address == t.blockedOn }) {
      var s = Segments()
      s.add(lock.name, .value)
      s.add(lock.kind == .semaphore ? "sem" : lock.kind.rawValue, .normal, separated: true)
      s.add(Format.address(lock.address), .address, priority: 2, separated: true)
      c.line(s)
      if let w = lock.waiters.first(where: { $0.thread == t.id }), let place = w.location {
        c.line("waits at " + place.text + (place.inlined ? " [inlined]" : ""), .symbol, indent: 4)
      }
      if let holder = lock.holderThread, holder != 0 {
        var h = Segments()
        h.add("thread \(holder) " + context.threadName(holder), .value, label: "held by ")
        if let cpu = lock.holderLCPU { h.add("lcpu \(cpu)", .normal, separated: true) }
        if lock.isHeld {
          h.add(context.duration(context.since(lock.acquiredTSC)), .warn, separated: true, label: "for ")
        }
        c.line(h)
        if lock.acquireSite != 0 {
          let place =
            lock.acquireSiteLocation?.text ?? symbolize(lock.acquireSite) ?? Format.address(lock.acquireSite)
          c.line("acquired at " + place, .symbol, indent: 4)
        }
        threadBacktrace(holder, snap: snap, symbolize: symbolize, into: &c)
      } else if let cpu = lock.holderLCPU {
        c.line("held by lcpu \(cpu), not in a thread", .value)
      } else {
        c.line(lock.kind == .semaphore ? "a semaphore has no holder" : "nobody holds it now", .dim)
      }
    } else {
      c.line(Format.address(t.blockedOn) + " (not a lock in the registry: a wait queue)", .normal)
    }
  }

  let held = snap.locks.filter { $0.holderThread == t.id }
  if !held.isEmpty {
    c.section("HOLDS")
    for lock in held {
      var s = Segments()
      s.add(lock.name, .value)
      if lock.acquireSite != 0 {
        let place =
          lock.acquireSiteLocation?.text ?? symbolize(lock.acquireSite) ?? Format.address(lock.acquireSite)
        s.add(place, .symbol, elastic: true, label: "  acquired at ")
      }
      c.line(s)
    }
  }

  if let bt = t.backtrace {
    let origin =
      switch bt.origin {
      case .tick: " (as of its latest timer tick)"
      case .savedContext: " (saved context)"
      case .registers: " (registers)"
      case .panic: " (from the panic record)"
      }
    c.section("BACKTRACE" + origin)
    backtraceLines(bt, into: &c, symbolize: symbolize, width: c.width)
  } else {
    c.section("BACKTRACE")
    c.line("no backtrace (no stack bounds in this guest's ABI, or not read yet)", .dim)
  }
}

/// A thread's backtrace under a holder or waiter line, indented.
private func threadBacktrace(_ id: UInt64, snap: Snapshot, symbolize: Symbolizer, into c: inout Canvas) {
  guard let bt = snap.threads.first(where: { $0.id == id })?.backtrace else {
    c.line("no backtrace (not read yet)", .dim, indent: 4)
    return
  }
  indentedBacktrace(bt, symbolize: symbolize, into: &c)
}

/// The backtrace of the vCPU that runs lcpu `lcpu`, when the snapshot was taken at a stop.
private func vcpuBacktrace(lcpu: UInt32, snap: Snapshot, symbolize: Symbolizer, into c: inout Canvas) {
  let apic = snap.lcpus.first { $0.index == lcpu }.map { Int($0.apicID) } ?? Int(lcpu)
  guard let bt = snap.vcpus?.first(where: { $0.index == apic })?.backtrace else {
    c.line("no backtrace (registers need a stopped VM: press space)", .dim, indent: 4)
    return
  }
  indentedBacktrace(bt, symbolize: symbolize, into: &c)
}

/// ``backtraceLines(_:into:symbolize:width:)`` drawn 3 columns in.
private func indentedBacktrace(_ bt: Backtrace, symbolize: Symbolizer, into c: inout Canvas) {
  var inner = Canvas(width: max(1, c.width - 3), glyphs: c.glyphs, capacity: 96)
  backtraceLines(bt, into: &inner, symbolize: symbolize, width: inner.width)
  let lines = inner.finished()
  if inner.y == 0 { return }
  c.grid.blit(lines, x: 3, y: c.y)
  c.y += inner.y
}
