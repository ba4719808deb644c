import Dashboard
import Inspector
import Testing

/// The timeline pane (key 6): lanes per lcpu, zoom, scroll, freeze, selection and its details.
@Suite struct TimelineTests {
  /// 1 GHz guest: 1,000,000 TSC per ms.
  static let perMs: UInt64 = 1_000_000
  static let lock: UInt64 = 0x5000

  /// 30 ms of activity on `lcpus` lcpus: lcpu 0 holds the lock for 10 ms while lcpu 1 waits and
  /// then takes it; a timer interrupt and a switch on lcpu 0; the last lcpu waits on another
  /// lock for good.
  static func data(lcpus: Int = 4, enabled: TraceClasses = .all) -> TimelineData {
    let ms = perMs
    var events: [TraceEvent] = [
      TraceEvent(
        ring: 0, position: 0, tsc: 1 * ms, kind: .lockAcquired, lcpu: 0, object: lock, arg: 7, site: 0x10_0100
      ),
      TraceEvent(
        ring: 1, position: 0, tsc: 3 * ms, kind: .lockContend, lcpu: 1, object: lock, arg: 8, site: 0x10_0200),
      TraceEvent(ring: 0, position: 1, tsc: 5 * ms, kind: .irqEnter, lcpu: 0, object: 0x40),
      TraceEvent(ring: 0, position: 2, tsc: 5 * ms + ms / 2, kind: .irqExit, lcpu: 0, object: 0x40),
      TraceEvent(ring: 0, position: 3, tsc: 6 * ms, kind: .timerFired, lcpu: 0, object: 0, arg: 2_000),
      TraceEvent(ring: 0, position: 4, tsc: 11 * ms, kind: .lockReleased, lcpu: 0, object: lock, arg: 7),
      TraceEvent(
        ring: 1, position: 1, tsc: 11 * ms + 1000, kind: .lockAcquired, lcpu: 1, object: lock, arg: 8,
        arg2: 8 * ms, site: 0x10_0200),
      TraceEvent(ring: 0, position: 5, tsc: 12 * ms, kind: .contextSwitch, lcpu: 0, object: 9, arg: 7),
      TraceEvent(ring: 1, position: 2, tsc: 20 * ms, kind: .lockReleased, lcpu: 1, object: lock, arg: 8),
    ]
    let last = UInt32(lcpus - 1)
    events.append(
      TraceEvent(
        ring: last, position: 0, tsc: 15 * ms, kind: .lockContend, lcpu: last, object: 0x6000, arg: 10))
    events.append(
      TraceEvent(ring: 0, position: 6, tsc: 30 * ms, kind: .contextSwitch, lcpu: 0, object: 7, arg: 9))
    var names = TraceNames()
    names.locks = [lock: "work.spin", 0x6000: "deadlock.A"]
    names.threads = [7: "worker.0", 8: "worker.1", 9: "worker.2", 10: "abba.A"]
    names.site = { $0 == 0x10_0100 ? "SpinLock.swift:40" : $0 == 0x10_0200 ? "Workload.swift:212" : nil }
    return TimelineData(
      model: TraceModel(events: events), tscPerMs: perMs, names: names, enabled: enabled, lost: 0,
      lcpus: lcpus)
  }

