import InspectABI

#if canImport(Glibc)
  import Glibc
#endif

/// Turns guest memory into typed `Snapshot`s.
///
/// It finds the ABI root at a known address (the ELF symbol `smptop_root`), remembers where
/// every table is, and reads the root and all tables in one batched request per snapshot. On
/// a live source every guarded record is read between two reads of its sequence counter and
/// retried a bounded number of times; what stays torn is marked `.inconsistent`, never trusted.
public final class SnapshotEngine {
  /// Where the bytes come from.
  public let memory: any GuestMemory
  /// Guest-physical address of `smptop_root`.
  public let rootAddress: UInt64
  /// Quick re-reads of a torn record (a yield between them).
  public var retries = 16
  /// After the quick re-reads, how long to keep re-reading a torn record with short sleeps
  /// before marking it inconsistent. Guest windows are a few instructions long, but under
  /// TCG a vCPU thread can be descheduled by the host in the middle of one (more vCPUs than
  /// host cores), leaving the sequence counter odd for milliseconds. A record that stayed
  /// torn for the whole patience (e.g. its writer halted mid-update) gets only the quick
  /// re-reads until it is seen consistent again, so it cannot slow every snapshot down.
  public var patienceNanoseconds: UInt64 = 200_000_000
  /// Largest table read (a garbage root cannot make a snapshot copy gigabytes).
  static let maxTableBytes = 16 << 20
  /// Most dynamic locks followed along the guest's list.
  public var maxDynamicLocks = 4096
  /// Whether `snapshot()` keeps the bytes it decoded in `decodedBytes` (for the recorder).
  public var keepsBytes = false
  /// The bytes the latest snapshot decoded, when `keepsBytes` is set: the root, every table and
  /// every dynamic lock record, at their guest-physical addresses, in that order. A record read
  /// again because it was torn has its re-read bytes here, so the ranges decode to the same
  /// records, with the same consistency, as the snapshot did.
  public private(set) var decodedBytes: [(address: UInt64, bytes: [UInt8])] = []

  /// One record table the engine reads.
  struct TableSpec {
    var kind: Int
    var name: String
    var recordSize: Int
    /// The record starts with a sequence counter.
    var guarded: Bool
  }

