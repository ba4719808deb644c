import InspectABI

#if canImport(Glibc)
  import Glibc
#endif

/// Turns guest memory into typed `Snapshot`s.
///
/// It finds the ABI root at a known address (the ELF symbol `smptop_root`), remembers where
/// the tables are, and reads root and tables in one batched request per snapshot. On a live
/// source every guarded record is read between two reads of its sequence counter and retried
/// a bounded number of times; what stays torn is marked `.inconsistent`, never trusted.
public final class SnapshotEngine {
  /// Where the bytes come from.
  public let memory: any GuestMemory
  /// Guest-physical address of `smptop_root`.
  public let rootAddress: UInt64
  /// Re-reads of a torn record before it is marked inconsistent.
  public var retries = 16
  /// Where the lcpu table was last seen (from the root), so the next snapshot batches it.
  private var lcpuTable: TableLocation?

  /// An engine over `memory` with the root at `rootAddress`.
  public init(memory: any GuestMemory, rootAddress: UInt64) {
    self.memory = memory
    self.rootAddress = rootAddress
  }

  /// The ranges one snapshot reads: the root and, once known, the lcpu table.
  public var modelRanges: [MemoryRange] {
    [MemoryRange(address: rootAddress, count: ABIDecoder.rootSize)] + (lcpuTable.map { [$0.range] } ?? [])
  }

  /// Takes one snapshot. Throws only when the ABI is absent, unpublished or of another version.
  public func snapshot() throws(ABIError) -> Snapshot {
    let start = monotonicNanoseconds()
    var problems: [String] = []
    let rootRange = MemoryRange(address: rootAddress, count: ABIDecoder.rootSize)

    // One batch: the root, plus the lcpu table where we last saw it.
    var ranges = [rootRange]
    var guarded: [MemoryRange] = []
    if let table = lcpuTable {
      guarded = sequenceRanges(table)
      ranges += memory.isLive ? guarded + [table.range] + guarded : [table.range]
    }
    var results = memory.read(ranges)
    guard case .success(let rootBytes)? = results.first else {
      let reason = results.first.map { r -> String in
        if case .failure(let e) = r { return e.description }
        return ""
      } ?? "no data"
      throw ABIError(code: .unreadableRoot, message: "cannot read the ABI root: \(reason)")
    }
    let root = try ABIDecoder.decodeRoot(rootBytes, at: rootAddress)
    let guest = ABIDecoder.guestInfo(root)

    var lcpus: [LCPURecord] = []
    switch ABIDecoder.table(root, kind: Int(SMPTOP_TABLE_LCPU.rawValue), recordSize: ABIDecoder.lcpuSize) {
    case .failure(let error):
      problems.append("lcpu table: \(error.reason)")
      lcpuTable = nil
    case .success(let table):
      if table != lcpuTable {
        // First snapshot, or the guest moved its table: read it now.
        lcpuTable = table
        guarded = sequenceRanges(table)
        results = [results[0]] + memory.read(memory.isLive ? guarded + [table.range] + guarded : [table.range])
      }
      lcpus = decodeLCPUs(table, results: Array(results.dropFirst()), problems: &problems)
    }
    return Snapshot(
      timeNanoseconds: start, source: memory.kind, guest: guest, lcpus: lcpus, problems: problems,
      costNanoseconds: monotonicNanoseconds() - start)
  }

  /// The sequence word of every record in a table.
  private func sequenceRanges(_ table: TableLocation) -> [MemoryRange] {
    (0..<table.count).map { MemoryRange(address: table.address + UInt64($0 * table.stride), count: 8) }
  }

  /// Decodes the lcpu table from a batch laid out as [seq…] table [seq…] (live) or table.
  private func decodeLCPUs(
    _ table: TableLocation, results: [Result<[UInt8], GuestMemoryError>], problems: inout [String]
  ) -> [LCPURecord] {
    let live = memory.isLive
    let tableIndex = live ? table.count : 0
    guard results.indices.contains(tableIndex), case .success(let bytes) = results[tableIndex],
      bytes.count == table.byteCount
    else {
      let why = results.indices.contains(tableIndex) ? describe(results[tableIndex]) : "not read"
      problems.append("lcpu table at 0x\(hex(table.address)): \(why)")
      return (0..<table.count).map { placeholder(index: $0, reason: why) }
    }
    return (0..<table.count).map { i in
      let offset = i * table.stride
      guard live else { return ABIDecoder.lcpu(bytes, at: offset, consistency: .consistent) }
      let before = sequenceValue(results[i])
      let after = sequenceValue(results[table.count + 1 + i])
      if let before, before & 1 == 0, before == after, ABIDecoder.sequence(bytes, at: offset) == before {
        return ABIDecoder.lcpu(bytes, at: offset, consistency: .consistent)
      }
      return retryRecord(address: table.address + UInt64(offset), size: ABIDecoder.lcpuSize, index: i)
    }
  }

  /// Re-reads one torn record until its sequence counter is even and stable, or gives up.
  private func retryRecord(address: UInt64, size: Int, index: Int) -> LCPURecord {
    let seq = MemoryRange(address: address, count: 8)
    let body = MemoryRange(address: address, count: size)
    var last: [UInt8]?
    for _ in 1...max(1, retries) {
      let r = memory.read([seq, body, seq])
      guard r.count == 3, case .success(let bytes) = r[1], bytes.count == size else {
        return placeholder(index: index, reason: describe(r.count == 3 ? r[1] : .success([])))
      }
      last = bytes
      if let before = sequenceValue(r[0]), before & 1 == 0, before == sequenceValue(r[2]),
        ABIDecoder.sequence(bytes, at: 0) == before
      {
        return ABIDecoder.lcpu(bytes, at: 0, consistency: .consistent)
      }
      sched_yield()
    }
    guard let last else { return placeholder(index: index, reason: "not read") }
    return ABIDecoder.lcpu(last, at: 0, consistency: .inconsistent(retries: retries))
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

  /// A record that could not be read: index known, everything else zero, marked unreadable.
  private func placeholder(index: Int, reason: String) -> LCPURecord {
    LCPURecord(
      index: UInt32(index), apicID: 0, state: .unknown, rawState: 0, busyDepth: 0, errorCode: 0,
      stateSinceTSC: 0, irqTimer: 0, irqIPI: 0, irqDevice: 0, irqSpurious: 0, ipiSent: 0, ipiReceived: 0,
      remoteCalls: 0, ticks: 0, cyclesIdle: 0, cyclesBusy: 0, currentThread: 0, nextDeadlineTSC: 0,
      lastTickRIP: 0, lastTickTSC: 0, stackBottom: 0, stackTop: 0, workLoops: 0, panic: nil,
      consistency: .unreadable(reason: reason))
  }
}

/// Nanoseconds on the monotonic clock.
public func monotonicNanoseconds() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
