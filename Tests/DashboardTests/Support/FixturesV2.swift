import Dashboard
import Foundation
import Inspector

/// ABI v2 tables for view tests: contention, an ABBA deadlock, misuse, allocator orders, virtqueues, timers.
///
/// The v2 record types have no public initializer either, so each starts from a blank decoded from JSON.
extension Fixtures {
  static let ok = "{\"state\":\"consistent\"}"

  static func blankLock() throws -> LockRecord {
    try decode(
      LockRecord.self,
      """
      {"name":"","kind":"spin","flags":0,"address":0,"recordAddress":0,"dynamic":false,"stateWord":0,
       "readers":0,"acquireSite":0,"acquiredTSC":0,"acquisitions":0,"contended":0,"trylockFailures":0,
       "waitTotalTSC":0,"waitMaxTSC":0,"holdTotalTSC":0,"holdMaxTSC":0,"misuseIRQUnsafe":0,"misuseSleepInIRQ":0,
       "misuseRecursion":0,"misuseBadUnlock":0,"waiterCount":0,"pendingWriters":0,"waiters":[],"consistency":\(ok)}
      """)
  }

  static func lock(
    _ name: String, _ kind: LockKind, address: UInt64, acquisitions: UInt64 = 0, contended: UInt64 = 0,
    holderLCPU: UInt32? = nil, holderThread: UInt64? = nil, heldSinceMs: Double = 0,
    waiters: [LockRecord.Waiter] = []
  ) throws -> LockRecord {
    var l = try blankLock()
    l.name = name
    l.kind = kind
    l.address = address
    l.recordAddress = address + 0x1000
    l.acquisitions = acquisitions
    l.contended = contended
    l.waitTotalTSC = contended * 3_000
    l.waitMaxTSC = contended == 0 ? 0 : 900_000
    l.holdTotalTSC = acquisitions * 1_000
    l.holdMaxTSC = acquisitions == 0 ? 0 : 250_000
    l.holderLCPU = holderLCPU
    l.holderThread = holderThread
    if holderLCPU != nil || holderThread != nil {
      l.acquiredTSC = now - UInt64(heldSinceMs * 2_000_000)
      l.acquireSite = 0x10_5040
    }
    l.waiters = waiters
    l.waiterCount = UInt32(waiters.count)
    return l
  }

  static func lockRates(_ address: UInt64, acq: Double, cont: Double, meanWaitTSC: Double?) throws
    -> LockRates
  {
    try decode(
      LockRates.self,
      "{\"address\":\(address),\"acquisitionsPerSecond\":\(acq),\"contendedPerSecond\":\(cont)"
        + (acq > 0 ? ",\"contendedPercent\":\(min(100, 100 * cont / acq))" : "")
        + (meanWaitTSC.map { ",\"meanWaitTSC\":\($0)" } ?? "") + "}")
  }

  static func thread(
    _ id: UInt64, _ name: String, _ state: ThreadState, lcpu: UInt32, blockedOn: UInt64 = 0,
    wakeInMs: Double? = nil
  ) throws -> ThreadRecord {
    var t = try decode(
      ThreadRecord.self,
      """
      {"id":0,"name":"","state":"ready","lcpu":0,"blockedOn":0,"wakeTSC":0,"cpuTSC":0,"switches":0,"ops":0,
       "consistency":\(ok)}
      """)
    t.id = id
    t.name = name
    t.state = state
    t.lcpu = lcpu
    t.blockedOn = blockedOn
    t.wakeTSC = wakeInMs.map { now + UInt64($0 * 2_000_000) } ?? 0
    t.cpuTSC = id * 1_234_567_890
    t.switches = id * 1_000 + 17
    t.ops = id * 51_000
    return t
  }

