import InspectABI

/// What one read of a ring table produced: the new records, what was lost, what was wrong.
public struct RingOutput<Record: Sendable>: Sendable {
  /// New records, each ring's in position order (rings one after another).
  public var records: [Record] = []
  /// Records lost to overwriting (or found torn) since the previous read, per ring lcpu.
  public var lost: [UInt32: UInt64] = [:]
  /// Rings that could not be read or hold garbage, described.
  public var problems: [TraceProblem] = []

  /// Creates an empty output.
  public init() {}
}

/// Reads one table of per-lcpu overwrite-oldest rings (`struct smptop_trace_ring` headers: the
/// trace rings of table 9, the profile rings of table 10) out of guest memory without stopping
/// the guest. Keeps each ring's read position; every read returns the records written since the
/// last, counts what the guest overwrote before it was read, and never decodes a slot whose
/// sequence word (a record's first 64-bit word) does not match its position + 1.
public struct RingReader: Sendable {
  /// Most slots a ring may claim (a garbage capacity cannot make the reader allocate gigabytes).
  public static let maxCapacity: UInt64 = 1 << 20
  /// Most bytes a ring's records may span.
  public static let maxRingBytes: UInt64 = 64 << 20
  /// Most bytes one record may take.
  public static let maxStride: UInt64 = 4096
  /// Bytes of one ring header.
  public static let ringSize = MemoryLayout<smptop_trace_ring>.size

  /// The root's table slot the rings are listed in.
  public let table: Int
  /// Bytes of one record as this reader decodes it (a ring's stride may not be smaller).
  public let recordSize: Int
  /// The next position to read, per ring lcpu (absent = not seen yet).
  public var positions: [UInt32: UInt64] = [:]
  /// Where a ring seen for the first time starts: at its oldest record still held, or at its head.
  public var startAtOldest: Bool

  /// Creates a reader of the rings in table slot `table` holding records of `recordSize` bytes.
  public init(table: Int, recordSize: Int, startAtOldest: Bool) {
    self.table = table
    self.recordSize = recordSize
    self.startAtOldest = startAtOldest
  }

  /// Reads and decodes the ABI root at `address`, or says why it could not.
  public static func root(_ memory: any GuestMemory, at address: UInt64) -> Result<smptop_root, TraceProblem>
  {
    let bytes: [UInt8]
    do {
      bytes = try memory.read(address, count: ABIDecoder.rootSize)
    } catch {
      return .failure(TraceProblem(ring: SMPTOP_NO_LCPU, "cannot read the ABI root: \(error)"))
    }
    let root: smptop_root
    do { root = try ABIDecoder.decodeRoot(bytes, at: address) } catch {
      return .failure(TraceProblem(ring: SMPTOP_NO_LCPU, error.message))
    }
    return .success(root)
  }

  /// Whether `root` lists any ring in this reader's table slot.
  public func present(in root: smptop_root) -> Bool {
    if case .success(let t) = ABIDecoder.table(root, kind: table, recordSize: Self.ringSize) {
      return t.count > 0
    }
    return false
  }

