import Dashboard
import Inspector
import Testing

/// From a lock to its holder and waiters, and from a thread to the lock it waits on: Enter on a
/// lock row opens the lock view, Enter on a thread of the threads view (T) opens the thread
/// view, Esc goes back one view at a time.
@Suite struct WhereViewTests {
  static func location(_ function: String, _ file: String, _ line: Int, inlinedInto: [CodeLocation] = [])
    -> CodeLocation
  {
    CodeLocation(
      function: function, file: "/src/Kernel/" + file, line: line, inlined: !inlinedInto.isEmpty,
      inlinedInto: inlinedInto)
  }

  /// A blocked thread's walk from its saved context: the scheduler, the lock call inlined into
  /// the workload function at `line`, the thread's entry.
  static func blocked(_ worker: String, line: Int, base: UInt64) -> Backtrace {
    Backtrace(
      origin: .savedContext,
      frames: [
        BacktraceFrame(
          address: base, isReturnAddress: true, location: location("Sched.schedule()", "Sched.swift", 230)),
        BacktraceFrame(
          address: base + 0x100, isReturnAddress: true,
          location: location(
            "Mutex.lock()", "Mutex.swift", 60, inlinedInto: [location(worker, "Workload.swift", line)])),
        BacktraceFrame(
          address: base + 0x200, isReturnAddress: true, location: location("kthread_main", "Sched.swift", 497)
        ),
      ])
  }

  /// `Fixtures.fullV2()` with backtraces: alpha and beta blocked in `Mutex.lock`, the spinner
  /// spinning (from its latest tick), acquire sites with lines, and the waiters' sites filled.
  static func snapshot() throws -> (Snapshot, SnapshotRates) {
    var (snap, rates) = try Fixtures.fullV2()
    for i in snap.threads.indices {
      switch snap.threads[i].id {
      case Fixtures.alpha:
        snap.threads[i].backtrace = blocked("Workload.abbaFirst()", line: 120, base: 0x10_9000)
      case Fixtures.beta:
        snap.threads[i].backtrace = blocked("Workload.abbaSecond()", line: 141, base: 0x10_a000)
      case 7:
        var bt = Backtrace(
          origin: .tick,
          frames: [
            BacktraceFrame(
              address: 0x10_8010, isReturnAddress: false,
              location: location("SpinLock.lock()", "SpinLock.swift", 50)),
            BacktraceFrame(
              address: 0x10_8100, isReturnAddress: true,
              location: location("Workload.spinWorker()", "Workload.swift", 80)),
          ])
        bt.tickTSC = Fixtures.now
        snap.threads[i].backtrace = bt
      default: break
      }
    }
    for i in snap.locks.indices where snap.locks[i].acquireSite != 0 {
      snap.locks[i].acquireSiteLocation = location("Workload.abbaFirst()", "Workload.swift", 118)
    }
    WaiterSites.add(to: &snap)
    return (snap, rates)
  }