  static func timerQueue(
    lcpu: UInt32, timers: [(inMs: Double, owner: UInt64)], fired: UInt64, lateMaxUs: Double
  )
    throws -> TimerQueueRecord
  {
    var q = try decode(
      TimerQueueRecord.self,
      """
      {"lcpu":0,"pending":0,"nextDeadlineTSC":0,"fired":0,"lateTotalTSC":0,"lateMaxTSC":0,
       "lateHistogram":[0,0,0,0,0,0,0,0],"timers":[],"consistency":\(ok)}
      """)
    q.lcpu = lcpu
    q.timers = try timers.map {
      var p = try decode(TimerQueueRecord.Pending.self, "{\"deadlineTSC\":0,\"ownerThread\":0}")
      p.deadlineTSC = UInt64(Int64(now) + Int64($0.inMs * 2_000_000))
      p.ownerThread = $0.owner
      return p
    }
    q.pending = UInt32(timers.count)
    q.nextDeadlineTSC = q.timers.map(\.deadlineTSC).min() ?? 0
    q.fired = fired
    q.lateMaxTSC = UInt64(lateMaxUs * 2_000)
    q.lateTotalTSC = fired * 2_000 * 3
    q.lateHistogram = [
      fired / 2, fired / 3, fired / 8, fired / 40, UInt64(lateMaxUs > 1000 ? 3 : 0), 0, 0, 0,
    ]
    return q
  }

  static func allocator() throws -> AllocatorRecord {
    var a = try decode(
      AllocatorRecord.self,
      """
      {"mode":"lockfree","base":16777216,"pageBytes":4096,"pagesManaged":0,"pagesFree":0,"churnChecks":0,
       "churnFailures":0,"startFreePages":0,"heapBytesInUse":0,"heapAllocs":0,"heapFrees":0,"lcpuAllocs":[],
       "lcpuFrees":[],"orders":[],"consistency":\(ok)}
      """)
    a.orders = try (0..<11).map { o in
      var r = try decode(
        AllocOrderRecord.self,
        """
        {"order":0,"blockBytes":0,"freeBlocks":0,"usedBlocks":0,"allocs":0,"frees":0,"splits":0,"merges":0,
         "failures":0,"casRetries":0}
        """)
      r.order = UInt64(o)
      r.blockBytes = 4096 << UInt64(o)
      r.freeBlocks = UInt64([12, 30, 7, 9, 4, 2, 3, 1, 0, 2, 5][o])
      r.usedBlocks = UInt64([310, 120, 64, 20, 8, 5, 1, 2, 1, 0, 0][o])
      r.allocs = UInt64(900_000 >> o)
      r.frees = r.allocs - r.usedBlocks
      r.splits = UInt64(40_000 >> o)
      r.merges = UInt64(39_000 >> o)
      r.failures = o == 8 ? 4 : 0
      r.casRetries = UInt64(7_000 >> o)
      return r
    }
    a.pagesManaged = a.orders.reduce(0) { $0 + ($1.freeBlocks + $1.usedBlocks) << $1.order }
    a.pagesFree = a.orders.reduce(0) { $0 + $1.freeBlocks << $1.order }
    a.largestFreeOrder = 10
    a.startFreePages = a.pagesManaged
    a.churnChecks = 12_000
    a.churnFailures = 0
    a.heapBytesInUse = 3_500_000
    a.heapAllocs = 81_000
    a.heapFrees = 79_500
    a.lcpuAllocs = [410_000, 390_000, 402_000, 12]
    a.lcpuFrees = [409_000, 389_000, 401_500, 10]
    return a
  }

  static func allocRates() throws -> [AllocOrderRates] {
    try (0..<11).map { o in
      try decode(
        AllocOrderRates.self,
        "{\"order\":\(o),\"allocsPerSecond\":\(Double(72_000 >> o)),\"freesPerSecond\":\(Double(71_500 >> o)),"
          + "\"failuresPerSecond\":\(o == 8 ? 2.0 : 0),\"casRetriesPerSecond\":\(Double(600 >> o))}")
    }
  }

