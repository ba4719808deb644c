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

  /// Where each table was last seen (from the root), so the next snapshot batches them.
  private var tables: [Int: TableLocation] = [:]
  /// Dynamic lock records seen last time, prefetched in the batch.
  private var knownDynamicLocks: [UInt64] = []
  /// Records that were still torn after the whole patience last time.
  private var stuck: Set<UInt64> = []
  /// Records read again during this snapshot (kept only with `keepsBytes`).
  private var rereads: [(address: UInt64, bytes: [UInt8])] = []
  /// The dynamic lock records of this snapshot as decoded (kept only with `keepsBytes`).
  private var dynamicBytes: [(address: UInt64, bytes: [UInt8])] = []

  /// An engine over `memory` with the root at `rootAddress`.
  public init(memory: any GuestMemory, rootAddress: UInt64) {
    self.memory = memory
    self.rootAddress = rootAddress
  }

  /// The ranges one snapshot reads: the root, every known table and the dynamic locks.
  public var modelRanges: [MemoryRange] {
    [MemoryRange(address: rootAddress, count: ABIDecoder.rootSize)]
      + Self.specs.compactMap { tables[$0.kind]?.range }.filter { $0.count > 0 }
      + knownDynamicLocks.map { MemoryRange(address: $0, count: MemoryLayout<smptop_lock>.size) }
  }

  /// A planned read of one region (a table or a dynamic record) within a batch.
  private struct Region {
    var location: TableLocation
    var guarded: Bool
    var first = 0  // index of its result in the batch
    var firstWord = 0  // index of its first sequence word (live, guarded)
  }

  /// Takes one snapshot. Throws only when the ABI is absent, unpublished or of another version.
  public func snapshot() throws(ABIError) -> Snapshot {
    let start = monotonicNanoseconds()
    var problems: [String] = []
    rereads = []
    dynamicBytes = []
    let rootRange = MemoryRange(address: rootAddress, count: ABIDecoder.rootSize)

    // One batch: the root, every table where we last saw it, and the known dynamic locks.
    var regions: [Int: Region] = [:]
    var dynamicRegions: [UInt64: Region] = [:]
    var ranges = [rootRange]
    var sequences: [UInt64] = []
    for spec in Self.specs {
      guard let location = tables[spec.kind] else { continue }
      var region = Region(location: location, guarded: spec.guarded)
      region.first = ranges.count
      region.firstWord = sequences.count
      ranges.append(region.location.range)
      sequences += sequenceAddresses(region)
      regions[spec.kind] = region
    }
    let lockSize = MemoryLayout<smptop_lock>.size
    for address in knownDynamicLocks {
      var region = Region(
        location: TableLocation(address: address, count: 1, stride: lockSize), guarded: true)
      region.first = ranges.count
      region.firstWord = sequences.count
      ranges.append(region.location.range)
      sequences += sequenceAddresses(region)
      dynamicRegions[address] = region
    }
    // Live: every sequence counter, then the records, then every counter again.
    var before = sequences.isEmpty ? [] : memory.words(sequences)
    var results = memory.read(ranges)
    var after = sequences.isEmpty ? [] : memory.words(sequences)
    guard case .success(let rootBytes)? = results.first else {
      var reason = "no data"
      if case .failure(let e)? = results.first { reason = e.description }
      throw ABIError(code: .unreadableRoot, message: "cannot read the ABI root: \(reason)")
    }
    let root = try ABIDecoder.decodeRoot(rootBytes, at: rootAddress)
    let guest = ABIDecoder.guestInfo(root)

    // Tables the root places elsewhere than we thought (or the first snapshot): read now.
    var late: [MemoryRange] = []
    var lateSequences: [UInt64] = []
    for spec in Self.specs {
      switch ABIDecoder.table(root, kind: spec.kind, recordSize: spec.recordSize) {
      case .failure(let error):
        if spec.kind == Int(SMPTOP_TABLE_LCPU.rawValue) || !error.absent {
          problems.append("\(spec.name) table: \(error.reason)")
        }
        tables[spec.kind] = nil
        regions[spec.kind] = nil
      case .success(let location):
        if regions[spec.kind]?.location != location {
          tables[spec.kind] = location
          var region = Region(location: location, guarded: spec.guarded)
          region.first = results.count + late.count
          region.firstWord = sequences.count + lateSequences.count
          late.append(region.location.range)
          lateSequences += sequenceAddresses(region)
          regions[spec.kind] = region
        }
      }
    }
    if !late.isEmpty {
      before += lateSequences.isEmpty ? [] : memory.words(lateSequences)
      results += memory.read(late)
      after += lateSequences.isEmpty ? [] : memory.words(lateSequences)
    }
    let words = (before: before, after: after)

    func records(_ kind: UInt32) -> [(bytes: [UInt8], offset: Int, address: UInt64, consistency: Consistency)]
    {
      guard let region = regions[Int(kind)], let spec = Self.specs.first(where: { $0.kind == Int(kind) })
      else {
        return []
      }
      return extract(
        region, recordSize: spec.recordSize, results: results, words: words, name: spec.name,
        problems: &problems)
    }

    var snap = Snapshot(timeNanoseconds: start, source: memory.kind, guest: guest, lcpus: [])
    snap.lcpus = records(SMPTOP_TABLE_LCPU.rawValue).enumerated().map { i, r in
      r.bytes.isEmpty
        ? placeholder(index: i, r.consistency)
        : ABIDecoder.lcpu(r.bytes, at: r.offset, consistency: r.consistency)
    }
    let lcpuCount = snap.lcpus.count
    snap.locks = records(SMPTOP_TABLE_LOCK.rawValue).compactMap { r in
      r.bytes.isEmpty
        ? nil : ABIDecoder.lock(r.bytes, at: r.offset, recordAddress: r.address, consistency: r.consistency)
    }
    snap.locks += dynamicLocks(
      head: root.dynamic_locks, count: root.dynamic_lock_count, prefetched: dynamicRegions, results: results,
      words: words, problems: &problems)
    snap.threads = records(SMPTOP_TABLE_THREAD.rawValue).compactMap { r in
      guard !r.bytes.isEmpty else { return nil }
      var t = ABIDecoder.thread(r.bytes, at: r.offset, consistency: r.consistency)
      t.recordAddress = r.address
      return t.state == .free ? nil : t
    }
    snap.timerQueues = records(SMPTOP_TABLE_TIMERQ.rawValue).compactMap { r in
      r.bytes.isEmpty ? nil : ABIDecoder.timerQueue(r.bytes, at: r.offset, consistency: r.consistency)
    }
    snap.workload = records(SMPTOP_TABLE_WORKLOAD.rawValue).first.flatMap { r in
      r.bytes.isEmpty
        ? nil : ABIDecoder.workload(r.bytes, at: r.offset, lcpus: lcpuCount, consistency: r.consistency)
    }
    let orders = records(SMPTOP_TABLE_ALLOC_ORDER.rawValue).compactMap { r in
      r.bytes.isEmpty ? nil : ABIDecoder.allocOrder(r.bytes, at: r.offset)
    }
    snap.allocator = records(SMPTOP_TABLE_ALLOC.rawValue).first.flatMap { r in
      r.bytes.isEmpty
        ? nil
        : ABIDecoder.allocator(
          r.bytes, at: r.offset, orders: orders, lcpus: lcpuCount, consistency: r.consistency)
    }
    snap.virtioDevices = records(SMPTOP_TABLE_VIRTIO_DEV.rawValue).compactMap { r in
      r.bytes.isEmpty ? nil : ABIDecoder.virtioDevice(r.bytes, at: r.offset, consistency: r.consistency)
    }
    snap.virtqueues = records(SMPTOP_TABLE_VIRTQ.rawValue).compactMap { r in
      r.bytes.isEmpty ? nil : ABIDecoder.virtq(r.bytes, at: r.offset, consistency: r.consistency)
    }
    snap.problems = problems
    if keepsBytes { keepBytes(root: rootBytes, regions: regions, results: results) }
    snap.costNanoseconds = monotonicNanoseconds() - start
    return snap
  }

  /// Sets `decodedBytes` from this snapshot's reads: the root, each table as read in the batch
  /// with every re-read record patched in, then the dynamic lock records.
  private func keepBytes(root: [UInt8], regions: [Int: Region], results: [Result<[UInt8], GuestMemoryError>])
  {
    var kept: [(address: UInt64, bytes: [UInt8])] = [(rootAddress, root)]
    for spec in Self.specs {
      guard let region = regions[spec.kind], region.location.count > 0,
        results.indices.contains(region.first), case .success(let bytes) = results[region.first],
        bytes.count == region.location.byteCount
      else { continue }
      kept.append((region.location.address, bytes))
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

  /// The sequence-word addresses of a live, guarded region.
  private func sequenceAddresses(_ region: Region) -> [UInt64] {
    guard memory.isLive && region.guarded else { return [] }
    return (0..<region.location.count).map { region.location.address + UInt64($0 * region.location.stride) }
  }

  /// Splits a region's batch results into records, checking sequence counters when live.
  private func extract(
    _ region: Region, recordSize: Int, results: [Result<[UInt8], GuestMemoryError>],
    words: (before: [UInt64?], after: [UInt64?]), name: String, problems: inout [String]
  ) -> [(bytes: [UInt8], offset: Int, address: UInt64, consistency: Consistency)] {
    let location = region.location
    guard location.count > 0 else { return [] }
    let live = memory.isLive && region.guarded
    let tableIndex = region.first
    guard results.indices.contains(tableIndex), case .success(let bytes) = results[tableIndex],
      bytes.count == location.byteCount
    else {
      let why = results.indices.contains(tableIndex) ? describe(results[tableIndex]) : "not read"
      problems.append("\(name) table at 0x\(hex(location.address)): \(why)")
      return (0..<location.count).map { i in
        ([], 0, location.address + UInt64(i * location.stride), .unreadable(reason: why))
      }
    }
    return (0..<location.count).map { i in
      let offset = i * location.stride
      let address = location.address + UInt64(offset)
      // Records are decoded in place from the table's bytes: no copy per record.
      guard live else {
        // Frozen bytes (a stopped guest or a recording) cannot be re-read: a record caught
        // mid-update, its sequence word odd, stays marked.
        let torn = region.guarded && ABIDecoder.sequence(bytes, at: offset) & 1 == 1
        return (bytes, offset, address, torn ? .inconsistent(retries: 0) : .consistent)
      }
      let w = region.firstWord + i
      let before = words.before.indices.contains(w) ? words.before[w] : nil
      let after = words.after.indices.contains(w) ? words.after[w] : nil
      if let before, before & 1 == 0, before == after, ABIDecoder.sequence(bytes, at: offset) == before {
        if !stuck.isEmpty { stuck.remove(address) }
        return (bytes, offset, address, .consistent)
      }
      let (again, consistency) = retry(address: address, size: recordSize)
      if let again {
        if keepsBytes { rereads.append((address, again)) }
        return (again, 0, address, consistency)
      }
      return (bytes, offset, address, consistency)
    }
  }

  /// Follows the guest's list of dynamically created locks, bounded and loop-safe.
  private func dynamicLocks(
    head: UInt64, count: UInt64, prefetched: [UInt64: Region], results: [Result<[UInt8], GuestMemoryError>],
    words: (before: [UInt64?], after: [UInt64?]), problems: inout [String]
  ) -> [LockRecord] {
    var locks: [LockRecord] = []
    var seen = Set<UInt64>()
    var address = head
    let size = MemoryLayout<smptop_lock>.size
    let limit = min(Int(clamping: count), maxDynamicLocks)
    while address != 0 && locks.count < limit {
      guard seen.insert(address).inserted else {
        problems.append("dynamic lock list loops at 0x\(hex(address))")
        break
      }
      var record: [UInt8]?
      var consistency = Consistency.consistent
      if let region = prefetched[address] {
        let one = extract(
          region, recordSize: size, results: results, words: words, name: "dynamic lock", problems: &problems)
        if let first = one.first, !first.bytes.isEmpty {
          record = Array(first.bytes[first.offset..<first.offset + size])
          consistency = first.consistency
        }
      }
      if record == nil {
        if memory.isLive {
          let (bytes, c) = retry(address: address, size: size)
          record = bytes
          consistency = c
        } else {
          record = try? memory.read(address, count: size)
          if let record, record.count == size, ABIDecoder.sequence(record, at: 0) & 1 == 1 {
            consistency = .inconsistent(retries: 0)
          }
        }
      }
      guard let record, record.count == size else {
        problems.append("dynamic lock at 0x\(hex(address)) unreadable")
        break
      }
      locks.append(ABIDecoder.lock(record, recordAddress: address, consistency: consistency))
      if keepsBytes { dynamicBytes.append((address, record)) }
      address = ABIDecoder.lockNext(record)
    }
    if address != 0 && locks.count >= limit && UInt64(locks.count) < count {
      problems.append("dynamic lock list longer than \(limit); the rest is not shown")
    }
    knownDynamicLocks = locks.map(\.recordAddress)
    return locks
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
