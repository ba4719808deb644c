import Foundation
import InspectABI
import Testing

@testable import Inspector

/// A flat guest-memory image the test writes like the guest's trace (or profile) writer would:
/// a root whose table slot `table` lists one ring per lcpu, records of `recordStride` bytes.
final class RingImage: GuestMemory {
  let kind = MemorySourceKind.sharedRAM
  let isLive: Bool
  var bytes: [UInt8]
  /// Called once, right after the next head read (a writer running during the copy).
  var duringCopy: (() -> Void)?
  static let root: UInt64 = 0x1000
  static let rings: UInt64 = 0x2000
  static let records: UInt64 = 0x4000
  /// Bytes per record.
  let recordStride: Int

  init(
    lcpus: Int, capacity: Int, live: Bool = true, table: UInt32 = SMPTOP_TABLE_TRACE.rawValue,
    recordStride: Int = 64, profHz: UInt64 = 0
  ) {
    isLive = live
    self.recordStride = recordStride
    bytes = [UInt8](repeating: 0, count: 0x4000 + lcpus * capacity * recordStride + 0x1000)
    var root = Images.root(lcpus: lcpus)
    root.table_count = table + 1
    root.trace_control = TraceClasses.all.rawValue
    root.prof_hz = profHz
    withUnsafeMutableBytes(of: &root.tables) { raw in
      var entry = smptop_table()
      entry.addr = Self.rings
      entry.count = UInt32(lcpus)
      entry.stride = UInt32(MemoryLayout<smptop_trace_ring>.stride)
      raw.storeBytes(
        of: entry, toByteOffset: Int(table) * MemoryLayout<smptop_table>.stride,
        as: smptop_table.self)
    }
    put(Self.root, Images.bytes(root))
    for i in 0..<lcpus {
      var ring = smptop_trace_ring()
      ring.lcpu = UInt32(i)
      ring.capacity = UInt32(capacity)
      ring.records = Self.records + UInt64(i * capacity * recordStride)
      ring.stride = UInt64(recordStride)
      putRing(i, ring)
    }
  }

  func put(_ address: UInt64, _ data: [UInt8]) {
    bytes.replaceSubrange(Int(address)..<Int(address) + data.count, with: data)
  }

  func ring(_ i: Int) -> smptop_trace_ring {
    bytes.withUnsafeBytes {
      $0.loadUnaligned(fromByteOffset: Int(Self.rings) + i * 32, as: smptop_trace_ring.self)
    }
  }

  func putRing(_ i: Int, _ ring: smptop_trace_ring) { put(Self.rings + UInt64(i * 32), Images.bytes(ring)) }

  /// Appends one record to lcpu `i`'s ring, as Trace.emit does.
  func emit(
    _ i: Int, kind: TraceKind, tsc: UInt64, object: UInt64 = 0x5000, arg: UInt64 = 0, arg2: UInt64 = 0
  ) {
    var ring = ring(i)
    let position = ring.head
    var record = smptop_trace_record()
    record.seq = position + 1
    record.tsc = tsc
    record.kind = kind.rawValue
    record.lcpu = UInt32(i)
    record.object = object
    record.arg = arg
    record.arg2 = arg2
    put(ring.records + (position % UInt64(ring.capacity)) * 64, Images.bytes(record))
    ring.head = position + 1
    putRing(i, ring)
  }

  /// Appends one stack sample to lcpu `i`'s ring (records of smptop_prof_sample), as
  /// Profile.sample does.
  func sample(
    _ i: Int, tsc: UInt64, rip: UInt64, frames: [UInt64], idle: Bool = false, thread: UInt64 = 1,
    periods: UInt64 = 1, unseen: Bool = false
  ) {
    var ring = ring(i)
    let position = ring.head
    var record = smptop_prof_sample()
    record.seq = position + 1
    record.tsc = tsc
    record.thread = thread
    record.periods = periods
    record.flags =
      (idle ? UInt16(SMPTOP_PROF_IDLE.rawValue) : 0) | (unseen ? UInt16(SMPTOP_PROF_UNSEEN.rawValue) : 0)
    record.depth = UInt16(frames.count)
    record.lcpu = UInt32(i)
    record.rip = rip
    withUnsafeMutableBytes(of: &record.frames) { raw in
      for (k, f) in frames.enumerated() { raw.storeBytes(of: f, toByteOffset: k * 8, as: UInt64.self) }
    }
    put(ring.records + (position % UInt64(ring.capacity)) * UInt64(recordStride), Images.bytes(record))
    ring.head = position + 1
    putRing(i, ring)
  }

