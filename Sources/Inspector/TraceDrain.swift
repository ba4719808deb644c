import InspectABI

/// What one drain of the trace rings produced.
public struct TraceBatch: Sendable, Equatable {
  /// New events, each ring's in position order (rings one after another).
  public var events: [TraceEvent] = []
  /// Records lost to overwriting (or found torn) since the previous drain, per ring lcpu.
  public var lost: [UInt32: UInt64] = [:]
  /// Rings that could not be read or hold garbage, described.
  public var problems: [TraceProblem] = []
  /// The control word as read (the classes being traced).
  public var enabled = TraceClasses()

  /// Creates an empty batch.
  public init() {}

  /// Total records lost in this batch.
  public var totalLost: UInt64 { lost.values.reduce(0, &+) }
}

/// Reads the guest's per-lcpu trace rings (table 9) out of guest memory without stopping it.
/// Keeps each ring's read position; every drain returns the records written since the last,
/// counts what the guest overwrote before it was read, and never decodes a slot whose
/// sequence word does not match its position.
public struct TraceDrain: Sendable {
  /// Most slots a ring may claim (a garbage capacity cannot make the reader allocate gigabytes).
  public static let maxCapacity: UInt64 = 1 << 20
  /// Most bytes a ring's records may span.
  public static let maxRingBytes: UInt64 = 64 << 20
  /// Bytes of one ring header.
  public static let ringSize = MemoryLayout<smptop_trace_ring>.size
  /// Bytes of one record.
  public static let recordSize = MemoryLayout<smptop_trace_record>.size
  /// Byte offset of the control word in the root.
  public static let controlOffset = MemoryLayout<smptop_root>.offset(of: \smptop_root.trace_control) ?? 0

  /// Address of the ABI root.
  public let rootAddress: UInt64
  /// The next position to read, per ring lcpu (absent = not seen yet).
  public var positions: [UInt32: UInt64] = [:]
  /// Where a ring seen for the first time starts: at its oldest record still held, or at its head.
  public var startAtOldest: Bool
  /// Events delivered so far.
  public private(set) var totalEvents: UInt64 = 0
  /// Records lost so far.
  public private(set) var totalLost: UInt64 = 0
  /// The guest's TSC rate, from the root (0 until read).
  public private(set) var tscPerMs: UInt64 = 0

  /// Creates a drain for the root at `rootAddress`. With `startAtOldest` false the first drain
  /// only notes where each ring is (no history); with true it returns what the rings still hold.
  public init(rootAddress: UInt64, startAtOldest: Bool = false) {
    self.rootAddress = rootAddress
    self.startAtOldest = startAtOldest
  }

