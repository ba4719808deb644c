import Dashboard
import Inspector
import Testing

/// What the views must do whatever the goldens say: honesty, scaling, selection, sorting, filtering.
@Suite struct ViewBehaviourTests {
  func frame(
    _ state: DashboardState, _ snap: Snapshot?, _ rates: SnapshotRates?, width: Int = 80, height: Int = 24
  )
    -> Frame
  {
    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    return renderFrame(
      state: reduce(state, .sync(first.layout)).0, data: data, symbolize: Fixtures.symbolize, width: width,
      height: height)
  }

  @Test(arguments: [1, 2, 8, 16, 17, 32, 48, 64]) func everyLCPUIsVisibleFromOneToSixtyFour(count: Int) throws
  {
    let (snap, rates) = try Fixtures.manyLCPUs(count)
    for (w, h) in [(80, 24), (200, 50)] {
      let f = frame(DashboardState(), snap, rates, width: w, height: h)
      #expect(f.layout.rowIDs.count == count)
      // Every lcpu number appears on screen, in the table or in the compact meters.
      let text = f.grid.text
      for i in 0..<count {
        let shown = text.split(separator: "\n").contains { line in
          line.split(whereSeparator: { $0 == " " || $0 == "[" || $0 == "~" }).contains(Substring(String(i)))
        }
        #expect(shown, "lcpu \(i) of \(count) at \(w)x\(h)")
      }
    }
  }