  func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    ranges.map { r in
      guard r.count >= 0, let end = r.end, end <= UInt64(bytes.count) else {
        return .failure(GuestMemoryError(.outOfRange, r, "outside the image"))
      }
      return .success(Array(bytes[Int(r.address)..<Int(end)]))
    }
  }

  func words(_ addresses: [UInt64]) -> [UInt64?] {
    let out: [UInt64?] = addresses.map { a in
      guard a + 8 <= UInt64(bytes.count) else { return nil }
      return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Int(a), as: UInt64.self) }
    }
    if let hook = duringCopy {
      duringCopy = nil
      hook()
    }
    return out
  }
}

@Suite struct TraceDrainTests {
  @Test func drainsNewRecordsInOrderAndCountsNothingLost() {
    let image = RingImage(lcpus: 2, capacity: 8)
    var drain = TraceDrain(rootAddress: RingImage.root)
    let first = drain.drain(image)
    #expect(first.events.isEmpty && first.problems.isEmpty)
    #expect(first.enabled == .all)
    for t in 0..<5 { image.emit(0, kind: .lockAcquired, tsc: UInt64(100 + t), arg2: UInt64(t % 2)) }
    image.emit(1, kind: .irqEnter, tsc: 300, object: 0x40)
    let batch = drain.drain(image)
    #expect(batch.problems.isEmpty)
    #expect(batch.totalLost == 0)
    #expect(batch.events.filter { $0.ring == 0 }.map(\.tsc) == [100, 101, 102, 103, 104])
    #expect(batch.events.filter { $0.ring == 0 }.map(\.position) == [0, 1, 2, 3, 4])
    #expect(batch.events.filter(\.contended).count == 2)
    #expect(batch.events.first { $0.ring == 1 }?.kind == .irqEnter)
    #expect(drain.drain(image).events.isEmpty, "nothing new, nothing returned")
  }

  @Test func overwrittenRecordsAreCountedAsLostNotDecoded() {
    let image = RingImage(lcpus: 1, capacity: 8)
    var drain = TraceDrain(rootAddress: RingImage.root)
    _ = drain.drain(image)
    for t in 0..<20 { image.emit(0, kind: .lockReleased, tsc: UInt64(t)) }
    let batch = drain.drain(image)
    // 20 written, 8 slots: the 12 oldest are gone, and live the slot being rewritten next is
    // not trusted either.
    #expect(batch.totalLost == 13)
    #expect(batch.events.map(\.tsc) == Array(13..<20).map(UInt64.init))
    #expect(drain.totalLost == 13)
    // A frozen image (no writer) keeps all 8.
    let frozen = RingImage(lcpus: 1, capacity: 8, live: false)
    var d2 = TraceDrain(rootAddress: RingImage.root)
    _ = d2.drain(frozen)
    for t in 0..<20 { frozen.emit(0, kind: .lockReleased, tsc: UInt64(t)) }
    let b2 = d2.drain(frozen)
    #expect(b2.totalLost == 12)
    #expect(b2.events.map(\.tsc) == Array(12..<20).map(UInt64.init))
  }

  @Test func aWriterLappingTheReaderDuringTheCopyLosesRecordsInsteadOfTearingThem() {
    let image = RingImage(lcpus: 1, capacity: 8)
    var drain = TraceDrain(rootAddress: RingImage.root)
    _ = drain.drain(image)
    for t in 0..<6 { image.emit(0, kind: .lockAcquired, tsc: UInt64(t)) }
    // While the reader copies, the guest writes 5 more: positions 0...3 are rewritten.
    image.duringCopy = {
      image.duringCopy = nil
      for t in 6..<11 { image.emit(0, kind: .lockAcquired, tsc: UInt64(t)) }
    }
    let batch = drain.drain(image)
    #expect(batch.problems.isEmpty, "\(batch.problems)")
    #expect(batch.events.allSatisfy { $0.tsc == $0.position }, "no rewritten slot decoded as an old position")
    #expect(UInt64(batch.events.count) + batch.totalLost == 6)
    let rest = drain.drain(image)
    #expect(rest.events.map(\.tsc) == [6, 7, 8, 9, 10])
  }