  /// Renders once, feeds the layout back, and renders again (what the run loop does).
  static func frame(
    _ state: DashboardState, _ snap: Snapshot, _ rates: SnapshotRates?, width: Int, height: Int
  )
    -> (DashboardState, Grid)
  {
    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    let second = renderFrame(
      state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    return (reduce(synced, .sync(second.layout)).0, second.grid)
  }

  /// Presses keys one after the other, rendering between them.
  static func press(
    _ keys: [Key], from state: DashboardState, _ snap: Snapshot, _ rates: SnapshotRates?, width: Int = 100,
    height: Int = 40
  ) -> (DashboardState, Grid) {
    var (s, grid) = frame(state, snap, rates, width: width, height: height)
    for key in keys {
      if let a = action(for: key, in: s) { s = reduce(s, a).0 }
      (s, grid) = frame(s, snap, rates, width: width, height: height)
    }
    return (s, grid)
  }

  static let lockA: UInt64 = 0x30_0100

  @Test func theLockViewShowsTheHolderAndEveryWaiterWithWhereTheyAre() throws {
    let (snap, rates) = try Self.snapshot()
    var state = DashboardState(pane: .locks)
    state.whereViews = [OpenWhereView(view: .lock(Self.lockA), scrollBefore: 0)]
    let (_, grid) = Self.frame(state, snap, rates, width: 100, height: 40)
    let text = grid.text
    #expect(text.contains("LOCK lock-A"))
    #expect(text.contains("acquired at Workload.swift:118 in Workload.abbaFirst()"))
    #expect(text.contains("thread 2 alpha") && text.contains("lcpu 0"))
    #expect(text.contains("thread 3 beta"))
    #expect(text.contains("waits at Workload.swift:141 in Workload.abbaSecond()"))
    #expect(text.contains("Mutex.swift:60 in Mutex.lock() [inlined]"))
    assertGolden(text, named: "where-lock-100x40")
  }

  @Test func aSpinningWaiterIsPlacedByItsTickAndALockWithoutHolderSaysSo() throws {
    let (snap, rates) = try Self.snapshot()
    var state = DashboardState(pane: .locks)
    state.whereViews = [OpenWhereView(view: .lock(0x30_0000), scrollBefore: 0)]
    let text = Self.frame(state, snap, rates, width: 100, height: 40).1.text
    #expect(text.contains("LOCK sched"))
    #expect(text.contains("lcpu 1, not in a thread"))
    #expect(text.contains("thread 7 spinner"))
    #expect(text.contains("waits at Workload.swift:80 in Workload.spinWorker()"))
    // Negative control: a lock nobody holds or waits for.
    state.whereViews = [OpenWhereView(view: .lock(0x30_0700), scrollBefore: 0)]
    let idle = Self.frame(state, snap, rates, width: 100, height: 40).1.text
    #expect(idle.contains("nobody holds it") && idle.contains("nobody waits"))
    #expect(!idle.contains("waits at"))
  }

  @Test func theThreadViewShowsTheLockItWaitsOnAndThatLocksHolder() throws {
    let (snap, rates) = try Self.snapshot()
    var state = DashboardState()
    state.threadsView = true
    state.detail = 0
    state.whereViews = [OpenWhereView(view: .thread(Fixtures.beta), scrollBefore: 0)]
    let text = Self.frame(state, snap, rates, width: 100, height: 40).1.text
    #expect(text.contains("THREAD 3 beta"))
    #expect(text.contains("WAITS ON") && text.contains("lock-A"))
    #expect(text.contains("held by thread 2 alpha"))
    #expect(text.contains("HOLDS") && text.contains("lock-B"))
    #expect(text.contains("BACKTRACE (saved context)"))
    #expect(text.contains("Workload.swift:141 in Workload.abbaSecond()"))
    assertGolden(text, named: "where-thread-100x40")
  }

  @Test func threadRowsAreSelectableWithACursor() throws {
    let (snap, rates) = try Self.snapshot()
    let (s, grid) = Self.press([.character("T"), .down], from: DashboardState(), snap, rates, height: 30)
    #expect(s.threadsView)
    let lines = grid.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let styles = grid.styleText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let selectedRows = styles.indices.filter { styles[$0].contains("SSSSSSSSSS") }
    #expect(selectedRows.count == 1, "one highlighted row")
    let row = try #require(selectedRows.first)
    #expect(lines[row].contains(s.selectedThread.map { String($0) } ?? "?"))
    assertGolden(grid.text + "\n" + grid.styleText, named: "where-threads-cursor-100x30")
  }

  @Test func enterOnALockRowOpensItsViewAndEscapeGoesBack() throws {
    let (snap, rates) = try Self.snapshot()
    var start = DashboardState(pane: .locks)
    start.panes[.locks] = PaneState(
      selectedID: Int(truncatingIfNeeded: Self.lockA), sortKey: .name, descending: false)
    let (opened, grid) = Self.press([.enter], from: start, snap, rates)
    #expect(opened.whereView == .lock(Self.lockA))
    #expect(grid.text.contains("LOCK lock-A"))
    #expect(action(for: .enter, in: opened) == nil, "nothing under a lock view")
    #expect(action(for: .left, in: opened) == nil)
    // The sampler is told, so it reads backtraces while the view is open.
    #expect(
      reduce(Self.frame(start, snap, rates, width: 100, height: 40).0, .openDetail).1.contains(.openDetail))
    let (back, pane) = Self.press([.escape], from: opened, snap, rates)
    #expect(back.whereView == nil && back.pane == .locks)
    #expect(back.current.selectedID == Int(truncatingIfNeeded: Self.lockA), "the selection stays")
    #expect(pane.text.contains("CONT/s") && !pane.text.contains("LOCK lock-A"))
    // Switching panes closes every view.
    let (switched, _) = Self.press([.enter, .character("1")], from: start, snap, rates)
    #expect(switched.whereViews.isEmpty && switched.pane == .lcpus)
  }