  @Test func theSelectedRowIsHighlightedAcrossTheWidth() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var s = reduce(DashboardState(), .sync(ViewLayout(rowIDs: [0, 1, 2, 3], pageRows: 18))).0
    s = reduce(s, .move(2)).0
    let g = frame(s, snap, rates).grid
    let y = try #require(
      g.text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.hasPrefix("  2~") })
    #expect(g.row(y).allSatisfy { $0.style == .selected })
    #expect(g.row(y - 1).contains { $0.style != .selected })
  }

  @Test func sortingByBusyPutsTheBusiestFirstAndUnknownLast() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var s = DashboardState()
    s.current.sortKey = .busy
    s.current.descending = true
    #expect(frame(s, snap, rates).layout.rowIDs == [0, 2, 1, 3])
    s.current.descending = false
    #expect(frame(s, snap, rates).layout.rowIDs == [1, 2, 0, 3], "lcpus without a share stay last")
    s.current.sortKey = .state
    s.current.descending = true
    #expect(frame(s, snap, rates).layout.rowIDs.first == 3, "halted lcpus first when sorting by state")
  }

  @Test func theFilterMatchesStateSymbolAndNumber() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var s = DashboardState()
    s.filter = "HALTED"
    #expect(frame(s, snap, rates).layout.rowIDs == [3])
    s.filter = "idleloop"
    #expect(frame(s, snap, rates).layout.rowIDs == [1])
    s.filter = "cpu2"
    #expect(frame(s, snap, rates).layout.rowIDs == [2])
    s.filter = "nothing like this"
    let f = frame(s, snap, rates)
    #expect(f.layout.rowIDs.isEmpty)
    #expect(f.grid.text.contains("No lcpu matches the filter"))
  }

  @Test func unreadableAndInconsistentRecordsAreMarkedNotHidden() throws {
    var (snap, rates) = try Fixtures.fourLCPUs()
    snap.lcpus[1].consistency = .unreadable(reason: "address 0xdead0000 outside guest RAM")
    let g = frame(DashboardState(), snap, rates, width: 120, height: 24).grid
    let lines = g.text.split(separator: "\n")
    let row1 = try #require(lines.first { $0.hasPrefix("  1!") })
    #expect(row1.contains("UNREADABLE"))
    #expect(row1.contains("outside guest RAM"))
    #expect(lines.contains { $0.hasPrefix("  2~") })
  }

  @Test func withoutRatesNumbersShowAsDashesNotZeros() throws {
    let (snap, _) = try Fixtures.fourLCPUs()
    let text = frame(DashboardState(), snap, nil).grid.text
    let row0 = try #require(text.split(separator: "\n").first { $0.hasPrefix("  0 ") })
    #expect(row0.contains("--%]") || row0.contains("--]"), "no busy share yet")
    #expect(!row0.contains(" 0.0%"))
    #expect(text.contains("Avg[") && text.contains("--]"))
  }

  @Test func theRIPColumnSaysWhereTheAddressCameFrom() throws {
    let (live, rates) = try Fixtures.fourLCPUs()
    #expect(frame(DashboardState(), live, rates).grid.text.contains("RIP (last tick)"))
    let (stopped, _) = try Fixtures.fourLCPUs(stopped: true)
    let text = frame(DashboardState(), stopped, rates, width: 120).grid.text
    #expect(text.contains("RIP (stopped)"))
    #expect(text.contains("pageFault"), "a stopped vCPU's register wins over the last tick")
  }

  @Test func aGuestWithoutTheABIGetsTheGenericScreen() throws {
    let f = frame(DashboardState(), try Fixtures.generic(), nil)
    #expect(f.grid.text.contains("generic mode"))
    #expect(f.grid.text.contains("1 vCPUs"))
    #expect(f.layout.rowIDs == [0, 1])
    #expect(f.grid.text.contains("0000000000101420"))
  }

  @Test(arguments: [(20, 5), (39, 24), (80, 7), (1, 1), (0, 0)]) func smallTerminalsGetAMessageNotGarbage(
    width: Int, height: Int
  ) throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    let g = frame(DashboardState(), snap, rates, width: width, height: height).grid
    #expect(g.width == width && g.height == height)
    if width >= 18 && height >= 1 { #expect(g.text.contains("too small")) }
    #expect(!g.text.contains("CPU"))
  }

  @Test(arguments: [(40, 8), (41, 9), (57, 13), (80, 24), (133, 41), (200, 50), (300, 80)])
  func everySizeRendersInBounds(
    width: Int, height: Int
  ) throws {
    let (snap, rates) = try Fixtures.manyLCPUs(64)
    for pane in Pane.allCases {
      for detail in [nil, 5] as [Int?] {
        var s = DashboardState(pane: pane)
        s.detail = pane == .lcpus ? detail : nil
        s.helpVisible = detail == nil && pane == .timers
        let g = frame(s, snap, rates, width: width, height: height).grid
        let lines = g.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == height)
        #expect(lines.allSatisfy { displayWidth(String($0)) <= width })
        #expect(g.text.contains("F10") || g.text.contains("keys"), "the key bar or help is always there")
      }
    }
  }

  @Test func theHeaderCountsProblemsAndShowsTheFirst() throws {
    var (snap, rates) = try Fixtures.fourLCPUs()
    snap.problems = ["lock table address 0x0 is not in guest RAM", "second"]
    let text = frame(DashboardState(), snap, rates, width: 120, height: 24).grid.text
    #expect(text.contains("2 problems: lock table address 0x0 is not in guest RAM"))
  }

  @Test func theDetailViewUsesOnlyDetailDataForItsOwnLCPU() throws {
    let (snap, rates) = try Fixtures.fourLCPUs(stopped: true)
    var s = DashboardState()
    s.detail = 1
    let stale = DetailData(
      lcpu: 3,
      disassembly: [DisassemblyLine(address: 0x10_303c, bytes: [0x90], mnemonic: "nop", operands: "")])
    let data = DashboardData(snapshot: snap, rates: rates, detail: stale, target: Fixtures.target)
    let text = renderFrame(state: s, data: data, symbolize: Fixtures.symbolize, width: 200, height: 50).grid
      .text
    #expect(!text.contains("nop"), "data fetched for lcpu 3 must not appear under lcpu 1")
    #expect(text.contains("lcpu 1"))
  }

  @Test func benchmarkRendersRealFrames() throws {
    let (snap, rates) = try Fixtures.manyLCPUs(64)
    let result = benchmarkRender(
      data: DashboardData(snapshot: snap, rates: rates, target: Fixtures.target),
      symbolize: Fixtures.symbolize,
      frames: 20)
    #expect(result.frames == 20)
    #expect(result.microsecondsPerFrame > 0 && result.microsecondsPerFrame.isFinite)
    #expect(result.filledCells > 2000, "a 64-lcpu frame at 200x50 is mostly filled")
    print("render 64 lcpus 200x50 (debug build): \(Int(result.microsecondsPerFrame)) µs/frame")
  }

  @Test func benchmarkRendersTheLocksPaneWith256Locks() throws {
    let (snap, rates) = try Fixtures.manyLocks(lcpus: 64, locks: 256)
    let result = benchmarkRender(
      state: DashboardState(pane: .locks),
      data: DashboardData(snapshot: snap, rates: rates, target: Fixtures.target),
      symbolize: Fixtures.symbolize,
      frames: 20)
    #expect(result.filledCells > 2000, "a 256-lock frame at 200x50 is mostly filled")
    print(
      "render 64 lcpus + 256 locks, locks pane 200x50 (debug build): \(Int(result.microsecondsPerFrame)) µs/frame"
    )
  }
}
