import Dashboard
import Inspector
import Testing

/// What the ABI v2 panes must do whatever the goldens say.
@Suite struct PaneBehaviourTests {
  func frame(
    _ state: DashboardState, _ snapshot: Snapshot, _ rates: SnapshotRates?, width: Int = 200, height: Int = 50
  )
    -> Frame
  {
    let data = DashboardData(snapshot: snapshot, rates: rates, target: Fixtures.target)
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    return renderFrame(state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
  }

  func lines(_ f: Frame) -> [String] { f.grid.text.components(separatedBy: "\n") }

  @Test func locksSortByContentionFirstAndNameTheDeadlock() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let f = frame(DashboardState(pane: .locks), snap, rates)
    let text = f.grid.text
    #expect(text.contains("deadlock: alpha waits lock-B held by beta waits lock-A held by alpha"))
    #expect(text.contains("misuse on 1 lock: console (3)"))
    let first = lines(f).first { $0.hasPrefix(" sched") || $0.hasPrefix("~heap") }
    #expect(first?.hasPrefix(" sched") == true, "the most contended lock comes first")
    #expect(f.layout.rowIDs.first == 0x30_0000)
    #expect(f.layout.rowIDs.count == snap.locks.count)
  }

  @Test func sortKeysCycleThroughTheLockColumns() throws {
    var s = DashboardState(pane: .locks)
    #expect(s.current.sortKey == .contention && s.current.descending)
    s = reduce(s, .sortNext).0
    #expect(s.current.sortKey == .name && !s.current.descending)
    let (snap, rates) = try Fixtures.fullV2()
    let f = frame(s, snap, rates)
    let names = f.layout.rowIDs.compactMap { id in snap.locks.first { Int($0.address) == id }?.name }
    #expect(names == names.sorted())
  }

  /// The names in the locks table's rows of a frame, top to bottom.
  func lockNames(_ f: Frame) -> [String] {
    lines(f).compactMap { line in
      let name = line.dropFirst().prefix { $0 != " " }
      return name.hasPrefix("lock-") ? String(name) : nil
    }
  }

  @Test(arguments: [0, 1, 150, 299])
  func aLongLockTableScrollsToTheSelectionAndDrawsTheRowsInOrder(position: Int) throws {
    let (snap, rates) = try Fixtures.manyLocks(lcpus: 8, locks: 300)
    var s = DashboardState(pane: .locks)
    s.current.sortKey = .name
    s.current.descending = false
    // The oracle: every lock's name sorted, ties impossible (names are unique).
    let sorted = snap.locks.map(\.name).sorted()
    let selected = try #require(snap.locks.first { $0.name == sorted[position] })
    s.current.selectedID = Int(selected.address)
    let f = frame(s, snap, rates, width: 80, height: 24)
    #expect(f.layout.rowIDs.count == 300)
    #expect(
      f.layout.rowIDs.compactMap { id in snap.locks.first { Int($0.address) == id }?.name } == sorted)
    let shown = lockNames(f)
    try #require(shown.count >= 5, "rows on screen: \(shown)")
    let start = try #require(sorted.firstIndex(of: shown[0]))
    #expect(shown == Array(sorted[start..<start + shown.count]), "a contiguous run of the sorted names")
    #expect(shown.contains(selected.name), "the selected lock is on screen")
    // A negative control: another selection shows other rows.
    var other = s
    other.current.selectedID = Int(
      snap.locks.first { $0.name == sorted[(position + 150) % 300] }?.address ?? 0)
    #expect(lockNames(frame(other, snap, rates, width: 80, height: 24)) != shown)
  }

  @Test func aFilterOverALongLockTableKeepsOnlyMatchingRows() throws {
    let (snap, rates) = try Fixtures.manyLocks(lcpus: 8, locks: 300)
    var s = DashboardState(pane: .locks)
    s.filter = "lock-2"
    let f = frame(s, snap, rates, width: 200, height: 50)
    let expected = Set(snap.locks.filter { $0.name.hasPrefix("lock-2") }.map { Int($0.address) })
    #expect(Set(f.layout.rowIDs) == expected && expected.count == 111)
    #expect(lockNames(f).allSatisfy { $0.hasPrefix("lock-2") } && !lockNames(f).isEmpty)
  }

  @Test func theFilterNarrowsLocksAndThreads() throws {
    let (snap, rates) = try Fixtures.fullV2()
    var s = DashboardState(pane: .locks)
    s.filter = "deadlock"
    let f = frame(s, snap, rates)
    #expect(Set(f.layout.rowIDs) == [0x30_0100, 0x30_0200])
    s.filter = "no-such-lock"
    #expect(frame(s, snap, rates).grid.text.contains("No lock matches the filter"))
  }

  @Test func unknownRatesAreDashesNotZeros() throws {
    let (snap, _) = try Fixtures.fullV2()
    let text = frame(DashboardState(pane: .locks), snap, nil, width: 80, height: 24).grid.text
    let sched = text.components(separatedBy: "\n").first { $0.hasPrefix(" sched") } ?? ""
    #expect(sched.contains("—"))
    #expect(!sched.contains(" 0 "))
  }

  @Test(arguments: [Pane.locks, .allocator, .virtio, .timers]) func asciiTerminalsGetASCII(pane: Pane) throws
  {
    let (snap, rates) = try Fixtures.fullV2()
    for (w, h) in [(80, 24), (200, 50)] {
      let text = frame(DashboardState(pane: pane, charset: .ascii), snap, rates, width: w, height: h).grid
        .text
      #expect(text.unicodeScalars.allSatisfy { $0.isASCII }, "\(pane) \(w)x\(h)")
    }
  }

  @Test func movingTheSelectionWalksTheQueues() throws {
    let (snap, rates) = try Fixtures.fullV2()
    var s = DashboardState(pane: .virtio)
    let f = frame(s, snap, rates)
    s = reduce(s, .sync(f.layout)).0
    #expect(s.current.selectedID == 0)
    s = reduce(s, .move(1)).0
    #expect(s.current.selectedID == 1)
  }

  @Test func deviceSideIndicesNeedQMP() throws {
    var (snap, rates) = try Fixtures.fullV2()
    let with = frame(DashboardState(pane: .virtio), snap, rates).grid.text
    #expect(with.contains("13582/13568 13580/13568"), "driver and device indices side by side")
    snap.virtio = nil
    let without = frame(DashboardState(pane: .virtio), snap, rates).grid.text
    #expect(without.contains("no QMP view"))
    #expect(!without.contains("13580/13568"))
  }

  @Test func aFailedWorkloadCheckIsLoud() throws {
    var (snap, rates) = try Fixtures.fullV2()
    snap.workload?.checkFailures = 3
    let f = frame(DashboardState(), snap, rates, width: 80, height: 24)
    #expect(f.grid.text.components(separatedBy: "\n")[0].contains("CHECK FAILED 3"))
    snap.workload = nil
    #expect(!frame(DashboardState(), snap, rates).grid.text.contains("check"))
  }

  @Test func timersNameTheirOwners() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let text = frame(DashboardState(pane: .timers), snap, rates).grid.text
    #expect(text.contains("kernel 800µs, timerd 12.0ms, main 250ms"))
    #expect(text.contains("worst lateness 2.30ms on cpu2"))
  }

  @Test func aFailedChurnCheckAndAllocFailuresShow() throws {
    var (snap, rates) = try Fixtures.fullV2()
    snap.allocator?.churnFailures = 2
    let text = frame(DashboardState(pane: .allocator), snap, rates).grid.text
    #expect(text.contains("CHURN CHECK FAILED 2/12000"))
    #expect(text.contains("lock-free"))
  }
}