  /// Reads every ring of the table once. `decode` turns the bytes of one record (at `offset`
  /// of the buffer, whose sequence word matched position + 1) of ring `ring` at `position`
  /// into a record, or nil when they are garbage (counted as torn).
  public mutating func read<Record: Sendable>(
    _ root: smptop_root, _ memory: any GuestMemory,
    decode: (_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ position: UInt64, _ ring: UInt32) -> Record?
  ) -> RingOutput<Record> {
    var output = RingOutput<Record>()
    let location: TableLocation
    switch ABIDecoder.table(root, kind: table, recordSize: Self.ringSize) {
    case .success(let t): location = t
    case .failure(let e):
      if !e.absent { output.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, e.reason)) }
      return output
    }
    guard location.count > 0 else { return output }
    let headers: [UInt8]
    do { headers = try memory.read(location.address, count: location.count * location.stride) } catch {
      output.problems.append(TraceProblem(ring: SMPTOP_NO_LCPU, "cannot read the ring headers: \(error)"))
      return output
    }
    // Positions are kept per lcpu: a second ring claiming an lcpu is garbage, not read.
    var claimed = Set<UInt32>()
    for i in 0..<location.count {
      let header = ABIDecoder.load(smptop_trace_ring.self, from: headers, at: i * location.stride)
      guard claimed.insert(header.lcpu).inserted else {
        output.problems.append(
          TraceProblem(
            ring: header.lcpu, "ring slot \(i) claims an lcpu an earlier ring has: garbage, skipped"))
        continue
      }
      let headAddress = location.address &+ UInt64(i * location.stride)
      readRing(header, headAddress: headAddress, memory, into: &output, decode: decode)
    }
    return output
  }

  /// Reads one ring's new records.
  mutating func readRing<Record: Sendable>(
    _ header: smptop_trace_ring, headAddress: UInt64, _ memory: any GuestMemory,
    into output: inout RingOutput<Record>,
    decode: (UnsafeRawBufferPointer, Int, UInt64, UInt32) -> Record?
  ) {
    let lcpu = header.lcpu
    let capacity = UInt64(header.capacity)
    if capacity == 0 { return }  // no ring memory on that lcpu: nothing recorded
    guard capacity <= Self.maxCapacity, capacity & (capacity - 1) == 0 else {
      output.problems.append(
        TraceProblem(ring: lcpu, "capacity \(capacity) is not a power of two up to \(Self.maxCapacity)"))
      return
    }
    guard header.stride >= UInt64(recordSize), header.stride <= Self.maxStride else {
      output.problems.append(
        TraceProblem(ring: lcpu, "record stride \(header.stride) is not \(recordSize)...\(Self.maxStride)"))
      return
    }
    let stride = Int(header.stride)
    guard capacity * UInt64(stride) <= Self.maxRingBytes else {
      output.problems.append(
        TraceProblem(ring: lcpu, "\(capacity) records of \(stride) bytes exceed \(Self.maxRingBytes) bytes"))
      return
    }
    guard header.records != 0,
      !header.records.addingReportingOverflow(capacity * UInt64(stride)).overflow
    else {
      output.problems.append(TraceProblem(ring: lcpu, "record array at 0x\(hex(header.records)) is invalid"))
      return
    }
    // The head as of now (an acquire load: every record below it is complete).
    guard let head = memory.words([headAddress]).first ?? nil else {
      output.problems.append(TraceProblem(ring: lcpu, "cannot read the head"))
      return
    }
    let oldest = head > capacity ? head - capacity : 0
    guard var from = positions[lcpu] else {
      positions[lcpu] = startAtOldest ? oldest : head
      if startAtOldest { readRing(header, headAddress: headAddress, memory, into: &output, decode: decode) }
      return
    }
    if head < from {
      output.problems.append(
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
        output.problems.append(TraceProblem(ring: lcpu, "cannot read records: \(error)"))
        return
      }
    }
    guard bytes.count == count * stride else {
      output.problems.append(TraceProblem(ring: lcpu, "short read of the records"))
      return
    }
    let after = (memory.words([headAddress]).first ?? nil) ?? head
    if after < head {
      output.problems.append(
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
    output.records.reserveCapacity(output.records.count + count)
    bytes.withUnsafeBytes { raw in
      for k in 0..<count {
        let p = from + UInt64(k)
        if p < safeFrom {
          lost &+= 1
          continue
        }
        let seq = raw.loadUnaligned(fromByteOffset: k * stride, as: UInt64.self)
        guard seq == p &+ 1, let record = decode(raw, k * stride, p, lcpu) else {
          torn &+= 1
          continue
        }
        output.records.append(record)
      }
    }
    if torn > 0 {
      output.problems.append(
        TraceProblem(
          ring: lcpu, "\(torn) record(s) below the head do not match their position (torn or garbage)"))
      lost &+= torn
    }
    if lost > 0 { output.lost[lcpu, default: 0] &+= lost }
    positions[lcpu] = head
  }
}