  @Test func enterOnAThreadOpensItsViewAndEscapeReturnsToTheSameScroll() throws {
    let (snap, rates) = try Self.snapshot()
    // Small screen: the threads view scrolls as the cursor moves down.
    let (moved, _) = Self.press(
      [.character("T"), .down, .down, .down, .down], from: DashboardState(), snap, rates, height: 14)
    let selected = try #require(moved.selectedThread)
    #expect(selected != moved.layout.threadIDs.first, "the cursor moved")
    #expect(moved.detailScroll > 0, "the view scrolled to keep the cursor visible")
    let (opened, grid) = Self.press([.enter], from: moved, snap, rates, height: 14)
    #expect(opened.whereView == .thread(selected))
    #expect(grid.text.contains("THREAD \(selected) "))
    let (back, _) = Self.press([.escape], from: opened, snap, rates, height: 14)
    #expect(back.whereView == nil && back.threadsView)
    #expect(back.detailScroll == moved.detailScroll && back.selectedThread == selected)
    let (closed, _) = Self.press([.escape], from: back, snap, rates, height: 14)
    #expect(!closed.threadsView && closed.detail == nil)
    // Up at the top stays on the first thread; End goes to the last.
    let (top, _) = Self.press([.character("T"), .up], from: DashboardState(), snap, rates)
    #expect(top.selectedThread == top.layout.threadIDs.first)
    let (last, _) = Self.press([.character("T"), .end], from: DashboardState(), snap, rates)
    #expect(last.selectedThread == last.layout.threadIDs.last)
  }

  @Test func theTimersPaneSaysWhereEachQueuesNextTimersOwnerWaits() throws {
    var (snap, rates) = try Self.snapshot()
    // lcpu 1's only timer belongs to net-rx, which sleeps until it.
    let q = try #require(snap.timerQueues.firstIndex { $0.lcpu == 1 })
    snap.timerQueues[q].timers[0].ownerSite = 0x10_7100
    snap.timerQueues[q].timers[0].ownerLocation = Self.location("Workload.netRx()", "Workload.swift", 90)
    let text = Self.frame(DashboardState(pane: .timers), snap, rates, width: 100, height: 30).1.text
    #expect(text.contains("NEXT TIMER'S OWNER WAITS AT"))
    #expect(text.contains("cpu1  net-rx 400µs  Workload.swift:90 in Workload.netRx()"))
    assertGolden(text, named: "where-timers-100x30")
    // Without owner places the table stands alone (the timers goldens), and the sampler is
    // told when the pane changes, so it reads backtraces for this pane.
    let plain = Self.frame(
      DashboardState(pane: .timers), try Self.snapshot().0, rates, width: 100, height: 30)
    #expect(!plain.1.text.contains("OWNER WAITS AT"))
    #expect(reduce(DashboardState(), .selectPane(.timers)).1.contains(.openDetail))
  }
}
