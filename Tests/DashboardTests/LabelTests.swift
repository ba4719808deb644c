import Dashboard
import Inspector
import Testing

/// Every label on the screen says what the number or row under it means: sort arrows, status messages,
/// costs, deadlines, bars and the target's name.
@Suite struct LabelTests {
  func frame(
    _ state: DashboardState, _ snapshot: Snapshot, _ rates: SnapshotRates?, effect: EffectResult? = nil,
    cost: SampleCost? = nil, target: TargetInfo = Fixtures.target, width: Int, height: Int
  ) -> Frame {
    var data = DashboardData(
      snapshot: snapshot, rates: rates, target: target, effect: effect, cost: cost)
    data.profile = ProfilePaneTests.data()
    let first = renderFrame(
      state: state, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
    let synced = reduce(state, .sync(first.layout)).0
    return renderFrame(state: synced, data: data, symbolize: Fixtures.symbolize, width: width, height: height)
  }

  func lines(_ f: Frame) -> [String] { f.grid.text.components(separatedBy: "\n") }

  /// The first table header line below the tab bar that carries a sort arrow.
  func sortedHeader(_ f: Frame) -> String? {
    lines(f).dropFirst(4).first { $0.contains("↑") || $0.contains("↓") }
  }

  /// "190k" → 190000, "1.2M" → 1200000, "13" → 13; nil for "-", "—" and other text.
  func number(_ text: Substring) -> Double? {
    var t = String(text)
    var scale = 1.0
    if let last = t.last, let s = ["k": 1e3, "M": 1e6, "G": 1e9][String(last)] {
      scale = s
      t.removeLast()
    }
    return Double(t).map { $0 * scale }
  }

  @Test(arguments: Pane.allCases) func theArrowMarksTheSortKeysOwnColumnWithItsWholeTitle(pane: Pane) throws {
    let (snap, rates) = try pane == .lcpus ? Fixtures.fourLCPUs() : Fixtures.fullV2()
    for key in pane.sortKeys {
      for descending in [false, true] {
        var state = DashboardState(pane: pane)
        state.current.sortKey = key
        state.current.descending = descending
        let f = frame(state, snap, rates, width: 250, height: 50)
        let header = try #require(sortedHeader(f), "\(pane) sorted by \(key) shows an arrow")
        let arrow = descending ? "↓" : "↑"
        let title = key == .rip ? "RIP (last tick)" : key.rawValue
        #expect(
          header.contains(arrow + title + " ") || header.contains(title + arrow)
            || header.hasSuffix(arrow + title),
          "\(pane): the arrow sits on \(title) in full: \(header)")
        #expect(header.filter { $0 == "↑" || $0 == "↓" }.count == 1)
        #expect(f.layout.hiddenSortKey == nil)
        #expect(!lines(f)[3].contains("sorted by"), "a visible key column needs no note")
      }
    }
  }