  static func virtioDevice() throws -> VirtioDeviceRecord {
    var d = try decode(
      VirtioDeviceRecord.self,
      """
      {"name":"net0","pciBDF":24,"deviceID":4161,"features":0,"queuePairs":2,"queues":5,
       "mac":"52:54:00:12:34:56","linkUp":true,"msix":true,"firstQueue":0,"consistency":\(ok)}
      """)
    d.features = 1 << 0 | 1 << 5 | 1 << 16 | 1 << 17 | 1 << 22 | 1 << 29 | 1 << 32
    return d
  }

  static func virtq(_ index: UInt32, _ role: VirtqRole, lcpu: UInt32, inFlight: UInt32, packets: UInt64)
    throws
    -> VirtqRecord
  {
    var q = try decode(
      VirtqRecord.self,
      """
      {"device":0,"index":0,"role":"rx","lcpu":0,"size":256,"freeDescriptors":256,"availIndex":0,"usedIndex":0,
       "lastUsed":0,"notificationsOff":false,"packets":0,"bytes":0,"errors":0,"drops":0,"kicks":0,"interrupts":0,
       "polls":0,"descriptorTable":0,"availRing":0,"usedRing":0,"consistency":\(ok)}
      """)
    q.index = index
    q.role = role
    q.lcpu = lcpu
    q.size = role == .ctrl ? 64 : 256
    q.freeDescriptors = q.size - inFlight
    q.packets = packets
    q.bytes = packets * 1_400
    q.availIndex = UInt32(truncatingIfNeeded: packets + UInt64(inFlight)) & 0xffff
    q.usedIndex = UInt32(truncatingIfNeeded: packets) & 0xffff
    q.lastUsed = q.usedIndex
    q.kicks = role == .rx ? packets / 64 : packets / 4
    q.interrupts = packets / 32
    q.polls = packets / 8
    q.errors = index == 1 ? 3 : 0
    q.drops = index == 2 ? 17 : 0
    q.notificationsOff = role == .rx
    q.descriptorTable = 0x80_0000 + UInt64(index) * 0x1_0000
    return q
  }

  static func qmpVirtio(_ queues: [VirtqRecord]) throws -> [VirtioDeviceState] {
    var d = try decode(
      VirtioDeviceState.self,
      "{\"name\":\"virtio-net\",\"path\":\"/machine/peripheral-anon/device[0]/virtio-backend\",\"statuses\":[],"
        + "\"guestFeatures\":[],\"queues\":[]}")
    // As QEMU 7.2's x-query-virtio-status words them.
    d.statuses = [
      "VIRTIO_CONFIG_S_ACKNOWLEDGE: Valid virtio device found",
      "VIRTIO_CONFIG_S_DRIVER: Guest OS compatible with device",
      "VIRTIO_CONFIG_S_FEATURES_OK: Feature negotiation complete",
      "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready",
    ]
    d.guestFeatures = ["VIRTIO_NET_F_CSUM", "VIRTIO_NET_F_MAC", "VIRTIO_NET_F_MQ", "VIRTIO_F_VERSION_1"]
    d.queues = try queues.filter { $0.role != .ctrl }.map { q in
      var s = try decode(
        VirtioQueueState.self,
        "{\"index\":0,\"size\":0,\"usedIndex\":0,\"inUse\":0,\"descriptorTable\":0,\"availRing\":0,\"usedRing\":0}"
      )
      s.index = Int(q.index)
      s.size = Int(q.size)
      s.lastAvailIndex = Int(q.availIndex) - (q.index == 1 ? 2 : 0)
      s.shadowAvailIndex = Int(q.availIndex)
      s.usedIndex = Int(q.usedIndex)
      s.inUse = q.index == 1 ? 2 : 0
      return s
    }
    return [d]
  }

