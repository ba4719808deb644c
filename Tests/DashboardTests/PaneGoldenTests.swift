import Dashboard
import Inspector
import Testing

/// The ABI v2 panes (locks, alloc, virtio, timers) at 80x24 and 200x50, with data and without.
@Suite struct PaneGoldenTests {
  static let sizes = [(80, 24), (200, 50)]
  static let panes: [Pane] = [.locks, .allocator, .virtio, .timers]

  func frame(_ state: DashboardState, _ snapshot: Snapshot, _ rates: SnapshotRates?, width: Int, height: Int)
    -> Grid
  {
    let data = DashboardData(snapshot: snapshot, rates: rates, target: Fixtures.target)
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    return renderFrame(state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
      .grid
  }

  @Test(arguments: panes, sizes) func paneWithData(pane: Pane, size: (Int, Int)) throws {
    let (snap, rates) = try Fixtures.fullV2()
    let text = frame(DashboardState(pane: pane), snap, rates, width: size.0, height: size.1).text
    assertGolden(text, named: "v2-\(pane.title(generic: false))-\(size.0)x\(size.1)")
  }

  @Test(arguments: panes) func paneWithoutItsTable(pane: Pane) throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    let text = frame(DashboardState(pane: pane), snap, rates, width: 80, height: 24).text
    #expect(text.contains("published by this guest"))
    assertGolden(text, named: "v2-\(pane.title(generic: false))-empty-80x24")
  }

  @Test(arguments: panes) func paneBeforeTheSecondSnapshot(pane: Pane) throws {
    let (snap, _) = try Fixtures.fullV2()
    let text = frame(DashboardState(pane: pane), snap, nil, width: 120, height: 30).text
    assertGolden(text, named: "v2-\(pane.title(generic: false))-norates-120x30")
  }

  @Test func locksStyleLayer() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let g = frame(DashboardState(pane: .locks), snap, rates, width: 120, height: 30)
    assertGolden(g.text + "\n" + g.styleText, named: "v2-locks-styles-120x30")
  }

  @Test func detailListsTheThreadsOnItsLCPU() throws {
    let (snap, rates) = try Fixtures.fullV2()
    var state = DashboardState()
    state.detail = 0
    let text = frame(state, snap, rates, width: 100, height: 50).text
    #expect(text.contains("THREADS ON THIS LCPU"))
    #expect(text.contains("on lock-B"))
    assertGolden(text, named: "v2-detail-threads-100x50")
  }
}
