import Dashboard
import Testing

@testable import Dashboard

/// The profile pane (key 7) over a hand-built profile: rows per lcpu and overall, self and total
/// shares, idle apart, names by function or line, sort, filter, the icicle view, and what it
/// says when the guest takes no samples.
@Suite struct ProfilePaneTests {
  /// 1 GHz guest: 1,000,000 TSC per ms.
  static let perMs: UInt64 = 1_000_000
  static let main: UInt64 = 0x1000
  static let work: UInt64 = 0x2000
  static let spin: UInt64 = 0x3000
  static let alloc: UInt64 = 0x4000

  /// A sample whose stack is `chain`, outermost first (return addresses one byte past the call,
  /// as the guest records them).
  static func sample(_ lcpu: UInt32, _ n: Int, idle: Bool = false, periods: UInt64 = 1, _ chain: [UInt64])
    -> ProfileSample
  {
    ProfileSample(
      lcpu: lcpu, position: UInt64(n), tsc: UInt64(n + 1) * perMs, thread: idle ? 0 : 7, periods: periods,
      idle: idle, rip: idle ? 0x9000 : chain.last ?? 0,
      frames: idle ? [] : chain.dropLast().reversed().map { $0 + 1 })
  }

  /// lcpu 0: 4 idle, 3 in spin (main → work → spin), 2 in work, 1 in alloc (main → alloc);
  /// lcpu 1: 5 in spin, 1 idle. Overall 16 periods: spin self 8 (50 %), work self 2 total 10,
  /// main total 11, alloc 1, idle 5.
  static func data(hz: UInt64 = 1000, present: Bool = true) -> ProfileData {
    var samples: [ProfileSample] = []
    var n = 0
    func add(_ lcpu: UInt32, _ count: Int, idle: Bool = false, _ chain: [UInt64]) {
      for _ in 0..<count {
        samples.append(sample(lcpu, n, idle: idle, chain))
        n += 1
      }
    }
    add(0, 4, idle: true, [])
    add(0, 3, [main, work, spin])
    add(0, 2, [main, work])
    add(0, 1, [main, alloc])
    add(1, 5, [main, work, spin])
    add(1, 1, idle: true, [])
    let functions: [UInt64: String] = [
      main: "Kernel.main()", work: "Workload.run()", spin: "SpinLock.lock()", alloc: "Buddy.alloc()",
    ]
    let lines: [UInt64: String] = [
      main: "Kernel.swift:10 in Kernel.main()", work: "Workload.swift:20 in Workload.run()",
      spin: "SpinLock.swift:30 in SpinLock.lock()",
    ]
    return ProfileData(
      samples: samples, lost: [1: 3], tscPerMs: perMs, functionNames: functions, lineNames: lines, hz: hz,
      present: present)
  }