  static func virtqRates(_ queues: [VirtqRecord]) throws -> [VirtqRates] {
    try queues.map { q in
      let pps = q.role == .ctrl ? 0 : Double(q.packets / 100)
      return try decode(
        VirtqRates.self,
        "{\"device\":0,\"index\":\(q.index),\"packetsPerSecond\":\(pps),\"bytesPerSecond\":\(pps * 1400),"
          + "\"errorsPerSecond\":\(q.index == 1 ? 0.5 : 0),\"kicksPerSecond\":\(pps / 16),"
          + "\"interruptsPerSecond\":\(pps / 32)}")
    }
  }

  /// Thread ids of the fixture.
  static let alpha: UInt64 = 2
  static let beta: UInt64 = 3

  /// Four lcpus plus every v2 table: contention on `sched`, alpha and beta deadlocked on lock-A/lock-B,
  /// misuse on `console`, an inconsistent and an unreadable lock, a lock too new for rates.
  static func fullV2() throws -> (Snapshot, SnapshotRates) {
    var (snap, rates) = try fourLCPUs()
    let lockA: UInt64 = 0x30_0100
    let lockB: UInt64 = 0x30_0200
    let sched: UInt64 = 0x30_0000
    snap.threads = [
      try thread(1, "main", .running, lcpu: 0),
      try thread(alpha, "alpha", .blockedOnLock, lcpu: 0, blockedOn: lockB),
      try thread(beta, "beta", .blockedOnLock, lcpu: 2, blockedOn: lockA),
      try thread(4, "worker-3", .ready, lcpu: 1),
      try thread(5, "net-rx", .sleeping, lcpu: 1, wakeInMs: 0.4),
      try thread(6, "timerd", .sleeping, lcpu: 0, wakeInMs: 12),
      try thread(7, "spinner", .spinning, lcpu: 2, blockedOn: sched),
    ]
    var locks = [
      try lock(
        "sched", .spin, address: sched, acquisitions: 2_400_000, contended: 310_000, holderLCPU: 1,
        heldSinceMs: 0.02,
        waiters: [.init(lcpu: 2, thread: 7, sinceTSC: now - 4_000)]),
      try lock(
        "lock-A", .mutex, address: lockA, acquisitions: 5_000, contended: 40, holderLCPU: 0,
        holderThread: alpha,
        heldSinceMs: 1_500, waiters: [.init(lcpu: 2, thread: beta, sinceTSC: now - 2_000_000_000)]),
      try lock(
        "lock-B", .mutex, address: lockB, acquisitions: 5_100, contended: 38, holderLCPU: 2,
        holderThread: beta,
        heldSinceMs: 1_499, waiters: [.init(lcpu: 0, thread: alpha, sinceTSC: now - 2_000_000_000)]),
      try lock("console", .spin, address: 0x30_0300, acquisitions: 90_000, contended: 120),
      try lock("vfs", .rw, address: 0x30_0400, acquisitions: 40_000, contended: 2_000),
      try lock("heap", .ticket, address: 0x30_0500, acquisitions: 800_000, contended: 9_000),
      try lock("dyn-17", .semaphore, address: 0x30_0600, acquisitions: 10),
      try lock("netq", .spin, address: 0x30_0700, acquisitions: 300),
    ]
    locks[3].misuseIRQUnsafe = 2
    locks[3].misuseRecursion = 1
    locks[4].readers = 3
    locks[4].pendingWriters = 1
    locks[5].consistency = .inconsistent(retries: 16)
    locks[6].dynamic = true
    locks[6].consistency = .unreadable(reason: "record at 0x7f0000 outside RAM")
    snap.locks = locks
    rates.locks = [
      try lockRates(sched, acq: 190_000, cont: 25_000, meanWaitTSC: 3_100),
      try lockRates(lockA, acq: 0, cont: 0, meanWaitTSC: nil),
      try lockRates(lockB, acq: 0, cont: 0, meanWaitTSC: nil),
      try lockRates(0x30_0300, acq: 7_000, cont: 9, meanWaitTSC: 800),
      try lockRates(0x30_0400, acq: 3_000, cont: 150, meanWaitTSC: 40_000),
      try lockRates(0x30_0500, acq: 60_000, cont: 700, meanWaitTSC: 2_400),
      try lockRates(0x30_0600, acq: 0, cont: 0, meanWaitTSC: nil),
    ]
    snap.timerQueues = [
      try timerQueue(lcpu: 0, timers: [(12, 6), (0.8, 0), (250, 1)], fired: 12_500, lateMaxUs: 45),
      try timerQueue(lcpu: 1, timers: [(0.4, 5)], fired: 12_480, lateMaxUs: 12),
      try timerQueue(lcpu: 2, timers: [(-0.15, 7), (3, 0)], fired: 12_300, lateMaxUs: 2_300),
      try timerQueue(lcpu: 3, timers: [], fired: 9_000, lateMaxUs: 0),
    ]
    snap.timerQueues[3].consistency = .inconsistent(retries: 16)
    rates.timersFiredPerSecond = [0: 1000, 1: 1000, 2: 998]
    var w = try decode(
      WorkloadRecord.self,
      "{\"scenario\":\"abba\",\"checks\":12,\"checkFailures\":0,\"expected\":0,\"observed\":0,\"ops\":[],\"consistency\":\(ok)}"
    )
    w.ops = [51_000, 48_000, 50_500, 0]
    snap.workload = w
    snap.allocator = try allocator()
    rates.allocOrders = try allocRates()
    snap.virtioDevices = [try virtioDevice()]
    snap.virtqueues = [
      try virtq(0, .rx, lcpu: 0, inFlight: 200, packets: 1_200_000),
      try virtq(1, .tx, lcpu: 0, inFlight: 14, packets: 800_000),
      try virtq(2, .rx, lcpu: 1, inFlight: 256, packets: 900_000),
      try virtq(3, .tx, lcpu: 1, inFlight: 0, packets: 600_000),
      try virtq(4, .ctrl, lcpu: 0, inFlight: 0, packets: 3),
    ]
    snap.virtqueues[3].consistency = .inconsistent(retries: 16)
    snap.virtio = try qmpVirtio(snap.virtqueues)
    rates.virtqueues = try virtqRates(snap.virtqueues)
    rates.workloadOpsPerSecond = [4_000, 3_900, 4_100, 0]
    return (snap, rates)
  }