  static let specs: [TableSpec] = [
    TableSpec(
      kind: Int(SMPTOP_TABLE_LCPU.rawValue), name: "lcpu", recordSize: MemoryLayout<smptop_lcpu>.size,
      guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_LOCK.rawValue), name: "lock", recordSize: MemoryLayout<smptop_lock>.size,
      guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_THREAD.rawValue), name: "thread", recordSize: MemoryLayout<smptop_thread>.size,
      guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_TIMERQ.rawValue), name: "timer queue",
      recordSize: MemoryLayout<smptop_timerq>.size, guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_WORKLOAD.rawValue), name: "workload",
      recordSize: MemoryLayout<smptop_workload>.size, guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_ALLOC.rawValue), name: "allocator", recordSize: MemoryLayout<smptop_alloc>.size,
      guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_ALLOC_ORDER.rawValue), name: "allocator order",
      recordSize: MemoryLayout<smptop_alloc_order>.size, guarded: false),
    TableSpec(
      kind: Int(SMPTOP_TABLE_VIRTIO_DEV.rawValue), name: "virtio device",
      recordSize: MemoryLayout<smptop_virtio_dev>.size, guarded: true),
    TableSpec(
      kind: Int(SMPTOP_TABLE_VIRTQ.rawValue), name: "virtqueue", recordSize: MemoryLayout<smptop_virtq>.size,
      guarded: true),
  ]

  /// Where each table was last seen (from the root), by index in `specs`.
  private var tables: [TableLocation?] = Array(repeating: nil, count: specs.count)
  /// Dynamic lock records seen last time, prefetched in the batch.
  private var knownDynamicLocks: [UInt64] = []
  /// Records that were still torn after the whole patience last time.
  private var stuck: Set<UInt64> = []
  /// Records read again during this snapshot (kept only with `keepsBytes`).
  private var rereads: [(address: UInt64, bytes: [UInt8])] = []
  /// The dynamic lock records of this snapshot as decoded (kept only with `keepsBytes`).
  private var dynamicBytes: [(address: UInt64, bytes: [UInt8])] = []
  /// What one snapshot reads, rebuilt only when a table moves or the dynamic lock list changes.
  private var plan = Plan()
  /// Whether `plan` matches `tables` and `knownDynamicLocks`.
  private var planIsCurrent = false
  /// Where the batch lands: every range of the plan, packed in order.
  private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16)
  /// Sequence words read before and after the batch (live sources).
  private var before: [UInt64] = []
  private var after: [UInt64] = []
  /// The root's bytes last time and the guest description decoded from them.
  private var lastRoot: [UInt8] = []
  private var lastGuest: GuestInfo?

  /// An engine over `memory` with the root at `rootAddress`.
  public init(memory: any GuestMemory, rootAddress: UInt64) {
    self.memory = memory
    self.rootAddress = rootAddress
  }

  deinit { buffer.deallocate() }

  /// The ranges one snapshot reads: the root, every known table and the dynamic locks.
  public var modelRanges: [MemoryRange] {
    [MemoryRange(address: rootAddress, count: ABIDecoder.rootSize)]
      + tables.compactMap { $0?.range }.filter { $0.count > 0 }
      + knownDynamicLocks.map { MemoryRange(address: $0, count: MemoryLayout<smptop_lock>.size) }
  }

  /// A planned read of one region (a table or a dynamic record) within the batch.
  private struct Region {
    var location: TableLocation
    var guarded: Bool
    /// Index of its range in the plan.
    var range = 0
    /// Where its bytes start in the buffer.
    var offset = 0
    /// Index of its first sequence word (live, guarded).
    var firstWord = 0
  }

  /// The batch: ranges packed into the buffer, the sequence words to check, and the regions.
  private struct Plan {
    var ranges: [MemoryRange] = []
    var byteCount = 0
    var sequences: [UInt64] = []
    /// Per entry of `specs`: its region, when the table is known.
    var regions: [Region?] = []
    /// The dynamic lock records prefetched, in list order.
    var dynamic: [Region] = []
  }

  /// Plans the batch: the root, every table where it was last seen, the known dynamic locks.
  private func makePlan() -> Plan {
    var plan = Plan()
    func add(_ location: TableLocation, guarded: Bool) -> Region {
      var region = Region(location: location, guarded: guarded)
      region.range = plan.ranges.count
      region.offset = plan.byteCount
      region.firstWord = plan.sequences.count
      plan.ranges.append(location.range)
      plan.byteCount += location.byteCount
      if memory.isLive && guarded {
        for i in 0..<location.count { plan.sequences.append(location.address + UInt64(i * location.stride)) }
      }
      return region
    }
    _ = add(TableLocation(address: rootAddress, count: 1, stride: ABIDecoder.rootSize), guarded: false)
    plan.regions = Self.specs.indices.map { k in
      tables[k].map { add($0, guarded: Self.specs[k].guarded) }
    }
    let lockSize = MemoryLayout<smptop_lock>.size
    plan.dynamic = knownDynamicLocks.map {
      add(TableLocation(address: $0, count: 1, stride: lockSize), guarded: true)
    }
    return plan
  }

  /// Reads the plan's batch into the buffer: every sequence word, the ranges, every word again.
  private func capture() -> [(index: Int, error: GuestMemoryError)] {
    if buffer.count < plan.byteCount {
      buffer.deallocate()
      buffer = .allocate(byteCount: plan.byteCount, alignment: 16)
    }
    guard !plan.sequences.isEmpty else { return memory.copy(plan.ranges, into: buffer) }
    memory.words(plan.sequences, into: &before)
    let failures = memory.copy(plan.ranges, into: buffer)
    memory.words(plan.sequences, into: &after)
    return failures
  }

  /// Takes one snapshot. Throws only when the ABI is absent, unpublished or of another version.
  public func snapshot() throws(ABIError) -> Snapshot {
    let start = monotonicNanoseconds()
    var problems: [String] = []
    rereads = []
    dynamicBytes = []

    // One batch; again when the root places a table elsewhere than planned (or the first time).
    var failures: [(index: Int, error: GuestMemoryError)] = []
    var root = smptop_root()
    var guest: GuestInfo?
    var readNanoseconds: UInt64 = 0
    for attempt in 0..<3 {
      if !planIsCurrent {
        plan = makePlan()
        planIsCurrent = true
      }
      let readStart = monotonicNanoseconds()
      failures = capture()
      readNanoseconds = monotonicNanoseconds() - readStart
      if let rootFailure = failures.first(where: { $0.index == 0 }) {
        throw ABIError(
          code: .unreadableRoot, message: "cannot read the ABI root: \(rootFailure.error.description)")
      }
      let rootBytes = UnsafeRawBufferPointer(rebasing: buffer[0..<ABIDecoder.rootSize])
      root = try ABIDecoder.decodeRoot(rootBytes, at: rootAddress)
      guest = guestInfo(root, bytes: rootBytes)
      var moved = false
      var tableProblems: [String] = []
      for (k, spec) in Self.specs.enumerated() {
        switch ABIDecoder.table(root, kind: spec.kind, recordSize: spec.recordSize) {
        case .failure(let error):
          if spec.kind == Int(SMPTOP_TABLE_LCPU.rawValue) || !error.absent {
            tableProblems.append("\(spec.name) table: \(error.reason)")
          }
          if tables[k] != nil {
            tables[k] = nil
            moved = true
          }
        case .success(let location) where location.byteCount > Self.maxTableBytes:
          tableProblems.append(
            "\(spec.name) table: \(location.byteCount) bytes claimed, more than \(Self.maxTableBytes)")
          if tables[k] != nil {
            tables[k] = nil
            moved = true
          }
        case .success(let location):
          if tables[k] != location {
            tables[k] = location
            moved = true
          }
        }
      }
      if !moved || attempt == 2 {
        problems += tableProblems
        break
      }
      planIsCurrent = false
    }
    var failed: [Int: GuestMemoryError] = [:]
    for failure in failures { failed[failure.index] = failure.error }

    var snap = Snapshot(timeNanoseconds: start, source: memory.kind, guest: guest, lcpus: [])
    let raw = UnsafeRawBufferPointer(buffer)
    func planned(_ kind: UInt32) -> Int {
      Self.specs.firstIndex(where: { $0.kind == Int(kind) }).flatMap { plan.regions[$0]?.location.count } ?? 0
    }
    snap.lcpus.reserveCapacity(planned(SMPTOP_TABLE_LCPU.rawValue))
    snap.threads.reserveCapacity(planned(SMPTOP_TABLE_THREAD.rawValue))
    snap.locks.reserveCapacity(
      planned(SMPTOP_TABLE_LOCK.rawValue) + min(Int(clamping: root.dynamic_lock_count), maxDynamicLocks))
    func each(_ kind: UInt32, _ body: (UnsafeRawBufferPointer, Int, UInt64, Consistency) -> Void) {
      guard let k = Self.specs.firstIndex(where: { $0.kind == Int(kind) }), let region = plan.regions[k]
      else {
        return
      }
      guard region.location == tables[k] else {
        problems.append("\(Self.specs[k].name) table moved while being read")
        return
      }
      records(
        region, raw: raw, recordSize: Self.specs[k].recordSize, failure: failed[region.range],
        name: Self.specs[k].name, problems: &problems, body)
    }

    each(SMPTOP_TABLE_LCPU.rawValue) { bytes, offset, _, consistency in
      snap.lcpus.append(
        bytes.isEmpty
          ? placeholder(index: snap.lcpus.count, consistency)
          : ABIDecoder.lcpu(bytes, at: offset, consistency: consistency))
    }
    let lcpuCount = snap.lcpus.count
    each(SMPTOP_TABLE_LOCK.rawValue) { bytes, offset, address, consistency in
      guard !bytes.isEmpty else { return }
      snap.locks.append(ABIDecoder.lock(bytes, at: offset, recordAddress: address, consistency: consistency))
    }
    dynamicLocks(
      head: root.dynamic_locks, count: root.dynamic_lock_count, raw: raw, failed: failed, into: &snap.locks,
      problems: &problems)
    each(SMPTOP_TABLE_THREAD.rawValue) { bytes, offset, address, consistency in
      guard !bytes.isEmpty else { return }
      var t = ABIDecoder.thread(bytes, at: offset, consistency: consistency)
      t.recordAddress = address
      if t.state != .free { snap.threads.append(t) }
    }
    each(SMPTOP_TABLE_TIMERQ.rawValue) { bytes, offset, _, consistency in
      guard !bytes.isEmpty else { return }
      snap.timerQueues.append(ABIDecoder.timerQueue(bytes, at: offset, consistency: consistency))
    }
    each(SMPTOP_TABLE_WORKLOAD.rawValue) { bytes, offset, _, consistency in
      guard !bytes.isEmpty, snap.workload == nil else { return }
      snap.workload = ABIDecoder.workload(bytes, at: offset, lcpus: lcpuCount, consistency: consistency)
    }
    var orders: [AllocOrderRecord] = []
    each(SMPTOP_TABLE_ALLOC_ORDER.rawValue) { bytes, offset, _, _ in
      guard !bytes.isEmpty else { return }
      orders.append(ABIDecoder.allocOrder(bytes, at: offset))
    }
    each(SMPTOP_TABLE_ALLOC.rawValue) { bytes, offset, _, consistency in
      guard !bytes.isEmpty, snap.allocator == nil else { return }
      snap.allocator = ABIDecoder.allocator(
        bytes, at: offset, orders: orders, lcpus: lcpuCount, consistency: consistency)
    }
    each(SMPTOP_TABLE_VIRTIO_DEV.rawValue) { bytes, offset, _, consistency in
      guard !bytes.isEmpty else { return }
      snap.virtioDevices.append(ABIDecoder.virtioDevice(bytes, at: offset, consistency: consistency))
    }
    each(SMPTOP_TABLE_VIRTQ.rawValue) { bytes, offset, _, consistency in
      guard !bytes.isEmpty else { return }
      snap.virtqueues.append(ABIDecoder.virtq(bytes, at: offset, consistency: consistency))
    }
    snap.problems = problems
    if keepsBytes { keepBytes(failed: failed) }
    snap.readNanoseconds = readNanoseconds
    snap.costNanoseconds = monotonicNanoseconds() - start
    return snap
  }

  /// The guest description of `root`, decoded again only when the root's bytes changed.
  private func guestInfo(_ root: smptop_root, bytes: UnsafeRawBufferPointer) -> GuestInfo {
    if let lastGuest, lastRoot.count == bytes.count, let new = bytes.baseAddress,
      lastRoot.withUnsafeBytes({ old in old.baseAddress.map { memcmp($0, new, bytes.count) == 0 } ?? false })
    {
      return lastGuest
    }
    let guest = ABIDecoder.guestInfo(root)
    lastRoot = Array(bytes)
    lastGuest = guest
    return guest
  }

  /// Sets `decodedBytes` from this snapshot's batch: the root, each table as read with every
  /// re-read record patched in, then the dynamic lock records.
  private func keepBytes(failed: [Int: GuestMemoryError]) {
    func bytes(_ region: Region) -> [UInt8] {
      Array(
        UnsafeRawBufferPointer(rebasing: buffer[region.offset..<region.offset + region.location.byteCount]))
    }
    var kept: [(address: UInt64, bytes: [UInt8])] = [
      (rootAddress, Array(UnsafeRawBufferPointer(rebasing: buffer[0..<ABIDecoder.rootSize])))
    ]
    for (k, region) in plan.regions.enumerated() {
      guard let region, region.location.count > 0, failed[region.range] == nil, region.location == tables[k]
      else { continue }
      kept.append((region.location.address, bytes(region)))
    }
    for reread in rereads {
      guard
        let i = kept.indices.dropFirst().first(where: { i in
          reread.address >= kept[i].address
            && reread.address - kept[i].address + UInt64(reread.bytes.count) <= UInt64(kept[i].bytes.count)
        })
      else { continue }  // a dynamic lock's: kept below as decoded
      let offset = Int(reread.address - kept[i].address)
      kept[i].bytes.replaceSubrange(offset..<offset + reread.bytes.count, with: reread.bytes)
    }
    decodedBytes = kept + dynamicBytes
  }

  /// Calls `body` with each record of a region: its bytes (the batch, or a re-read when it was
  /// torn; empty when unreadable), the record's offset in them, its address and consistency.
  private func records(
    _ region: Region, raw: UnsafeRawBufferPointer, recordSize: Int, failure: GuestMemoryError?, name: String,
    problems: inout [String], _ body: (UnsafeRawBufferPointer, Int, UInt64, Consistency) -> Void
  ) {
    let location = region.location
    guard location.count > 0 else { return }
    if let failure {
      problems.append("\(name) table at 0x\(hex(location.address)): \(failure.description)")
      for i in 0..<location.count {
        body(
          UnsafeRawBufferPointer(start: nil, count: 0), 0, location.address + UInt64(i * location.stride),
          .unreadable(reason: failure.description))
      }
      return
    }
    let live = memory.isLive && region.guarded
    for i in 0..<location.count {
      let offset = region.offset + i * location.stride
      let address = location.address + UInt64(i * location.stride)
      let sequence = ABIDecoder.sequence(raw, at: offset)
      guard live else {
        // Frozen bytes (a stopped guest or a recording) cannot be re-read: a record caught
        // mid-update, its sequence word odd, stays marked.
        let torn = region.guarded && sequence & 1 == 1
        body(raw, offset, address, torn ? .inconsistent(retries: 0) : .consistent)
        continue
      }
      let w = region.firstWord + i
      let first = w < before.count ? before[w] : unreadableWord
      if first & 1 == 0, w < after.count, first == after[w], sequence == first {
        if !stuck.isEmpty { stuck.remove(address) }
        body(raw, offset, address, .consistent)
        continue
      }
      let (again, consistency) = retry(address: address, size: recordSize)
      if let again {
        if keepsBytes { rereads.append((address, again)) }
        again.withUnsafeBytes { body($0, 0, address, consistency) }
      } else {
        body(raw, offset, address, consistency)
      }
    }
  }

  /// Follows the guest's list of dynamically created locks, bounded and loop-safe, appending
  /// them to `locks`. Records prefetched in the batch are decoded from it while the list
  /// follows the order seen last time; others are read on their own.
  private func dynamicLocks(
    head: UInt64, count: UInt64, raw: UnsafeRawBufferPointer, failed: [Int: GuestMemoryError],
    into locks: inout [LockRecord], problems: inout [String]
  ) {
    let size = MemoryLayout<smptop_lock>.size
    let limit = min(Int(clamping: count), maxDynamicLocks)
    var seen = Set<UInt64>()
    // While the list follows `plan.dynamic` the addresses are distinct (they were when that list
    // was made), so the loop check starts only where the list leaves it.
    var followsPlan = true
    var visited: [UInt64] = []
    visited.reserveCapacity(min(limit, plan.dynamic.count + 16))
    var address = head
    while address != 0 && visited.count < limit {
      let i = visited.count
      if followsPlan && !(i < plan.dynamic.count && plan.dynamic[i].location.address == address) {
        followsPlan = false
        seen = Set(visited)
      }
      if !followsPlan {
        guard seen.insert(address).inserted else {
          problems.append("dynamic lock list loops at 0x\(hex(address))")
          break
        }
      }
      var next: UInt64?
      var decoded = false
      if followsPlan, failed[plan.dynamic[i].range] == nil {
        records(
          plan.dynamic[i], raw: raw, recordSize: size, failure: nil, name: "dynamic lock", problems: &problems
        ) {
          bytes, offset, _, consistency in
          guard !bytes.isEmpty else { return }
          locks.append(ABIDecoder.lock(bytes, at: offset, recordAddress: address, consistency: consistency))
          if keepsBytes { dynamicBytes.append((address, Array(bytes[offset..<offset + size]))) }
          next = ABIDecoder.lockNext(bytes, at: offset)
          decoded = true
        }
      }
      if !decoded {
        var record: [UInt8]?
        var consistency = Consistency.consistent
        if memory.isLive {
          (record, consistency) = retry(address: address, size: size)
        } else {
          record = try? memory.read(address, count: size)
          if let record, record.count == size, ABIDecoder.sequence(record, at: 0) & 1 == 1 {
            consistency = .inconsistent(retries: 0)
          }
        }
        guard let record, record.count == size else {
          problems.append("dynamic lock at 0x\(hex(address)) unreadable")
          break
        }
        locks.append(ABIDecoder.lock(record, recordAddress: address, consistency: consistency))
        if keepsBytes { dynamicBytes.append((address, record)) }
        next = ABIDecoder.lockNext(record)
      }
      visited.append(address)
      address = next ?? 0
    }
    if address != 0 && visited.count >= limit && UInt64(visited.count) < count {
      problems.append("dynamic lock list longer than \(limit); the rest is not shown")
    }
    if !(followsPlan && visited.count == plan.dynamic.count) {
      knownDynamicLocks = visited
      planIsCurrent = false
    }
  }

  /// Re-reads one torn record until its sequence counter is even and stable, or gives up.
  private func retry(address: UInt64, size: Int) -> ([UInt8]?, Consistency) {
    let seq = MemoryRange(address: address, count: 8)
    let body = MemoryRange(address: address, count: size)
    var last: [UInt8]?
    var attempts = 0
    var pause: UInt32 = 50  // microseconds, doubled up to 1 ms once the quick re-reads failed
    let giveUp = monotonicNanoseconds() &+ (stuck.contains(address) ? 0 : patienceNanoseconds)
    while true {
      let r = memory.read([seq, body, seq])
      guard r.count == 3, case .success(let bytes) = r[1], bytes.count == size else {
        return (nil, .unreadable(reason: r.count == 3 ? describe(r[1]) : "not read"))
      }
      last = bytes
      attempts += 1
      if let before = sequenceValue(r[0]), before & 1 == 0, before == sequenceValue(r[2]),
        ABIDecoder.sequence(bytes, at: 0) == before
      {
        stuck.remove(address)
        return (bytes, .consistent)
      }
      if attempts < max(1, retries) {
        sched_yield()
      } else if monotonicNanoseconds() < giveUp {
        usleep(pause)
        pause = min(pause * 2, 1000)
      } else {
        break
      }
    }
    stuck.insert(address)
    return (last, .inconsistent(retries: attempts))
  }

  private func sequenceValue(_ result: Result<[UInt8], GuestMemoryError>) -> UInt64? {
    guard case .success(let bytes) = result, bytes.count == 8 else { return nil }
    return ABIDecoder.sequence(bytes, at: 0)
  }

  private func describe(_ result: Result<[UInt8], GuestMemoryError>) -> String {
    switch result {
    case .failure(let error): return error.description
    case .success(let bytes): return "short read (\(bytes.count) bytes)"
    }
  }

  /// An lcpu record that could not be read: index known, everything else zero.
  private func placeholder(index: Int, _ consistency: Consistency) -> LCPURecord {
    LCPURecord(
      index: UInt32(index), apicID: 0, state: .unknown, rawState: 0, busyDepth: 0, errorCode: 0,
      stateSinceTSC: 0, irqTimer: 0, irqIPI: 0, irqDevice: 0, irqSpurious: 0, ipiSent: 0, ipiReceived: 0,
      remoteCalls: 0, ticks: 0, cyclesIdle: 0, cyclesBusy: 0, currentThread: 0, nextDeadlineTSC: 0,
      lastTickRIP: 0, lastTickTSC: 0, stackBottom: 0, stackTop: 0, workLoops: 0, panic: nil,
      consistency: consistency)
  }
}

/// Nanoseconds on the monotonic clock.
public func monotonicNanoseconds() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
