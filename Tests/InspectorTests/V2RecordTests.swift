import InspectABI
import Testing

@testable import Inspector

/// ABI v2 records decoded from synthetic images laid out by the C header.
@Suite struct V2RecordTests {
  static let lockTable: UInt64 = 0x30_0000
  static let threadTable: UInt64 = 0x31_0000
  static let dynamicBase: UInt64 = 0x32_0000
  static let timerTable: UInt64 = 0x33_0000
  static let workTable: UInt64 = 0x34_0000
  static let allocTable: UInt64 = 0x35_0000
  static let orderTable: UInt64 = 0x36_0000
  static let queueTable: UInt64 = 0x37_0000

  static func setTable(
    _ root: inout smptop_root, _ kind: UInt32, _ address: UInt64, _ count: Int, _ stride: Int
  ) {
    withUnsafeMutableBytes(of: &root.tables) { raw in
      var t = smptop_table()
      t.addr = address
      t.count = UInt32(count)
      t.stride = UInt32(stride)
      raw.storeBytes(
        of: t, toByteOffset: Int(kind) * MemoryLayout<smptop_table>.stride, as: smptop_table.self)
    }
    root.table_count = max(root.table_count, kind + 1)
  }

  static func named<T>(_ value: inout T, _ name: String) {
    withUnsafeMutableBytes(of: &value) { raw in
      for (i, b) in name.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
    }
  }

  /// Two threads in an ABBA cycle over locks A and B, a third waiting on A, one dynamic lock.
  static func deadlockImage(dynamicLoop: Bool = false) -> RecordedMemory {
    var root = Images.root(lcpus: 2)
    var a = smptop_lock()
    named(&a.name, "lock-A")
    a.kind = UInt32(SMPTOP_LOCK_MUTEX.rawValue)
    a.address = 0xA000
    a.holder_lcpu = 0
    a.holder_thread = 1
    a.acquisitions = 100
    a.contended = 25
    a.waiter_count = 2
    a.waiters.0 = smptop_lock_waiter(lcpu: 1, reserved: 0, thread: 2, since_tsc: 5)
    a.waiters.1 = smptop_lock_waiter(lcpu: 1, reserved: 0, thread: 3, since_tsc: 6)
    var b = smptop_lock()
    named(&b.name, "lock-B")
    b.kind = UInt32(SMPTOP_LOCK_SPIN.rawValue)
    b.address = 0xB000
    b.holder_lcpu = 1
    b.holder_thread = 2
    b.misuse_irq_unsafe = 3
    var threads = [smptop_thread(), smptop_thread(), smptop_thread(), smptop_thread()]
    for (i, spec) in [(1, "alpha", 0xB000), (2, "beta", 0xA000), (3, "gamma", 0xA000)].enumerated() {
      threads[i].id = UInt64(spec.0)
      named(&threads[i].name, spec.1)
      threads[i].state = UInt32(SMPTOP_THREAD_BLOCKED_LOCK.rawValue)
      threads[i].blocked_on = UInt64(spec.2)
    }  // threads[3] stays FREE and must be left out
    var d1 = smptop_lock()
    named(&d1.name, "dyn-1")
    d1.kind = UInt32(SMPTOP_LOCK_SEMAPHORE.rawValue)
    d1.flags = UInt32(SMPTOP_LOCKF_DYNAMIC.rawValue)
    d1.holder_lcpu = SMPTOP_NO_LCPU
    d1.address = 0xD000
    d1.next = dynamicBase + 0x1000
    var d2 = d1
    named(&d2.name, "dyn-2")
    d2.address = 0xD100
    d2.next = dynamicLoop ? dynamicBase : 0
    root.dynamic_locks = dynamicBase
    root.dynamic_lock_count = 2
    let lockSize = MemoryLayout<smptop_lock>.stride
    let threadSize = MemoryLayout<smptop_thread>.stride
    setTable(&root, SMPTOP_TABLE_LOCK.rawValue, lockTable, 2, lockSize)
    setTable(&root, SMPTOP_TABLE_THREAD.rawValue, threadTable, 4, threadSize)
    var tq = smptop_timerq()
    tq.lcpu = 1
    tq.pending = 2
    tq.fired = 77
    tq.timers.0 = smptop_timer_slot(deadline_tsc: 1000, owner_thread: 2)
    tq.timers.1 = smptop_timer_slot(deadline_tsc: 2000, owner_thread: 0)
    tq.late_hist.2 = 5
    setTable(&root, SMPTOP_TABLE_TIMERQ.rawValue, timerTable, 1, MemoryLayout<smptop_timerq>.stride)
    var work = smptop_workload()
    named(&work.scenario, "deadlock")
    work.checks = 4
    work.ops.0 = 10
    work.ops.1 = 20
    setTable(&root, SMPTOP_TABLE_WORKLOAD.rawValue, workTable, 1, MemoryLayout<smptop_workload>.stride)
    var alloc = smptop_alloc()
    alloc.mode = UInt32(SMPTOP_ALLOC_LOCKFREE.rawValue)
    alloc.pages_managed = 1024
    alloc.largest_free_order = UInt64.max
    var o0 = smptop_alloc_order()
    o0.order = 0
    o0.block_bytes = 4096
    o0.free_blocks = 3
    var o1 = smptop_alloc_order()
    o1.order = 1
    o1.block_bytes = 8192
    o1.used_blocks = 2
    setTable(&root, SMPTOP_TABLE_ALLOC.rawValue, allocTable, 1, MemoryLayout<smptop_alloc>.stride)
    setTable(&root, SMPTOP_TABLE_ALLOC_ORDER.rawValue, orderTable, 2, MemoryLayout<smptop_alloc_order>.stride)
    var q = smptop_virtq()
    q.role = UInt32(SMPTOP_VIRTQ_TX.rawValue)
    q.index = 1
    q.packets = 42
    setTable(&root, SMPTOP_TABLE_VIRTQ.rawValue, queueTable, 1, MemoryLayout<smptop_virtq>.stride)
    return RecordedMemory(frames: [
      .init(
        timeNanoseconds: 0,
        ranges: [
          (Images.rootAddress, Images.bytes(root)), (Images.tableAddress, Images.tableBytes(Images.lcpus(2))),
          (lockTable, Images.bytes(a) + Images.bytes(b)),
          (threadTable, threads.flatMap { Images.bytes($0) }),
          (dynamicBase, Images.bytes(d1)), (dynamicBase + 0x1000, Images.bytes(d2)),
          (timerTable, Images.bytes(tq)), (workTable, Images.bytes(work)), (allocTable, Images.bytes(alloc)),
          (orderTable, Images.bytes(o0) + Images.bytes(o1)), (queueTable, Images.bytes(q)),
        ])
    ])
  }

