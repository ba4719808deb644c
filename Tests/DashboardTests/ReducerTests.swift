import Dashboard
import Testing

/// The key table and the reducer: what each key does, and what the caller is asked to do.
@Suite struct ReducerTests {
  /// A state whose last frame showed lcpus 0…9 in that order, 4 rows per page.
  func listed(_ ids: [Int] = Array(0..<10), page: Int = 4) -> DashboardState {
    reduce(DashboardState(), .sync(ViewLayout(rowIDs: ids, pageRows: page))).0
  }

  /// Maps a key and reduces, like the run loop.
  func press(_ key: Key, _ state: DashboardState) -> (DashboardState, Reaction) {
    guard let a = action(for: key, in: state) else { return (state, []) }
    return reduce(state, a)
  }

  static let table: [(Key, Action)] = [
    (.function(1), .toggleHelp), (.character("?"), .toggleHelp), (.character("h"), .toggleHelp),
    (.function(10), .quit), (.character("q"), .quit), (.control("c"), .quit),
    (.tab, .nextPane), (.backTab, .previousPane),
    (.character("1"), .selectPane(.lcpus)), (.character("2"), .selectPane(.locks)),
    (.character("3"), .selectPane(.allocator)), (.character("4"), .selectPane(.virtio)),
    (.character("5"), .selectPane(.timers)),
    (.up, .move(-1)), (.character("k"), .move(-1)), (.down, .move(1)), (.character("j"), .move(1)),
    (.pageUp, .pageUp), (.pageDown, .pageDown), (.home, .home), (.end, .end),
    (.enter, .openDetail), (.escape, .escape),
    (.function(6), .sortNext), (.character(">"), .sortNext), (.character("<"), .sortPrevious),
    (.character("I"), .invertSort),
    (.character("/"), .beginFilter), (.function(4), .beginFilter),
    (.character(" "), .togglePause), (.function(5), .togglePause),
    (.character("s"), .step), (.function(7), .step), (.character("c"), .continueVM),
    (.function(8), .continueVM),
    (.character("+"), .slower), (.character("-"), .faster),
    (.control("l"), .redraw), (.function(2), .cycleColors), (.resize, .resize),
  ]

  @Test(arguments: table) func keyTable(key: Key, expected: Action) {
    #expect(action(for: key, in: DashboardState()) == expected)
  }

  @Test func unmappedKeysDoNothing() {
    #expect(action(for: .character("x"), in: DashboardState()) == nil)
    #expect(action(for: .character("9"), in: DashboardState()) == nil, "there is no pane 9")
    #expect(action(for: .left, in: DashboardState()) == nil, "left/right only page lcpus in the detail view")
  }

  @Test func typingAFilterTakesEveryPrintableKey() {
    var s = DashboardState()
    s.isEditingFilter = true
    #expect(action(for: .character("q"), in: s) == .filterInput("q"), "q types, it does not quit")
    #expect(action(for: .character(" "), in: s) == .filterInput(" "))
    #expect(action(for: .backspace, in: s) == .filterBackspace)
    #expect(action(for: .enter, in: s) == .commitFilter)
    #expect(action(for: .escape, in: s) == .cancelFilter)
    #expect(action(for: .control("c"), in: s) == .quit)
  }

  @Test func anyKeyLeavesHelpButQuitStillQuits() {
    var s = DashboardState()
    s.helpVisible = true
    #expect(action(for: .character("x"), in: s) == .toggleHelp)
    #expect(action(for: .down, in: s) == .toggleHelp)
    #expect(action(for: .character("q"), in: s) == .quit)
    #expect(press(.character("x"), s).0.helpVisible == false)
  }

  @Test func quitAsksTheCallerToLeave() {
    #expect(press(.character("q"), DashboardState()).1 == .quit)
  }

