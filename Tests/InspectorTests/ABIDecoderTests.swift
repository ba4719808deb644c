import InspectABI
import Testing

@testable import Inspector

@Suite struct ABIDecoderTests {
  @Test func decodesRootAndEveryLCPU() throws {
    let memory = Images.memory(root: Images.root(lcpus: 4), lcpus: Images.lcpus(4))
    let snap = try SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot()
    let guest = try #require(snap.guest)
    #expect(guest.abiVersion == UInt32(SMPTOP_ABI_VERSION))
    #expect(guest.buildID == "deadbeef")
    #expect(guest.commandLine == "panic=2 quiet")
    #expect(guest.lcpusOnline == 4)
    #expect(snap.lcpus.map(\.index) == [0, 1, 2, 3])
    #expect(snap.lcpus.map(\.state) == [.idle, .busy, .idle, .busy])
    #expect(snap.lcpus[1].stateLabel == "BUSY 1")
    #expect(snap.lcpus.map(\.irqTimer) == [100, 101, 102, 103])
    #expect(snap.lcpus.allSatisfy { $0.consistency == .consistent })
    #expect(snap.problems.isEmpty)
    #expect(snap.uptimeSeconds == 1.0)
  }

  @Test func aFrozenImageMarksARecordCaughtMidUpdate() throws {
    // A stopped VM or a recording cannot be re-read: an odd sequence word is marked at once.
    var records = Images.lcpus(3)
    records[1].seq = 7
    let memory = Images.memory(root: Images.root(lcpus: 3), lcpus: records)
    let snap = try SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot()
    #expect(snap.lcpus.map(\.consistency) == [.consistent, .inconsistent(retries: 0), .consistent])
    #expect(snap.lcpus[1].irqTimer == 101, "the torn record's values are still shown")
  }

  @Test func decodesAPanicRecord() throws {
    var records = Images.lcpus(4)
    records[2].state = UInt32(SMPTOP_LCPU_HALTED.rawValue)
    records[2].error_code = 15
    records[2].panic.seq = 2
    records[2].panic.vector = 14
    records[2].panic.cr2 = 0xdead_0000
    records[2].panic.frames = 3
    withUnsafeMutableBytes(of: &records[2].panic.backtrace) { raw in
      for (i, a) in [0x10_1000, 0x10_2000, 0x10_3000].enumerated() {
        raw.storeBytes(of: UInt64(a), toByteOffset: i * 8, as: UInt64.self)
      }
    }
    let memory = Images.memory(root: Images.root(lcpus: 4), lcpus: records)
    let snap = try SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot()
    let panic = try #require(snap.lcpus[2].panic)
    #expect(panic.vectorName == "#PF")
    #expect(panic.backtrace == [0x10_1000, 0x10_2000, 0x10_3000])
    #expect(snap.lcpus[2].stateLabel == "HALTED #PF")
    #expect(snap.lcpus[0].panic == nil)
  }