  func frame(
    _ state: DashboardState, _ timeline: TimelineData?, lcpus: Int = 4, width: Int = 80, height: Int = 24
  )
    throws -> (Grid, ViewLayout)
  {
    let (snap, rates) = try lcpus == 4 ? Fixtures.fourLCPUs() : Fixtures.manyLCPUs(lcpus)
    var data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    data.timeline = timeline
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    let f = renderFrame(
      state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    return (f.grid, f.layout)
  }

  /// The 50 ms window, so the whole 30 ms fixture is in view.
  static var wide: DashboardState {
    var s = DashboardState(pane: .timeline)
    s.timeline.zoom = 2
    return s
  }

  @Test func lanesShowHoldsWaitsAndInterruptsAt80x24() throws {
    let (g, layout) = try frame(Self.wide, Self.data())
    let lines = g.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let lane0 = try #require(lines.first { $0.hasPrefix("lcpu 0") })
    let lane1 = try #require(lines.first { $0.hasPrefix("lcpu 1") })
    #expect(lane0.contains("█") && lane0.contains("!") && lane0.contains("|") && lane0.contains("^"))
    #expect(lane1.contains("░") && lane1.contains("█"))
    // lcpu 1 waits before it holds: the first wait cell is left of the first hold cell.
    let wait = try #require(lane1.firstIndex(of: "░"))
    let hold = try #require(lane1.firstIndex(of: "█"))
    #expect(wait < hold)
    #expect(layout.rowIDs.count == 5, "two holds, two waits and one interrupt are selectable")
    assertGolden(g.text, named: "timeline-80x24")
  }

  @Test func selectingTheWaitNamesLockHolderWaiterAndSites() throws {
    var s = Self.wide
    let (_, layout) = try frame(s, Self.data())
    // Rows are spans by start: hold (1 ms), wait (3 ms), irq (5 ms), hold (11 ms), wait (15 ms).
    s = reduce(s, .sync(layout)).0
    s.panes[.timeline] = PaneState(selectedID: layout.rowIDs[0])
    s = reduce(s, .move(1)).0
    let (g, _) = try frame(s, Self.data())
    let text = g.text
    #expect(text.contains("wait work.spin"), "\(text)")
    #expect(text.contains("waiter worker.1 on lcpu 1; holder worker.0 on lcpu 0"))
    #expect(text.contains("asked at Workload.swift:212; holder took it at SpinLock.swift:40"))
    #expect(text.contains("8.0ms"))
  }

  @Test func aWaitThatNeverEndsIsShownOpen() throws {
    var s = Self.wide
    let (_, layout) = try frame(s, Self.data())
    s = reduce(s, .sync(layout)).0
    s = reduce(s, .end).0
    let text = try frame(s, Self.data()).0.text
    #expect(text.contains("wait deadlock.A") && text.contains("(still open)"), "\(text)")
    #expect(text.contains("waiter abba.A on lcpu 3"))
  }

  @Test func keysZoomScrollFreezeAndSwitchTracing() {
    var s = DashboardState(pane: .timeline)
    let zoom = s.timeline.windowMs
    #expect(action(for: .character("+"), in: s) == .timelineZoom(1))
    s = reduce(s, .timelineZoom(1)).0
    #expect(s.timeline.windowMs > zoom)
    for _ in 0..<20 { s = reduce(s, .timelineZoom(1)).0 }
    #expect(s.timeline.windowMs == 10_000, "the widest window is 10 s")
    for _ in 0..<20 { s = reduce(s, .timelineZoom(-1)).0 }
    #expect(s.timeline.windowMs == 10, "the narrowest window is 10 ms")
    #expect(action(for: .left, in: s) == .timelineScroll(-1))
    s = reduce(s, .timelineScroll(-1)).0
    #expect(s.timeline.back == 1)
    s = reduce(s, .timelineScroll(1)).0
    s = reduce(s, .timelineScroll(1)).0
    #expect(s.timeline.back == 0, "not past the live edge")
    #expect(action(for: .character(" "), in: s) == .timelineFreeze)
    let (frozen, r) = reduce(s, .timelineFreeze)
    #expect(frozen.timeline.frozen && r.contains(.freezeTimeline) && !r.contains(.pauseVM))
    let (on, r2) = reduce(s, action(for: .character("t"), in: s) ?? .redraw)
    #expect(on.timeline.traceOn && r2.contains(.toggleTrace))
    // Elsewhere space still pauses the VM, and sorting keys do nothing here.
    #expect(action(for: .character(" "), in: DashboardState(pane: .locks)) == .togglePause)
    #expect(reduce(s, .sortNext).1 == [])
  }

  @Test func scrollingBackMovesTheWindowAndFrozenIsSaid() throws {
    var s = DashboardState(pane: .timeline)  // 100 ms: the whole fixture
    s.timeline.zoom = 0  // 10 ms: only the last 10 ms (20-30 ms) are in view
    let live = try frame(s, Self.data()).0.text
    #expect(!live.contains("!") && !live.contains("^"), "the interrupt and the timer are 25 ms back")
    s = reduce(s, .timelineScroll(-1)).0
    s = reduce(s, .timelineScroll(-1)).0
    s = reduce(s, .timelineScroll(-1)).0
    s = reduce(s, .timelineScroll(-1)).0  // 20 ms back: 0-10 ms
    let back = try frame(s, Self.data()).0.text
    #expect(back.contains("!") && back.contains("^") && back.contains("20.0ms back"), "\(back)")
    s = reduce(s, .timelineFreeze).0
    #expect(try frame(s, Self.data()).0.text.contains("FROZEN"))
  }

  @Test func sixtyFourLCPUsFitAndTheSelectionKeepsItsLaneVisible() throws {
    var s = Self.wide
    let (g, layout) = try frame(s, Self.data(lcpus: 64), lcpus: 64)
    #expect(g.text.contains("lcpus 0-"), "the lane window is named")
    assertGolden(g.text, named: "timeline64-80x24")
    s = reduce(s, .sync(layout)).0
    s = reduce(s, .end).0  // the open wait on lcpu 63
    let text = try frame(s, Self.data(lcpus: 64), lcpus: 64).0.text
    #expect(text.contains("lcpu 63"))
  }

  @Test func withoutRingsOrTracingThePaneSaysWhat() throws {
    let none = try frame(DashboardState(pane: .timeline), nil).0.text
    #expect(none.contains("No trace rings"))
    let off = TimelineData(model: TraceModel(), tscPerMs: Self.perMs, enabled: [], lcpus: 4)
    let text = try frame(DashboardState(pane: .timeline), off).0.text
    #expect(text.contains("The guest traces nothing") && text.contains("Press t"))
    // A tiny terminal does not crash it.
    _ = try frame(Self.wide, Self.data(), width: 40, height: 8)
  }
}