  @Test func movingFollowsTheLastFrameAndClamps() {
    var s = listed()
    #expect(s.current.selectedID == 0, "sync selects the first row")
    s = press(.down, s).0
    s = press(.character("j"), s).0
    #expect(s.current.selectedID == 2)
    s = press(.up, s).0
    #expect(s.current.selectedID == 1)
    s = press(.end, s).0
    #expect(s.current.selectedID == 9)
    #expect(s.current.scroll == 6, "the last page shows rows 6…9")
    s = press(.down, s).0
    #expect(s.current.selectedID == 9, "no wrap past the end")
    s = press(.home, s).0
    #expect(s.current.selectedID == 0)
    #expect(s.current.scroll == 0)
    s = press(.pageDown, s).0
    #expect(s.current.selectedID == 3, "a page is pageRows - 1 rows, keeping one row of context")
  }

  @Test func selectionFollowsTheLCPUWhenRowsResort() {
    var s = listed([0, 1, 2, 3])
    s = press(.down, press(.down, s).0).0
    #expect(s.current.selectedID == 2)
    s = reduce(s, .sync(ViewLayout(rowIDs: [2, 0, 3, 1], pageRows: 4))).0
    #expect(s.current.selectedID == 2, "the same lcpu stays selected after a re-sort")
    s = press(.down, s).0
    #expect(s.current.selectedID == 0, "and moving goes by the new order")
  }

  @Test func aVanishedSelectionFallsBackToTheFirstRow() {
    var s = listed([0, 1, 2])
    s = press(.end, s).0
    s = reduce(s, .sync(ViewLayout(rowIDs: [0, 1], pageRows: 4))).0
    #expect(s.current.selectedID == 0)
  }

  @Test func panesSwitchAndKeepTheirOwnSelection() {
    var s = press(.down, listed()).0
    #expect(s.current.selectedID == 1)
    s = press(.tab, s).0
    #expect(s.pane == .locks)
    s = press(.backTab, s).0
    #expect(s.pane == .lcpus)
    #expect(s.current.selectedID == 1)
    s = press(.backTab, s).0
    #expect(s.pane == .profile, "Shift-Tab wraps around")
    s = press(.character("1"), s).0
    #expect(s.pane == .lcpus)
  }

  @Test func enterOpensTheDetailOfTheSelectedLCPUAndAsksForItsData() {
    let s0 = press(.down, press(.down, listed()).0).0
    let (s, r) = press(.enter, s0)
    #expect(s.detail == 2)
    #expect(s.targetLCPU == 2)
    #expect(r.contains(.openDetail))
    #expect(r.contains(.redraw))
  }

  @Test func leftAndRightPageThroughLCPUsInTheDetailView() {
    var s = press(.enter, listed([0, 1, 2])).0
    var r: Reaction
    (s, r) = press(.right, s)
    #expect(s.detail == 1)
    #expect(r.contains(.openDetail), "new lcpu, new disassembly")
    (s, _) = press(.left, press(.left, s).0)
    #expect(s.detail == 0, "clamped at the first lcpu")
  }

  @Test func arrowsScrollTheDetailViewWithinItsContent() {
    var s = press(.enter, listed()).0
    s =
      reduce(s, .sync(ViewLayout(rowIDs: Array(0..<10), pageRows: 4, detailLines: 50, detailPageRows: 20))).0
    s = press(.down, s).0
    #expect(s.detailScroll == 1)
    #expect(s.detail == 0, "scrolling does not change the lcpu")
    s = press(.end, s).0
    #expect(s.detailScroll == 30)
    s = press(.pageUp, s).0
    #expect(s.detailScroll == 11)
    s = press(.home, s).0
    #expect(s.detailScroll == 0)
  }

  @Test func escapeClosesTheInnermostThingFirst() {
    var s = press(.enter, listed()).0
    s.filter = "busy"
    s.helpVisible = true
    s = reduce(s, .escape).0
    #expect(!s.helpVisible)
    #expect(s.detail != nil)
    s = reduce(s, .escape).0
    #expect(s.detail == nil)
    #expect(s.filter == "busy")
    s = reduce(s, .escape).0
    #expect(s.filter == "")
    #expect(reduce(s, .escape).1 == [], "nothing left to close")
  }