  /// Renders twice (the second time with the first frame's layout synced), like the run loop.
  func frame(_ state: DashboardState, _ profile: ProfileData?, width: Int = 80, height: Int = 24) throws
    -> (Grid, ViewLayout, DashboardState)
  {
    let (snap, rates) = try Fixtures.fourLCPUs()
    var data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    data.profile = profile
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    let f = renderFrame(
      state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    return (f.grid, f.layout, reduce(synced, .sync(f.layout)).0)
  }

  static func lines(_ g: Grid) -> [String] {
    g.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  }

  @Test func rowsOverAllLCPUsHaveSelfAndTotalSharesAndLeaveIdleOut() {
    let report = profileReport(Self.data(), state: ProfileState())
    #expect(report.periods == 16 && report.idle == 5 && report.lost == 3)
    let rows = profileRows(report, filter: "", sort: PaneState(sortKey: .selfShare, descending: true))
    #expect(rows.map(\.row.name) == ["SpinLock.lock()", "Workload.run()", "Buddy.alloc()", "Kernel.main()"])
    #expect(rows[0].selfShare == 50 && rows[0].totalShare == 50)
    #expect(rows[1].selfShare == 12.5 && rows[1].totalShare == 62.5)
    #expect(rows[3].selfShare == 0 && rows[3].totalShare == 68.75)
    #expect(!rows.contains { $0.row.name == "idle" }, "idle is shown apart, not as a function")
    // Self shares plus idle cover every period.
    #expect(rows.map(\.selfShare).reduce(0, +) + report.percent(report.idle) == 100)
  }

  @Test func oneLCPUsRowsCountOnlyItsSamples() {
    var state = ProfileState()
    state.lcpu = 0
    let report = profileReport(Self.data(), state: state)
    #expect(report.periods == 10 && report.idle == 4 && report.lost == 0)
    let rows = profileRows(report, filter: "", sort: PaneState(sortKey: .selfShare, descending: true))
    #expect(rows.first?.row == ProfileRow(name: "SpinLock.lock()", selfCount: 3, totalCount: 3))
    #expect(rows.first?.selfShare == 30)
    state.lcpu = 1
    let one = profileReport(Self.data(), state: state)
    #expect(one.periods == 6 && one.idle == 1 && one.rows.count == 3 && one.lost == 3)
  }

  @Test func sortByTotalOrNameAndFilterByName() {
    let report = profileReport(Self.data(), state: ProfileState())
    let byTotal = profileRows(report, filter: "", sort: PaneState(sortKey: .totalShare, descending: true))
    #expect(byTotal.map(\.row.name).prefix(2) == ["Kernel.main()", "Workload.run()"])
    let byName = profileRows(report, filter: "", sort: PaneState(sortKey: .function, descending: false))
    #expect(
      byName.map(\.row.name) == ["Buddy.alloc()", "Kernel.main()", "SpinLock.lock()", "Workload.run()"])
    let filtered = profileRows(report, filter: "LOCK", sort: PaneState(sortKey: .selfShare, descending: true))
    #expect(filtered.map(\.row.name) == ["SpinLock.lock()"])
    #expect(profileRows(report, filter: "nothing", sort: PaneState()).isEmpty)
  }

  @Test func byLineNamesSamplesByTheirSourceLineAndFunctionWhereThereIsNone() {
    var state = ProfileState()
    state.lines = true
    let names = profileReport(Self.data(), state: state).rows.map(\.name)
    #expect(names.contains("SpinLock.swift:30 in SpinLock.lock()"))
    #expect(names.contains("Buddy.alloc()"), "no line known: the function")
    #expect(!names.contains("SpinLock.lock()"))
  }

  @Test func thePaneAt80x24ShowsSharesIdleAndTheLCPUs() throws {
    let (g, layout, _) = try frame(DashboardState(pane: .profile), Self.data())
    let lines = Self.lines(g)
    let text = g.text
    #expect(text.contains(" 7 profile"), "the active pane's tab shows at 80 columns")
    #expect(text.contains("all lcpus  last 5s  by function  busy 68.8%  idle 31.3%  lost 3"), "\(text)")
    #expect(text.contains(" all 69% ") && text.contains(" 0: 60% ") && text.contains(" 1: 83% "))
    let header = try #require(lines.first { $0.contains("SELF%") })
    #expect(header.contains("TOTAL%") && header.contains("FUNCTION"))
    let spin = try #require(lines.first { $0.contains("SpinLock.lock()") })
    #expect(spin.contains("50.0") && spin.contains("50.0"))
    let main = try #require(lines.first { $0.contains("Kernel.main()") })
    #expect(main.contains("0.0") && main.contains("68.8"))
    #expect(layout.rowIDs.count == 4 && layout.profileLCPUs == [0, 1])
    #expect(lines.count == 24 && lines.allSatisfy { $0.count <= 80 })
    assertGolden(text, named: "profile-80x24")
  }