  @Test func tornRecordsAndGarbageHeadsAreReportedNeverDecoded() {
    let image = RingImage(lcpus: 1, capacity: 8, live: false)
    var drain = TraceDrain(rootAddress: RingImage.root)
    _ = drain.drain(image)
    for t in 0..<4 { image.emit(0, kind: .lockAcquired, tsc: UInt64(t)) }
    // Record 2's seq says it is being written (0): torn.
    let ring = image.ring(0)
    image.put(ring.records + 2 * 64, [UInt8](repeating: 0, count: 8))
    let batch = drain.drain(image)
    #expect(batch.events.map(\.position) == [0, 1, 3])
    #expect(batch.totalLost == 1)
    #expect(batch.problems.count == 1 && batch.problems[0].message.contains("torn"), "\(batch.problems)")
    // An unknown kind with a matching seq is garbage as well.
    image.emit(0, kind: .lockAcquired, tsc: 9)
    image.put(ring.records + 4 * 64 + 16, [0xEE, 0xEE])
    let b2 = drain.drain(image)
    #expect(b2.events.isEmpty && b2.totalLost == 1 && !b2.problems.isEmpty)
    // The head going backwards is a garbage head.
    var r = image.ring(0)
    r.head = 2
    image.putRing(0, r)
    let b3 = drain.drain(image)
    #expect(b3.events.isEmpty)
    #expect(b3.problems.contains { $0.message.contains("backwards") }, "\(b3.problems)")
    // A head far beyond what was written: the slots do not match it, reported and not decoded.
    r.head = 0xDEAD_BEEF_0000
    image.putRing(0, r)
    let b4 = drain.drain(image)
    #expect(b4.events.isEmpty)
    #expect(!b4.problems.isEmpty)
    // Garbage ring geometry.
    r.capacity = 7
    image.putRing(0, r)
    #expect(drain.drain(image).problems.contains { $0.message.contains("power of two") })
    r.capacity = 8
    r.stride = 1 << 40
    image.putRing(0, r)
    #expect(drain.drain(image).problems.contains { $0.message.contains("stride") })
    r.stride = 64
    r.records = UInt64.max - 100
    image.putRing(0, r)
    #expect(!drain.drain(image).problems.isEmpty)
  }

  /// The fuzzer's find (Fuzz/TraceRing/corpus/regression-head-max): a head that jumps to
  /// 2^64 - 1 while the records are copied overflowed the reader's arithmetic.
  @Test func aHeadJumpingToTheTopOfTheRangeDuringTheCopyIsReportedNotACrash() {
    for live in [true, false] {
      let image = RingImage(lcpus: 1, capacity: 16, live: live)
      var drain = TraceDrain(rootAddress: RingImage.root)
      _ = drain.drain(image)
      for t in 0..<5 { image.emit(0, kind: .lockAcquired, tsc: UInt64(t)) }
      image.duringCopy = {
        var r = image.ring(0)
        r.head = .max
        image.putRing(0, r)
      }
      let batch = drain.drain(image)
      #expect(batch.events.isEmpty, "nothing copied under a head of 2^64 - 1 is safe to decode")
      #expect(batch.totalLost == 5)
      // The next drain sees the garbage head and does not crash either.
      _ = drain.drain(image)
    }
  }

  /// The fuzzer's find (Fuzz/TraceRing/corpus/regression-same-lcpu): two ring headers naming
  /// the same lcpu shared one read position, so one ring's events came out under the other's.
  @Test func aSecondRingClaimingTheSameLCPUIsReportedAndSkipped() {
    let image = RingImage(lcpus: 2, capacity: 16)
    var second = image.ring(1)
    second.lcpu = 0
    image.putRing(1, second)
    var drain = TraceDrain(rootAddress: RingImage.root)
    _ = drain.drain(image)
    for t in 0..<3 { image.emit(0, kind: .lockAcquired, tsc: UInt64(t)) }
    for t in 0..<9 { image.emit(1, kind: .lockReleased, tsc: UInt64(100 + t)) }
    let batch = drain.drain(image)
    #expect(batch.events.map(\.position) == [0, 1, 2], "only the first ring of lcpu 0 is read")
    #expect(batch.events.allSatisfy { $0.kind == .lockAcquired })
    #expect(batch.problems.contains { $0.message.contains("claims an lcpu") }, "\(batch.problems)")
  }

  @Test func randomRingBytesNeverCrashTheReader() {
    var generator = SystemRandomNumberGenerator()
    for round in 0..<300 {
      let image = RingImage(lcpus: 2, capacity: 16, live: round % 2 == 0)
      var drain = TraceDrain(rootAddress: RingImage.root, startAtOldest: round % 3 == 0)
      _ = drain.drain(image)
      for t in 0..<Int.random(in: 0..<40, using: &generator) {
        image.emit(t % 2, kind: TraceKind.allCases.randomElement(using: &generator)!, tsc: UInt64(t))
      }
      // Scribble over headers and records.
      let from = Int(RingImage.rings)
      for _ in 0..<Int.random(in: 1..<64, using: &generator) {
        let at = Int.random(in: from..<image.bytes.count, using: &generator)
        image.bytes[at] = UInt8.random(in: 0...255, using: &generator)
      }
      let batch = drain.drain(image)
      for e in batch.events { #expect(TraceKind(rawValue: e.kind.rawValue) != nil) }
      _ = drain.drain(image)
    }
  }
}