  @Test func decodesLocksThreadsAndTheirWaitForCycle() throws {
    let snap = try SnapshotEngine(memory: Self.deadlockImage(), rootAddress: Images.rootAddress).snapshot()
    #expect(snap.problems.isEmpty, "\(snap.problems)")
    #expect(snap.locks.map(\.name) == ["lock-A", "lock-B", "dyn-1", "dyn-2"])
    let a = snap.locks[0]
    #expect(a.kind == .mutex && a.holderThread == 1 && a.holderLCPU == 0)
    #expect(a.waiters.map(\.thread) == [2, 3])
    #expect(a.contendedPercent == 25)
    #expect(snap.locks[2].dynamic && snap.locks[2].holderLCPU == nil)
    #expect(snap.threads.map(\.name) == ["alpha", "beta", "gamma"])
    #expect(snap.misusedLocks.map(\.name) == ["lock-B"])
    let cycles = snap.waitCycles
    #expect(cycles.count == 1)
    #expect(Set(cycles[0].steps.map(\.thread)) == [1, 2])
    #expect(Set(cycles[0].steps.map(\.lock)) == ["lock-A", "lock-B"])
  }

  @Test func aWaiterListCountsOnlyWhereTheThreadsRecordAgrees() throws {
    var snap = try SnapshotEngine(memory: Self.deadlockImage(), rootAddress: Images.rootAddress).snapshot()
    // The same ABBA, told only by the locks' waiter lists (lock-A lists beta, lock-B alpha).
    for i in snap.threads.indices {
      snap.threads[i].blockedOn = 0
      snap.threads[i].state = .spinning
    }
    snap.locks[1].waiters = [LockRecord.Waiter(lcpu: 0, thread: 1, sinceTSC: 7)]
    #expect(snap.waitCycles.map { Set($0.steps.map(\.thread)) } == [[1, 2]])
    // alpha's own record says ready (read after the lock record, a hand-off done): no cycle.
    snap.threads[0].state = .ready
    #expect(snap.waitCycles.isEmpty)
    // A record caught mid-update says nothing either way: the waiter list counts again.
    snap.threads[0].consistency = .inconsistent(retries: 3)
    #expect(snap.waitCycles.count == 1)
  }

  @Test func decodesTimersWorkloadAllocatorAndVirtqueues() throws {
    let snap = try SnapshotEngine(memory: Self.deadlockImage(), rootAddress: Images.rootAddress).snapshot()
    let tq = try #require(snap.timerQueues.first)
    #expect(tq.fired == 77 && tq.timers.map(\.deadlineTSC) == [1000, 2000])
    #expect(tq.lateHistogram == [0, 0, 5, 0, 0, 0, 0, 0])
    #expect(snap.workload?.scenario == "deadlock" && snap.workload?.ops == [10, 20])
    let alloc = try #require(snap.allocator)
    #expect(alloc.mode == "lockfree" && alloc.largestFreeOrder == nil && alloc.orders.count == 2)
    #expect(alloc.orders[1].usedBlocks == 2)
    #expect(snap.virtqueues.first?.role == .tx && snap.virtqueues.first?.packets == 42)
  }

  @Test func aLoopingDynamicLockListIsCutAndReported() throws {
    let snap = try SnapshotEngine(
      memory: Self.deadlockImage(dynamicLoop: true), rootAddress: Images.rootAddress
    )
    .snapshot()
    // dynamic_lock_count (2) bounds the walk even though dyn-2 points back to dyn-1.
    #expect(snap.locks.filter(\.dynamic).count == 2)
  }

  @Test func lockRatesFromTwoSnapshots() throws {
    var a = try SnapshotEngine(memory: Self.deadlockImage(), rootAddress: Images.rootAddress).snapshot()
    var b = a
    a.timeNanoseconds = 1_000_000_000
    b.timeNanoseconds = 3_000_000_000
    b.locks[0].acquisitions += 200
    b.locks[0].contended += 50
    b.locks[0].waitTotalTSC += 5000
    let rates = try #require(SnapshotRates(from: a, to: b))
    let lock = try #require(rates.locks.first { $0.address == 0xA000 })
    #expect(lock.acquisitionsPerSecond == 100)
    #expect(lock.contendedPercent == 25)
    #expect(lock.meanWaitTSC == 100)
  }
}