  @Test func locksAreSortedByTheColumnUnderTheArrowAtEightyColumns() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let f = frame(DashboardState(pane: .locks), snap, rates, width: 80, height: 24)
    let all = lines(f)
    let headerIndex = try #require(all.firstIndex { $0.contains("↓") })
    let header = all[headerIndex]
    let arrow = try #require(header.range(of: "↓"))
    let title = header[arrow.upperBound...].prefix { $0 != " " }
    #expect(title == "CONT/s", "the default lock sort is contended acquisitions per second")
    // The column's cells end where its title ends (right-aligned numbers).
    let end = header.distance(from: header.startIndex, to: arrow.upperBound) + title.count
    var values: [Double] = []
    for line in all[(headerIndex + 1)...] {
      guard line.count >= end, !line.hasPrefix("──") else { break }
      let cell = line.prefix(end).split(separator: " ").last ?? ""
      if let v = number(cell) { values.append(v) }
    }
    #expect(values.count >= 4)
    #expect(values == values.sorted(by: >), "rows are in the order the arrow promises: \(values)")
  }

  @Test func aSortKeyWhoseColumnIsHiddenIsNamedInTheTabBar() throws {
    let (snap, rates) = try Fixtures.fullV2()
    var state = DashboardState(pane: .locks)
    state.current.sortKey = .hold
    state.current.descending = true
    let narrow = frame(state, snap, rates, width: 80, height: 24)
    #expect(narrow.layout.hiddenSortKey == .hold)
    #expect(lines(narrow)[3].hasSuffix("sorted by HOLD ↓"))
    #expect(sortedHeader(narrow) == nil, "no arrow on a column that is not the key")
    let wide = frame(state, snap, rates, width: 200, height: 50)
    #expect(wide.layout.hiddenSortKey == nil)
    #expect(sortedHeader(wide)?.contains("↓HOLD") == true)
    // A status message has the tab bar's right end first; the note is back after the next key.
    let busy = reduce(state, .status("refresh every 2s")).0
    #expect(lines(frame(busy, snap, rates, width: 80, height: 24))[3].hasSuffix("refresh every 2s"))
  }

  @Test func genericModeOffersOnlyTheColumnsItShows() throws {
    let snap = try Fixtures.generic()
    var s = DashboardState()
    let layout = frame(s, snap, nil, target: Fixtures.genericTarget, width: 80, height: 24).layout
    #expect(layout.generic)
    s = reduce(s, .sync(layout)).0
    var seen: [SortKey] = []
    for _ in 0..<3 {
      s = reduce(s, .sortNext).0
      seen.append(s.current.sortKey)
      let f = frame(s, snap, nil, target: Fixtures.genericTarget, width: 80, height: 24)
      #expect(f.layout.hiddenSortKey == nil, "sorted by \(s.current.sortKey), a column the screen shows")
      s = reduce(s, .sync(f.layout)).0
    }
    #expect(seen == [.state, .rip, .index])
  }

  @Test func aProgressMessageGivesWayToTheEffectsResult() {
    var s = reduce(DashboardState(), .sync(ViewLayout(rowIDs: [0, 1], pageRows: 4))).0
    s = reduce(s, .togglePause).0
    #expect(s.statusMessage == "pausing the VM...")
    s = reduce(s, .effectFinished(EffectResult(sequence: 1, message: "VM paused"))).0
    #expect(s.statusMessage == "VM paused")
    s = reduce(s, .step).0
    #expect(s.statusMessage == "stepping lcpu 0...")
    s = reduce(s, .effectFinished(EffectResult(sequence: 1, message: "VM paused"))).0
    #expect(s.statusMessage == "stepping lcpu 0...", "a result already shown is not shown again")
    s = reduce(s, .effectFinished(EffectResult(sequence: 2, message: "stepped lcpu 0 to 0x101420"))).0
    #expect(s.statusMessage == "stepped lcpu 0 to 0x101420")
    s = reduce(s, .move(1)).0
    #expect(s.statusMessage == nil)
  }

  @Test func aFinishedStepIsAStatusNotAProblem() throws {
    let (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    var clean = snap
    clean.problems = []
    var s = reduce(DashboardState(), .step).0
    s = reduce(s, .effectFinished(EffectResult(sequence: 1, message: "stepped lcpu 0 to 0x101420"))).0
    let f = frame(s, clean, nil, width: 80, height: 24)
    #expect(lines(f)[3].hasSuffix("stepped lcpu 0 to 0x101420"))
    #expect(lines(f)[1].contains("no problems"))
  }

  @Test func theHeaderSaysWhatItsTimesCover() throws {
    let (live, rates) = try Fixtures.fourLCPUs()
    let plain = lines(frame(DashboardState(), live, rates, width: 120, height: 24))[1]
    #expect(plain.contains("read 41µs"))
    #expect(!plain.contains("QMP") && !plain.contains("cost"))
    let withQMP = lines(
      frame(
        DashboardState(), live, rates,
        cost: SampleCost(qmpNanoseconds: 3_900_000, detailNanoseconds: 1_200_000),
        width: 140, height: 24))[1]
    #expect(withQMP.contains("read 41µs │ QMP 3.90ms │ detail 1.20ms"))

    let (stopped, _) = try Fixtures.fourLCPUs(stopped: true)
    #expect(lines(frame(DashboardState(), stopped, nil, width: 120, height: 24))[1].contains("pause 1.25ms"))
    var held = stopped
    held.pauseNanoseconds = 0
    let heldLine = lines(frame(DashboardState(), held, nil, width: 120, height: 24))[1]
    #expect(heldLine.contains("no pause: VM already stopped"))
    #expect(!heldLine.contains("0ns"))
  }

  @Test(arguments: [Pane.lcpus, .timers]) func aPassedDeadlineReadsLate(pane: Pane) throws {
    let (snap, rates) = try pane == .lcpus ? Fixtures.fourLCPUs() : Fixtures.fullV2()
    for (w, h) in [(80, 24), (200, 50)] {
      let f = frame(DashboardState(pane: pane), snap, rates, width: w, height: h)
      let text = f.grid.text
      #expect(text.contains("late 150µs"), "\(pane) at \(w)x\(h)")
      #expect(!text.contains(" -150µs"), "no bare minus sign on a deadline")
      let y = try #require(lines(f).firstIndex { $0.contains("late 150µs") })
      let x = try #require(lines(f)[y].range(of: "late 150µs")).lowerBound
      let column = lines(f)[y].distance(from: lines(f)[y].startIndex, to: x)
      #expect(f.grid[column, y].style == .warn || f.grid[column, y].style == .selected)
    }
  }

  @Test func theCompactSummarySaysLateToo() throws {
    // 64 lcpus in 14 rows: meters and one summary line about the selected lcpu.
    var (snap, rates) = try Fixtures.manyLCPUs(64)
    let now = snap.lcpus.map(\.lastTickTSC).max() ?? 0
    let perMs = snap.guest?.tscPerMs ?? 1
    snap.lcpus[0].nextDeadlineTSC = now - 3 * perMs
    let text = frame(DashboardState(), snap, rates, width: 80, height: 20).grid.text
    #expect(text.contains("late 3.00ms"))
  }

  @Test(arguments: Pane.allCases) func noBarRunsIntoItsNumber(pane: Pane) throws {
    let (snap, rates) = try pane == .lcpus ? Fixtures.manyLCPUs(64) : Fixtures.fullV2()
    let bar: Set<Character> = ["█", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
    for (w, h) in [(80, 24), (120, 40), (200, 50)] {
      let text = frame(DashboardState(pane: pane), snap, rates, width: w, height: h).grid.text
      for line in text.split(separator: "\n") {
        for (a, b) in zip(line, line.dropFirst()) where bar.contains(a) {
          #expect(!b.isLetter && !b.isNumber, "\(pane) at \(w)x\(h): \(line)")
        }
      }
    }
  }

  @Test func aVMTheGdbstubStoppedIsNotCalledDebug() throws {
    var (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    snap.runState = "debug"
    let header = lines(frame(DashboardState(), snap, nil, width: 120, height: 24))
    #expect(header[0].contains("│ stopped (gdbstub) │"))
    #expect(!header[0].contains("debug"))
    #expect(header[1].hasPrefix("source gdbstub, VM stopped │"))
  }

  @Test func theSortMessageAndTheHiddenColumnNoteUseTheSameWords() {
    var s = DashboardState(pane: .locks)
    for _ in 0..<4 { s = reduce(s, .sortNext).0 }
    #expect(s.current.sortKey == .hold)
    #expect(s.statusMessage == "sorted by HOLD ↓")
    s.charset = .ascii
    #expect(reduce(s, .invertSort).0.statusMessage == "sorted by HOLD ^")
  }

  @Test func aSemaphoreHasNoHoldTime() throws {
    var (snap, rates) = try Fixtures.fullV2()
    var sem = try Fixtures.lock("work.items", .semaphore, address: 0x30_0800, acquisitions: 8_000)
    sem.holdMaxTSC = 0  // semaphores have no holder, so the guest never writes a hold time
    snap.locks.append(sem)
    let f = frame(DashboardState(pane: .locks), snap, rates, width: 200, height: 50)
    let header = try #require(lines(f).first { $0.hasPrefix("NAME") })
    let row = try #require(lines(f).first { $0.hasPrefix(" work.items") })
    let holdEnd = try #require(header.range(of: "  HOLD ")).upperBound
    let cell = row.prefix(header.distance(from: header.startIndex, to: holdEnd) - 1).split(separator: " ")
      .last
    #expect(cell == "-", "\(header)\n\(row)")
    #expect(row.split(separator: " ").dropFirst().first == "sem", "its kind fits the KIND column uncut")
  }

  @Test func qemusStatusWordsAreShortAndAHealthyDeviceIsNotAWarning() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let f = frame(DashboardState(pane: .virtio), snap, rates, width: 200, height: 50)
    let y = try #require(lines(f).firstIndex { $0.hasPrefix("net0 │") })
    #expect(lines(f)[y].contains("qemu virtio-net driver-ok"))
    #expect(!lines(f)[y].contains("VIRTIO_CONFIG_S"))
    let x = lines(f)[y].distance(
      from: lines(f)[y].startIndex, to: try #require(lines(f)[y].range(of: "driver-ok")).lowerBound)
    #expect(f.grid[x, y].style == .dim)
  }

  @Test func aReceiveRingFullOfBuffersIsHealthyAFullTransmitRingIsNot() throws {
    var (snap, rates) = try Fixtures.fullV2()
    // The first row is the selected one (its own colour), so the rings under test come after it.
    snap.virtqueues = [
      try Fixtures.virtq(0, .ctrl, lcpu: 0, inFlight: 0, packets: 10),
      try Fixtures.virtq(1, .rx, lcpu: 0, inFlight: 256, packets: 10),
      try Fixtures.virtq(2, .tx, lcpu: 0, inFlight: 256, packets: 10),
      try Fixtures.virtq(3, .rx, lcpu: 1, inFlight: 0, packets: 10),
      try Fixtures.virtq(4, .tx, lcpu: 1, inFlight: 0, packets: 10),
    ]
    let f = frame(DashboardState(pane: .virtio), snap, rates, width: 200, height: 50)
    func barStyle(_ queue: String) throws -> Style {
      let y = try #require(lines(f).firstIndex { $0.hasPrefix(" " + queue + " ") })
      let x = lines(f)[y].distance(
        from: lines(f)[y].startIndex, to: try #require(lines(f)[y].firstIndex(of: "[")))
      return f.grid[x + 1, y].style
    }
    #expect(try barStyle("net0.1") == .meterBusy, "rx full of posted buffers")
    #expect(try barStyle("net0.2") == .error, "tx full: the sender stalls")
    #expect(try barStyle("net0.3") == .error, "rx without buffers drops what arrives")
    #expect(try barStyle("net0.4") == .meterIdle, "tx idle")
  }

  @Test func aStoppedVMsMetersSayStoppedNotDashes() throws {
    let (stopped, _) = try Fixtures.fourLCPUs(stopped: true)
    let text = frame(DashboardState(), stopped, nil, width: 120, height: 24).grid.text
    #expect(text.contains("Avg[") && text.contains("stopped]"))
    #expect(!text.contains("--]"), "no share because the VM stands still, not because it is unknown")
    let (live, _) = try Fixtures.fourLCPUs()
    let first = frame(DashboardState(), live, nil, width: 120, height: 24).grid.text
    #expect(first.contains("--]") && !first.contains("stopped]"), "a running VM before its second snapshot")
  }

  @Test func theHeaderNamesTheKernelFileNotTheBundledGuest() throws {
    let generic = frame(
      DashboardState(), try Fixtures.generic(), nil, target: Fixtures.genericTarget, width: 120, height: 24)
    #expect(lines(generic)[0].contains("kernel hello.elf"))
    #expect(!generic.grid.text.contains("bundled"))
    var anonymous = Fixtures.genericTarget
    anonymous.name = nil
    let none = frame(DashboardState(), try Fixtures.generic(), nil, target: anonymous, width: 120, height: 24)
    #expect(!lines(none)[0].contains("kernel"), "no kernel given, none named")
  }
}