  @Test func keysChooseTheLCPUNamingWindowAndView() throws {
    var s = DashboardState(pane: .profile)
    var (_, _, synced) = try frame(s, Self.data())
    s = synced
    #expect(action(for: .right, in: s) == .profileLCPU(1))
    s = reduce(s, .profileLCPU(1)).0
    #expect(s.profile.lcpu == 0)
    s = reduce(s, .profileLCPU(1)).0
    s = reduce(s, .profileLCPU(1)).0
    #expect(s.profile.lcpu == 1, "the last lcpu stays chosen")
    (_, _, synced) = try frame(s, Self.data())
    let text = try frame(synced, Self.data()).0.text
    #expect(text.contains("lcpu 1  last 5s") && text.contains("busy 83.3%"), "\(text)")
    s = reduce(s, .profileLCPU(-5)).0
    #expect(s.profile.lcpu == nil, "before lcpu 0 comes every lcpu")
    #expect(action(for: .character("l"), in: s) == .profileLines)
    s = reduce(s, .profileLines).0
    let lines = try frame(s, Self.data()).0.text
    #expect(lines.contains("LINE") && lines.contains("SpinLock.swift:30") && lines.contains("by line"))
    #expect(action(for: .character("+"), in: s) == .profileWindow(1))
    for _ in 0..<9 { s = reduce(s, .profileWindow(1)).0 }
    #expect(s.profile.windowSeconds == 30)
    for _ in 0..<9 { s = reduce(s, .profileWindow(-1)).0 }
    #expect(s.profile.windowSeconds == 1)
    // Elsewhere the same keys keep their meaning.
    #expect(action(for: .character("+"), in: DashboardState(pane: .locks)) == .slower)
    #expect(action(for: .character("l"), in: DashboardState(pane: .locks)) == nil)
    #expect(action(for: .character("f"), in: s) == .profileIcicle)
  }

  @Test func theWindowDropsOlderSamples() {
    // The fixture's samples lie within 16 ms; one more 2.1 s later leaves only itself in the
    // last second, and all 17 in the last 5 s.
    let d = Self.data()
    var state = ProfileState()
    state.window = 0
    #expect(profileReport(d, state: state).periods == 16)
    let late = ProfileSample(
      lcpu: 0, position: 100, tsc: 2_100 * Self.perMs, thread: 7, idle: false, rip: Self.main, frames: [])
    d.live.withCounts { $0.add(samples: [late], lost: [:], tscPerMs: Self.perMs) { _, _ in "Kernel.main()" } }
    #expect(profileReport(d, state: state).periods == 1)
    state.window = 2
    #expect(profileReport(d, state: state).periods == 17)
  }

  @Test func theIcicleHasTheRootOnTopAndChildrenByShare() throws {
    let tree = icicleTree(Self.data(), state: ProfileState())
    #expect(tree.name == "all lcpus" && tree.count == 16)
    #expect(tree.children.map(\.name) == ["Kernel.main()", "idle"])
    #expect(tree.children.map(\.count) == [11, 5])
    let main = tree.children[0]
    #expect(main.children.map(\.name) == ["Workload.run()", "Buddy.alloc()"])
    #expect(main.children[0].children == [IcicleNode(name: "SpinLock.lock()", count: 8)])
    #expect(tree.depth == 3)

    var s = DashboardState(pane: .profile)
    s.profile.icicle = true
    let lines = Self.lines(try frame(s, Self.data()).0)
    let root = try #require(lines.firstIndex { $0.hasPrefix("all lcpus 100.0%") })
    #expect(lines[root].hasSuffix("│"))
    // Level 1: main over 11/16 of 80 columns (55), then idle.
    let level1 = lines[root + 1]
    #expect(level1.hasPrefix("Kernel.main() 68.8%"))
    let idle = try #require(level1.range(of: "idle 31.3%"))
    #expect(level1.distance(from: level1.startIndex, to: idle.lowerBound) == 55)
    #expect(lines[root + 2].hasPrefix("Workload.run() 62.5%"))
    #expect(lines[root + 3].hasPrefix("SpinLock.lock() 50.0%"))
  }

  @Test func aGuestWithoutSamplesIsToldToBootWithProfHz() throws {
    let off = try frame(DashboardState(pane: .profile), Self.data(hz: 0)).0.text
    #expect(off.contains("The guest takes no stack samples.") && off.contains("prof_hz=N"))
    let absent = try frame(DashboardState(pane: .profile), Self.data(present: false)).0.text
    #expect(absent.contains("prof_hz="))
    let none = try frame(DashboardState(pane: .profile), nil).0.text
    #expect(none.contains("No profile rings.") && none.contains("--memory-file"))
    // Negative control: a profiling guest's pane does not say it.
    #expect(!(try frame(DashboardState(pane: .profile), Self.data()).0.text.contains("prof_hz")))
  }
}
