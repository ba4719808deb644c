import InspectABI
import Testing

@testable import Inspector

/// The live engine reads the dynamic lock list in its batch, in the order it saw last time:
/// a list that grows, shrinks, changes a record or turns into a loop between snapshots must
/// still read exactly as the guest's memory says.
@Suite struct DynamicLockListTests {
  static let base: UInt64 = 0x40_0000

  /// Address of dynamic lock `i`.
  static func address(_ i: Int) -> UInt64 { base + UInt64(i) * 0x1000 }

  /// A live image: the root (two lcpus) and dynamic locks linked in `order`, `count` claimed.
  static func image(order: [Int], count: Int? = nil, acquisitions: [Int: UInt64] = [:], loopTo: Int? = nil)
    -> TornMemory
  {
    var root = Images.root(lcpus: 2)
    root.dynamic_locks = order.first.map(address) ?? 0
    root.dynamic_lock_count = UInt64(count ?? order.count)
    var image: [UInt64: [UInt8]] = [
      Images.rootAddress: Images.bytes(root), Images.tableAddress: Images.tableBytes(Images.lcpus(2)),
    ]
    for (position, i) in order.enumerated() {
      var lock = smptop_lock()
      V2RecordTests.named(&lock.name, "dyn-\(i)")
      lock.kind = UInt32(SMPTOP_LOCK_SPIN.rawValue)
      lock.flags = UInt32(SMPTOP_LOCKF_DYNAMIC.rawValue)
      lock.holder_lcpu = SMPTOP_NO_LCPU
      lock.address = 0xD000 + UInt64(i)
      lock.acquisitions = acquisitions[i] ?? 0
      let last = position == order.count - 1
      lock.next = last ? (loopTo.map(address) ?? 0) : address(order[position + 1])
      image[address(i)] = Images.bytes(lock)
    }
    return TornMemory(image: image, tornAddress: 0, tornReads: 0)
  }

  @Test func aListThatGrowsShrinksAndChangesReadsAsTheImageSays() throws {
    let memory = Self.image(order: [1, 2, 3])
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    func names() throws -> [String] {
      let snap = try engine.snapshot()
      #expect(snap.locks.allSatisfy { $0.consistency == .consistent })
      return snap.locks.filter(\.dynamic).map(\.name)
    }
    // The first snapshot finds the list; the second reads it from the batch.
    #expect(try names() == ["dyn-1", "dyn-2", "dyn-3"])
    #expect(try names() == ["dyn-1", "dyn-2", "dyn-3"])
    // A lock created at the head.
    memory.image = Self.image(order: [0, 1, 2, 3]).image
    #expect(try names() == ["dyn-0", "dyn-1", "dyn-2", "dyn-3"])
    #expect(try names() == ["dyn-0", "dyn-1", "dyn-2", "dyn-3"])
    // One removed from the middle, and a counter changed: never the old bytes.
    memory.image = Self.image(order: [0, 1, 3], acquisitions: [3: 77]).image
    let snap = try engine.snapshot()
    #expect(snap.locks.filter(\.dynamic).map(\.name) == ["dyn-0", "dyn-1", "dyn-3"])
    #expect(snap.locks.first { $0.name == "dyn-3" }?.acquisitions == 77)
    #expect(try names() == ["dyn-0", "dyn-1", "dyn-3"])
    // Reordered.
    memory.image = Self.image(order: [3, 0, 1]).image
    #expect(try names() == ["dyn-3", "dyn-0", "dyn-1"])
    // Emptied.
    memory.image = Self.image(order: []).image
    #expect(try names() == [])
  }

  @Test func aLoopAfterTheKnownPrefixIsCutAndReported() throws {
    let memory = Self.image(order: [0, 1, 2])
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    _ = try engine.snapshot()
    #expect(try engine.snapshot().locks.filter(\.dynamic).count == 3)
    // The last lock now points back at the second; the count claims more than there are.
    memory.image = Self.image(order: [0, 1, 2], count: 10, loopTo: 1).image
    let snap = try engine.snapshot()
    #expect(snap.locks.filter(\.dynamic).map(\.name) == ["dyn-0", "dyn-1", "dyn-2"])
    #expect(snap.problems.contains { $0.hasPrefix("dynamic lock list loops at 0x") }, "\(snap.problems)")
    // Negative control: the same list without the loop reads without a problem.
    memory.image = Self.image(order: [0, 1, 2]).image
    let clean = try engine.snapshot()
    #expect(clean.problems.isEmpty, "\(clean.problems)")
    #expect(clean.locks.filter(\.dynamic).count == 3)
  }

  @Test func aTableClaimingMoreThanTheLimitIsRefusedWithAProblem() throws {
    var root = Images.root(lcpus: 2)
    V2RecordTests.setTable(&root, SMPTOP_TABLE_THREAD.rawValue, 0x50_0000, 4096, 64 * 1024)
    let memory = TornMemory(
      image: [
        Images.rootAddress: Images.bytes(root), Images.tableAddress: Images.tableBytes(Images.lcpus(2)),
      ], tornAddress: 0, tornReads: 0)
    let snap = try SnapshotEngine(memory: memory, rootAddress: Images.rootAddress).snapshot()
    #expect(snap.lcpus.count == 2)
    #expect(snap.threads.isEmpty)
    #expect(
      snap.problems.contains { $0.hasPrefix("thread table: 268435456 bytes claimed") }, "\(snap.problems)")
  }
}