  /// `manyLCPUs(n)` plus `locks` locks with a spread of contention and a few holders, for the benchmark.
  static func manyLocks(lcpus n: Int, locks count: Int) throws -> (Snapshot, SnapshotRates) {
    var (snap, rates) = try manyLCPUs(n)
    snap.threads = try (0..<UInt64(n)).map {
      try thread(100 + $0, "worker-\($0)", .running, lcpu: UInt32($0))
    }
    var locks: [LockRecord] = []
    var lr: [LockRates] = []
    for i in 0..<count {
      let address = 0x40_0000 + UInt64(i) * 64
      let held = i % 7 == 0
      locks.append(
        try lock(
          "lock-\(i)", [LockKind.spin, .mutex, .rw, .ticket][i % 4], address: address,
          acquisitions: UInt64(1000 + i * 97), contended: UInt64(i * 13),
          holderLCPU: held ? UInt32(i % n) : nil,
          holderThread: held ? 100 + UInt64(i % n) : nil, heldSinceMs: 0.5,
          waiters: i % 11 == 0
            ? [.init(lcpu: UInt32((i + 1) % n), thread: 100 + UInt64((i + 1) % n), sinceTSC: now - 9_000)]
            : []))
      lr.append(
        try lockRates(address, acq: Double(100 + i * 7), cont: Double(i % 17), meanWaitTSC: Double(i * 10)))
    }
    snap.locks = locks
    rates.locks = lr
    return (snap, rates)
  }
}