  @Test func refusesUnknownMagicAndVersion() throws {
    var root = Images.root(lcpus: 1)
    root.version = 99
    #expect(throws: ABIError.self) {
      try SnapshotEngine(
        memory: Images.memory(root: root, lcpus: Images.lcpus(1)), rootAddress: Images.rootAddress
      )
      .snapshot()
    }
    do {
      _ = try SnapshotEngine(
        memory: Images.memory(root: root, lcpus: Images.lcpus(1)), rootAddress: Images.rootAddress
      ).snapshot()
    } catch {
      #expect(error.code == .unsupportedVersion(found: 99))
      #expect(error.message.contains("version 99"))
    }
    root = Images.root(lcpus: 1)
    root.magic = 0
    do {
      _ = try SnapshotEngine(
        memory: Images.memory(root: root, lcpus: Images.lcpus(1)), rootAddress: Images.rootAddress
      ).snapshot()
      Issue.record("an unpublished root must throw")
    } catch {
      #expect(error.code == .notYetPublished)
    }
    root.magic = 0x1234
    do {
      _ = try SnapshotEngine(
        memory: Images.memory(root: root, lcpus: Images.lcpus(1)), rootAddress: Images.rootAddress
      ).snapshot()
      Issue.record("a foreign magic must throw")
    } catch {
      #expect(error.code == .badMagic(found: 0x1234))
    }
  }

  @Test func hostileTableShapesBecomeProblemsNotCrashes() throws {
    for (count, stride) in [(1_000_000_000, 600), (4, 0), (4, 1 << 30), (0, 600)] {
      var root = Images.root(lcpus: 4)
      withUnsafeMutableBytes(of: &root.tables) { raw in
        var table = smptop_table()
        table.addr = Images.tableAddress
        table.count = UInt32(truncatingIfNeeded: count)
        table.stride = UInt32(truncatingIfNeeded: stride)
        raw.storeBytes(of: table, toByteOffset: 0, as: smptop_table.self)
      }
      let snap = try SnapshotEngine(
        memory: Images.memory(root: root, lcpus: Images.lcpus(4)), rootAddress: Images.rootAddress
      ).snapshot()
      if count == 0 {
        #expect(snap.lcpus.isEmpty)
      } else {
        #expect(snap.lcpus.isEmpty || snap.lcpus.allSatisfy { !$0.consistency.isConsistent })
        #expect(!snap.problems.isEmpty, "count \(count) stride \(stride) must be reported")
      }
    }
  }

  @Test func tableOutsideMemoryIsMarkedUnreadable() throws {
    var root = Images.root(lcpus: 2)
    withUnsafeMutableBytes(of: &root.tables) { raw in
      var table = smptop_table()
      table.addr = 0x7777_0000
      table.count = 2
      table.stride = UInt32(MemoryLayout<smptop_lcpu>.stride)
      raw.storeBytes(of: table, toByteOffset: 0, as: smptop_table.self)
    }
    let snap = try SnapshotEngine(
      memory: Images.memory(root: root, lcpus: Images.lcpus(2)), rootAddress: Images.rootAddress
    ).snapshot()
    #expect(snap.lcpus.count == 2)
    #expect(snap.lcpus.allSatisfy { if case .unreadable = $0.consistency { true } else { false } })
    #expect(snap.problems.contains { $0.contains("0x77770000") })
  }

  @Test func liveReadRetriesATornRecordThenAcceptsIt() throws {
    let records = Images.lcpus(4)
    let stride = UInt64(MemoryLayout<smptop_lcpu>.stride)
    let memory = TornMemory(
      image: [
        Images.rootAddress: Images.bytes(Images.root(lcpus: 4)),
        Images.tableAddress: Images.tableBytes(records),
      ], tornAddress: Images.tableAddress + 2 * stride, tornReads: 3)
    let snap = try SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot()
    #expect(snap.lcpus.allSatisfy { $0.consistency == .consistent })
    #expect(snap.lcpus[2].irqTimer == 102)
    #expect(memory.tornReads == 0)
  }

  @Test func liveReadGivesUpOnARecordThatStaysTorn() throws {
    let stride = UInt64(MemoryLayout<smptop_lcpu>.stride)
    let memory = TornMemory(
      image: [
        Images.rootAddress: Images.bytes(Images.root(lcpus: 4)),
        Images.tableAddress: Images.tableBytes(Images.lcpus(4)),
      ], tornAddress: Images.tableAddress + 1 * stride, tornReads: .max)
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    engine.retries = 5
    engine.patienceNanoseconds = 0
    let snap = try engine.snapshot()
    #expect(snap.lcpus[1].consistency == .inconsistent(retries: 5))
    #expect(snap.lcpus[0].consistency == .consistent)
    #expect(snap.lcpus[3].consistency == .consistent)
  }

  @Test func aRecordThatOutlastedThePatienceGetsOnlyQuickRetriesNextTime() throws {
    // E.g. an lcpu that halted in the middle of an update: its record stays torn for good.
    let stride = UInt64(MemoryLayout<smptop_lcpu>.stride)
    let memory = TornMemory(
      image: [
        Images.rootAddress: Images.bytes(Images.root(lcpus: 4)),
        Images.tableAddress: Images.tableBytes(Images.lcpus(4)),
      ], tornAddress: Images.tableAddress + 2 * stride, tornReads: .max)
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    engine.retries = 5
    engine.patienceNanoseconds = 20_000_000
    let first = try engine.snapshot()
    guard case .inconsistent(let patient) = first.lcpus[2].consistency else {
      Issue.record("a record torn for good came out \(first.lcpus[2].consistency)")
      return
    }
    #expect(patient > 5, "the first snapshot waits beyond the quick re-reads")
    #expect(try engine.snapshot().lcpus[2].consistency == .inconsistent(retries: 5))
    memory.tornReads = 0  // the writer finished
    #expect(try engine.snapshot().lcpus[2].consistency == .consistent)
  }

  @Test func liveReadWaitsOutAWriterThatStaysInsideItsWindowForAWhile() throws {
    // A vCPU descheduled by the host mid-update: torn for many more reads than the quick retries.
    let stride = UInt64(MemoryLayout<smptop_lcpu>.stride)
    let memory = TornMemory(
      image: [
        Images.rootAddress: Images.bytes(Images.root(lcpus: 4)),
        Images.tableAddress: Images.tableBytes(Images.lcpus(4)),
      ], tornAddress: Images.tableAddress + 1 * stride, tornReads: 60)
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    engine.retries = 5
    let snap = try engine.snapshot()
    #expect(snap.lcpus[1].consistency == .consistent)
    #expect(snap.lcpus[1].irqTimer == 101)
    #expect(memory.tornReads == 0)
  }

  @Test func garbageImagesNeverCrashTheDecoder() throws {
    var rng = SplitMix64(seed: 0x5eed)
    let good = Images.bytes(Images.root(lcpus: 4))
    // One random table region shared by every image: the roots vary, the tables they point into are garbage.
    let garbage = (0..<(64 * 1024)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let tableOffset = MemoryLayout<smptop_root>.offset(of: \smptop_root.tables) ?? 0
    var decoded = 0
    var withRecords = 0
    for round in 0..<100_000 {
      var root = good
      if round % 4 == 0 {
        // A wholly random root.
        for i in root.indices { root[i] = UInt8(truncatingIfNeeded: rng.next()) }
      } else {
        // A valid header with random bytes sprayed over the rest, tables pointing into garbage.
        for _ in 0..<Int(rng.next() % 24) {
          let at = 16 + Int(rng.next() % UInt64(root.count - 16))
          root[at] = UInt8(truncatingIfNeeded: rng.next())
        }
        var t = smptop_table()
        t.addr = Images.tableAddress + rng.next() % 4096
        t.count = UInt32(rng.next() % 80)
        t.stride = UInt32(ABIDecoder.lcpuSize) + UInt32(rng.next() % 3) * 8
        root.replaceSubrange(tableOffset..<tableOffset + 16, with: Images.bytes(t))
      }
      let memory = RecordedMemory(frames: [
        .init(timeNanoseconds: 0, ranges: [(Images.rootAddress, root), (Images.tableAddress, garbage)])
      ])
      if let snap = try? SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot() {
        decoded += 1
        if !snap.lcpus.isEmpty { withRecords += 1 }
        #expect(snap.lcpus.count <= ABIDecoder.maxRecords)
      }
    }
    #expect(decoded > 10_000, "the fuzz loop must get past the header check often")
    #expect(withRecords > 10_000, "the fuzz loop must exercise the record decoder, not only the header")
  }
}

/// A small deterministic generator for fuzz loops.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
