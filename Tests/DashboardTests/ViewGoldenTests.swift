import Dashboard
import Disassembly
import Inspector
import Testing

/// Every view at 80x24 and at a wide size, compared as text with files in `__Snapshots__/`.
@Suite struct ViewGoldenTests {
  static let sizes = [(80, 24), (200, 50)]

  /// Renders with the fixture symbolizer and target, after one `.sync` so the selection is what the
  /// run loop would show.
  func frame(
    _ state: DashboardState, _ snapshot: Snapshot?, _ rates: SnapshotRates? = nil, detail: DetailData? = nil,
    target: TargetInfo = Fixtures.target, width: Int, height: Int
  ) -> Grid {
    let data = DashboardData(snapshot: snapshot, rates: rates, detail: detail, target: target)
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    return renderFrame(state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
      .grid
  }

  @Test(arguments: sizes) func lcpusPane(width: Int, height: Int) throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    assertGolden(
      frame(DashboardState(), snap, rates, width: width, height: height).text,
      named: "lcpus-\(width)x\(height)")
  }

  @Test func lcpusPaneInASCII() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    let g = frame(DashboardState(charset: .ascii), snap, rates, width: 80, height: 24)
    #expect(g.text.unicodeScalars.allSatisfy { $0.isASCII }, "LANG=C must get pure ASCII")
    assertGolden(g.text, named: "lcpus-ascii-80x24")
  }

  @Test func lcpusPaneWithStoppedVM() throws {
    let (snap, rates) = try Fixtures.fourLCPUs(stopped: true)
    assertGolden(
      frame(DashboardState(), snap, rates, width: 120, height: 16).text, named: "lcpus-stopped-120x16")
  }

  @Test(arguments: [(80, 24), (200, 50), (120, 40)]) func sixtyFourLCPUs(width: Int, height: Int) throws {
    let (snap, rates) = try Fixtures.manyLCPUs(64)
    assertGolden(
      frame(DashboardState(), snap, rates, width: width, height: height).text,
      named: "lcpus64-\(width)x\(height)")
  }

  @Test(arguments: sizes) func genericMode(width: Int, height: Int) throws {
    assertGolden(
      frame(
        DashboardState(), try Fixtures.generic(), target: Fixtures.genericTarget, width: width, height: height
      ).text,
      named: "generic-\(width)x\(height)")
  }

  @Test func genericModeWithoutRegisters() throws {
    var snap = try Fixtures.generic(withRegisters: false)
    snap.runState = "running"
    assertGolden(
      frame(DashboardState(), snap, target: Fixtures.genericTarget, width: 80, height: 24).text,
      named: "generic-noregs-80x24")
  }

  static func detailData() throws -> DetailData {
    let d = try Disassembler()
    let lines = d.window(around: 0x10_303c, bytes: Fixtures.code, base: Fixtures.codeBase).map {
      DisassemblyLine(address: $0.address, bytes: $0.bytes, mnemonic: $0.mnemonic, operands: $0.operands)
    }
    return DetailData(lcpu: 3, disassembly: lines, rip: 0x10_303c)
  }

  @Test(arguments: sizes) func detailOfAPanickedLCPU(width: Int, height: Int) throws {
    let (snap, rates) = try Fixtures.fourLCPUs(stopped: true)
    var state = DashboardState()
    state.detail = 3
    assertGolden(
      frame(state, snap, rates, detail: try Self.detailData(), width: width, height: height).text,
      named: "detail-\(width)x\(height)")
  }

  @Test func detailOfAGenericVCPU() throws {
    var state = DashboardState()
    state.detail = 0
    let frames = DetailData(lcpu: 0, frames: [0x10_2010, 0x10_0020], rip: 0x10_1420)
    assertGolden(
      frame(state, try Fixtures.generic(), detail: frames, width: 100, height: 30).text,
      named: "detail-generic-100x30")
  }

  @Test func detailOfARunningLCPUExplainsWhatIsMissing() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var state = DashboardState()
    state.detail = 0
    let text = frame(state, snap, rates, width: 80, height: 24).text
    #expect(text.contains("Registers need a stopped VM"))
    assertGolden(text, named: "detail-running-80x24")
  }

  @Test(arguments: sizes) func helpOverlay(width: Int, height: Int) throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var state = DashboardState()
    state.helpVisible = true
    assertGolden(
      frame(state, snap, rates, width: width, height: height).text, named: "help-\(width)x\(height)")
  }

  @Test(arguments: Pane.allCases.filter { $0 != .lcpus }) func genericModeHasNoGuestTables(pane: Pane) throws
  {
    let text = frame(DashboardState(pane: pane), try Fixtures.generic(), width: 80, height: 24).text
    #expect(text.contains("No data in generic mode."))
  }

  @Test func waitingForTheFirstSnapshot() {
    assertGolden(frame(DashboardState(), nil, width: 80, height: 24).text, named: "waiting-80x24")
  }

  @Test func tinyTerminal() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    let g = frame(DashboardState(), snap, rates, width: 20, height: 5)
    #expect(g.text.contains("too small"))
    assertGolden(g.text, named: "tiny-20x5")
  }

  @Test func filterBeingTyped() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var state = DashboardState()
    for a in [Action.beginFilter, .filterInput("b"), .filterInput("u"), .filterInput("s")] {
      state = reduce(state, a).0
    }
    let text = frame(state, snap, rates, width: 80, height: 24).text
    assertGolden(text, named: "filter-80x24")
  }

  /// Colour matters here: selection, states, meters, the sorted header and the function bar.
  @Test func styleLayer() throws {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var state = DashboardState()
    state.current.sortKey = .busy
    state.current.descending = true
    let g = frame(state, snap, rates, width: 80, height: 24)
    assertGolden(g.text + "\n" + g.styleText, named: "lcpus-styles-80x24")
  }
}