  /// Reads every ring once.
  public mutating func drain(_ memory: any GuestMemory) -> TraceBatch {
    var batch = TraceBatch()
    let rootBytes: [UInt8]
    do {
      rootBytes = try memory.read(rootAddress, count: ABIDecoder.rootSize)
    } catch {
      batch.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, "cannot read the ABI root: \(error)"))
      return batch
    }
    let root: smptop_root
    do { root = try ABIDecoder.decodeRoot(rootBytes, at: rootAddress) } catch {
      batch.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, error.message))
      return batch
    }
    tscPerMs = root.tsc_per_ms
    batch.enabled = TraceClasses(rawValue: root.trace_control)
    let table: TableLocation
    switch ABIDecoder.table(root, kind: Int(SMPTOP_TABLE_TRACE.rawValue), recordSize: Self.ringSize) {
    case .success(let t): table = t
    case .failure(let e):
      if !e.absent { batch.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, e.reason)) }
      return batch
    }
    guard table.count > 0 else { return batch }
    let headers: [UInt8]
    do { headers = try memory.read(table.address, count: table.count * table.stride) } catch {
      batch.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, "cannot read the ring headers: \(error)"))
      return batch
    }
    // Positions are kept per lcpu: a second ring claiming an lcpu is garbage, not read.
    var claimed = Set<UInt32>()
    for i in 0..<table.count {
      let header = ABIDecoder.load(smptop_trace_ring.self, from: headers, at: i * table.stride)
      guard claimed.insert(header.lcpu).inserted else {
        batch.problems.append(
          TraceProblem(
            ring: header.lcpu, "ring slot \(i) claims an lcpu an earlier ring has: garbage, skipped"))
        continue
      }
      let headAddress = table.address &+ UInt64(i * table.stride)
      drainRing(header, headAddress: headAddress, memory, into: &batch)
    }
    totalEvents &+= UInt64(batch.events.count)
    totalLost &+= batch.totalLost
    return batch
  }

  /// Reads one ring's new records.
  mutating func drainRing(
    _ header: smptop_trace_ring, headAddress: UInt64, _ memory: any GuestMemory, into batch: inout TraceBatch
  ) {
    let lcpu = header.lcpu
    let capacity = UInt64(header.capacity)
    if capacity == 0 { return }  // no ring memory on that lcpu: nothing recorded
    guard capacity <= Self.maxCapacity, capacity & (capacity - 1) == 0 else {
      batch.problems.append(
        TraceProblem(ring: lcpu, "capacity \(capacity) is not a power of two up to \(Self.maxCapacity)"))
      return
    }
    guard header.stride >= UInt64(Self.recordSize), header.stride <= 4096 else {
      batch.problems.append(
        TraceProblem(ring: lcpu, "record stride \(header.stride) is not \(Self.recordSize)...4096"))
      return
    }
    let stride = Int(header.stride)
    guard capacity * UInt64(stride) <= Self.maxRingBytes else {
      batch.problems.append(
        TraceProblem(ring: lcpu, "\(capacity) records of \(stride) bytes exceed \(Self.maxRingBytes) bytes"))
      return
    }
    guard header.records != 0,
      !header.records.addingReportingOverflow(capacity * UInt64(stride)).overflow
    else {
      batch.problems.append(TraceProblem(ring: lcpu, "record array at 0x\(hex(header.records)) is invalid"))
      return
    }
    // The head as of now (an acquire load: every record below it is complete).
    guard let head = memory.words([headAddress]).first ?? nil else {
      batch.problems.append(TraceProblem(ring: lcpu, "cannot read the head"))
      return
    }
    let oldest = head > capacity ? head - capacity : 0
    guard var from = positions[lcpu] else {
      positions[lcpu] = startAtOldest ? oldest : head
      if startAtOldest { drainRing(header, headAddress: headAddress, memory, into: &batch) }
      return
    }
    if head < from {
      batch.problems.append(
        TraceProblem(
          ring: lcpu, "head went backwards from \(from) to \(head): garbage head; restarting there"))
      positions[lcpu] = head
      return
    }
    if head == from { return }
    var lost: UInt64 = 0
    if from < oldest {
      lost &+= oldest - from
      from = oldest
    }
    // Copy [from, head) in at most two pieces (the ring wraps), then read the head again:
    // a slot the writer may have reused during the copy is lost, not decoded.
    let count = Int(head - from)
    var ranges: [MemoryRange] = []
    var position = from
    while position < head {
      let slot = position & (capacity - 1)
      let run = min(head - position, capacity - slot)
      ranges.append(MemoryRange(address: header.records &+ slot * UInt64(stride), count: Int(run) * stride))
      position += run
    }
    var bytes: [UInt8] = []
    for result in memory.read(ranges) {
      switch result {
      case .success(let piece): if bytes.isEmpty { bytes = piece } else { bytes += piece }
      case .failure(let error):
        batch.problems.append(TraceProblem(ring: lcpu, "cannot read records: \(error)"))
        return
      }
    }
    guard bytes.count == count * stride else {
      batch.problems.append(TraceProblem(ring: lcpu, "short read of the records"))
      return
    }
    let after = (memory.words([headAddress]).first ?? nil) ?? head
    if after < head {
      batch.problems.append(
        TraceProblem(ring: lcpu, "head went backwards from \(head) to \(after) during a read: garbage head"))
      positions[lcpu] = after
      return
    }
    // Live, the writer may be rewriting the slot of position `after - capacity` right now, and
    // every position below it was rewritten while we copied; a frozen image has no writer.
    let overlap: UInt64 = memory.isLive ? 1 : 0
    // (after + overlap - capacity, without overflowing at a garbage head near 2^64.)
    let safeFrom = after > capacity - overlap ? after - (capacity - overlap) : 0
    var torn: UInt64 = 0
    batch.events.reserveCapacity(batch.events.count + count)
    bytes.withUnsafeBytes { raw in
      for k in 0..<count {
        let p = from + UInt64(k)
        if p < safeFrom {
          lost &+= 1
          continue
        }
        let record = raw.loadUnaligned(fromByteOffset: k * stride, as: smptop_trace_record.self)
        guard record.seq == p &+ 1, let kind = TraceKind(rawValue: record.kind) else {
          torn &+= 1
          continue
        }
        batch.events.append(
          TraceEvent(
            ring: lcpu, position: p, tsc: record.tsc, kind: kind, lcpu: record.lcpu, object: record.object,
            arg: record.arg, arg2: record.arg2, site: record.site))
      }
    }
    if torn > 0 {
      batch.problems.append(
        TraceProblem(
          ring: lcpu, "\(torn) record(s) below the head do not match their position (torn or garbage)"))
      lost &+= torn
    }
    if lost > 0 { batch.lost[lcpu, default: 0] &+= lost }
    positions[lcpu] = head
  }

  /// Reads each ring's head now (without records): for a caller that wants to start there.
  public static func heads(_ memory: any GuestMemory, rootAddress: UInt64) -> [UInt32: UInt64] {
    var drain = TraceDrain(rootAddress: rootAddress, startAtOldest: false)
    _ = drain.drain(memory)
    return drain.positions
  }
}
