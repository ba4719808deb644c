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

/// Reads the guest's per-lcpu trace rings (table 9) out of guest memory without stopping it,
/// through a RingReader: every drain returns the records written since the last, counts what
/// the guest overwrote before it was read, and never decodes a slot whose sequence word does
/// not match its position.
public struct TraceDrain: Sendable {
  /// Most slots a ring may claim (a garbage capacity cannot make the reader allocate gigabytes).
  public static let maxCapacity = RingReader.maxCapacity
  /// Most bytes a ring's records may span.
  public static let maxRingBytes = RingReader.maxRingBytes
  /// Bytes of one ring header.
  public static let ringSize = RingReader.ringSize
  /// Bytes of one record.
  public static let recordSize = MemoryLayout<smptop_trace_record>.size
  /// Byte offset of the control word in the root.
  public static let controlOffset = MemoryLayout<smptop_root>.offset(of: \smptop_root.trace_control) ?? 0

  /// Address of the ABI root.
  public let rootAddress: UInt64
  /// The ring reader (positions per ring lcpu).
  public var reader: RingReader
  /// Events delivered so far.
  public private(set) var totalEvents: UInt64 = 0
  /// Records lost so far.
  public private(set) var totalLost: UInt64 = 0
  /// The guest's TSC rate, from the root (0 until read).
  public private(set) var tscPerMs: UInt64 = 0

  /// The next position to read, per ring lcpu (absent = not seen yet).
  public var positions: [UInt32: UInt64] {
    get { reader.positions }
    set { reader.positions = newValue }
  }
  /// Where a ring seen for the first time starts: at its oldest record still held, or at its head.
  public var startAtOldest: Bool {
    get { reader.startAtOldest }
    set { reader.startAtOldest = newValue }
  }

  /// Creates a drain for the root at `rootAddress`. With `startAtOldest` false the first drain
  /// only notes where each ring is (no history); with true it returns what the rings still hold.
  public init(rootAddress: UInt64, startAtOldest: Bool = false) {
    self.rootAddress = rootAddress
    reader = RingReader(
      table: Int(SMPTOP_TABLE_TRACE.rawValue), recordSize: Self.recordSize, startAtOldest: startAtOldest)
  }

  /// Reads every ring once.
  public mutating func drain(_ memory: any GuestMemory) -> TraceBatch {
    var batch = TraceBatch()
    let root: smptop_root
    switch RingReader.root(memory, at: rootAddress) {
    case .success(let r): root = r
    case .failure(let problem):
      batch.problems.append(problem)
      return batch
    }
    tscPerMs = root.tsc_per_ms
    batch.enabled = TraceClasses(rawValue: root.trace_control)
    let output = reader.read(root, memory) { raw, offset, position, ring -> TraceEvent? in
      let record = raw.loadUnaligned(fromByteOffset: offset, as: smptop_trace_record.self)
      guard let kind = TraceKind(rawValue: record.kind) else { return nil }
      return TraceEvent(
        ring: ring, position: position, tsc: record.tsc, kind: kind, lcpu: record.lcpu, object: record.object,
        arg: record.arg, arg2: record.arg2, site: record.site)
    }
    batch.events = output.records
    batch.lost = output.lost
    batch.problems += output.problems
    totalEvents &+= UInt64(batch.events.count)
    totalLost &+= batch.totalLost
    return batch
  }

  /// Reads each ring's head now (without records): for a caller that wants to start there.
  public static func heads(_ memory: any GuestMemory, rootAddress: UInt64) -> [UInt32: UInt64] {
    var drain = TraceDrain(rootAddress: rootAddress, startAtOldest: false)
    _ = drain.drain(memory)
    return drain.positions
  }
}