  @Test func filterEditingCommitsOrRestores() {
    var s = DashboardState()
    s.filter = "idle"
    for k in [
      Key.character("/"), .backspace, .backspace, .backspace, .backspace, .character("b"), .character("u"),
    ] {
      s = press(k, s).0
    }
    #expect(s.isEditingFilter)
    #expect(s.filter == "bu")
    let committed = press(.enter, s).0
    #expect(!committed.isEditingFilter)
    #expect(committed.filter == "bu")
    let cancelled = press(.escape, s).0
    #expect(!cancelled.isEditingFilter)
    #expect(cancelled.filter == "idle", "Esc restores the filter from before editing")
  }

  @Test func sortCyclesColumnsWithTheirNaturalDirection() {
    var s = DashboardState()
    #expect(s.current.sortKey == .index)
    s = press(.function(6), s).0
    #expect(s.current.sortKey == .state)
    s = press(.character(">"), s).0
    #expect(s.current.sortKey == .busy)
    #expect(s.current.descending, "load columns start biggest first")
    #expect(s.statusMessage == "sorted by BUSY% ↓")
    s = press(.character("I"), s).0
    #expect(!s.current.descending)
    s = press(.character("<"), press(.character("<"), press(.character("<"), s).0).0).0
    #expect(s.current.sortKey == .deadline, "< wraps backwards")
  }

  @Test func spacePausesThenResumesTheVM() {
    var (s, r) = press(.character(" "), DashboardState())
    #expect(r.contains(.pauseVM))
    #expect(s.vmPaused)
    (s, r) = press(.character(" "), s)
    #expect(r.contains(.resumeVM))
    #expect(!r.contains(.pauseVM))
    #expect(!s.vmPaused)
  }

  @Test func qemuHasTheLastWordOnWhetherTheVMRuns() {
    var s = reduce(DashboardState(), .togglePause).0
    #expect(s.vmPaused)
    s = reduce(s, .sync(ViewLayout(rowIDs: [0], pageRows: 1, vmRunning: true))).0
    #expect(!s.vmPaused, "a snapshot that says running wins")
    s = reduce(s, .sync(ViewLayout(rowIDs: [0], pageRows: 1, vmRunning: nil))).0
    #expect(!s.vmPaused, "unknown leaves it alone")
  }

  @Test func stepNeedsAnLCPUAndStopsTheVM() {
    let (none, r0) = press(.character("s"), DashboardState())
    #expect(!r0.contains(.stepSelected))
    #expect(none.statusMessage == "select an lcpu to step")
    let (s, r) = press(.character("s"), press(.down, listed()).0)
    #expect(r.contains(.stepSelected))
    #expect(s.targetLCPU == 1)
    #expect(s.vmPaused)
    let (c, rc) = press(.character("c"), s)
    #expect(rc.contains(.continueVM))
    #expect(!c.vmPaused)
  }

  @Test func refreshIntervalStepsAndStopsAtTheEnds() {
    var (s, r) = press(.character("-"), DashboardState())
    #expect(s.intervalMilliseconds == 500)
    #expect(r.contains(.changeInterval))
    (s, r) = press(.character("+"), press(.character("+"), s).0)
    #expect(s.intervalMilliseconds == 2000)
    var fastest = DashboardState(intervalMilliseconds: 100)
    (fastest, r) = press(.character("-"), fastest)
    #expect(fastest.intervalMilliseconds == 100)
    #expect(!r.contains(.changeInterval), "no change, no effect")
  }

  @Test func ctrlLAsksForAFullRepaintAndF2ForNewColours() {
    #expect(press(.control("l"), DashboardState()).1.contains(.fullRedraw))
    let (s, r) = press(.function(2), DashboardState())
    #expect(s.colorScheme == .monochrome)
    #expect(r.contains(.changeColors))
    #expect(press(.function(2), s).0.colorScheme == .standard)
  }

  @Test func aStatusMessageLastsUntilTheNextKey() {
    var s = reduce(DashboardState(), .status("VM paused")).0
    #expect(s.statusMessage == "VM paused")
    s = reduce(s, .sync(ViewLayout(rowIDs: [0], pageRows: 1))).0
    #expect(s.statusMessage == "VM paused", "frames do not clear it")
    s = press(.down, s).0
    #expect(s.statusMessage == nil)
  }
}
