import InspectABI

/// What one drain of the profile rings produced.
public struct ProfileBatch: Sendable {
  /// New samples, each ring's in position order.
  public var samples: [ProfileSample] = []
  /// Samples lost to overwriting (or torn) since the previous drain, per lcpu.
  public var lost: [UInt32: UInt64] = [:]
  /// Rings that could not be read or hold garbage, described.
  public var problems: [TraceProblem] = []
  /// The guest's sampling rate (root.prof_hz), 0 = profiling off.
  public var hz: UInt64 = 0
  /// Whether the guest publishes profile rings at all (table 10).
  public var present = false

  /// Creates an empty batch.
  public init() {}

  /// Total samples lost in this batch.
  public var totalLost: UInt64 { lost.values.reduce(0, &+) }
}

/// Reads the guest's per-lcpu profile rings (table 10, present when it booted with
/// `prof_hz=N`) live, through the same RingReader as the trace rings.
public struct ProfileDrain: Sendable {
  /// Bytes of one sample record.
  public static let recordSize = MemoryLayout<smptop_prof_sample>.size
  /// Frames a sample can hold.
  public static let maxFrames = Int(SMPTOP_PROF_FRAMES)

  /// Address of the ABI root.
  public let rootAddress: UInt64
  /// The ring reader (positions per ring lcpu).
  public var reader: RingReader
  /// Samples delivered so far.
  public private(set) var totalSamples: UInt64 = 0
  /// Samples lost so far.
  public private(set) var totalLost: UInt64 = 0
  /// Samples lost so far, per lcpu.
  public private(set) var lostPerLCPU: [UInt32: UInt64] = [:]
  /// The guest's TSC rate, from the root (0 until read).
  public private(set) var tscPerMs: UInt64 = 0

  /// Creates a drain for the root at `rootAddress`. With `startAtOldest` false the first drain
  /// only notes where each ring is; with true it returns what the rings still hold.
  public init(rootAddress: UInt64, startAtOldest: Bool = false) {
    self.rootAddress = rootAddress
    reader = RingReader(
      table: Int(SMPTOP_TABLE_PROFILE.rawValue), recordSize: Self.recordSize, startAtOldest: startAtOldest)
  }

  /// Reads every ring once.
  public mutating func drain(_ memory: any GuestMemory) -> ProfileBatch {
    var batch = ProfileBatch()
    let root: smptop_root
    switch RingReader.root(memory, at: rootAddress) {
    case .success(let r): root = r
    case .failure(var problem):
      problem.rings = "profile"
      batch.problems.append(problem)
      return batch
    }
    tscPerMs = root.tsc_per_ms
    batch.hz = root.prof_hz
    batch.present = reader.present(in: root)
    let output = reader.read(root, memory) { raw, offset, position, ring in
      Self.decode(raw, offset, position: position, ring: ring)
    }
    batch.samples = output.records
    batch.lost = output.lost
    batch.problems += output.problems.map { p in
      var p = p
      p.rings = "profile"
      return p
    }
    totalSamples &+= UInt64(batch.samples.count)
    totalLost &+= batch.totalLost
    for (lcpu, n) in batch.lost { lostPerLCPU[lcpu, default: 0] &+= n }
    return batch
  }

  /// Most periods one sample may stand for (the guest caps its catch-up at 1000).
  static let maxPeriods: UInt64 = 1000

  /// Decodes the sample at `offset`, nil when its depth, lcpu or periods are garbage.
  static func decode(_ raw: UnsafeRawBufferPointer, _ offset: Int, position: UInt64, ring: UInt32)
    -> ProfileSample?
  {
    let s = raw.loadUnaligned(fromByteOffset: offset, as: smptop_prof_sample.self)
    let depth = Int(s.depth)
    guard depth <= maxFrames, s.lcpu == ring, s.periods >= 1, s.periods <= maxPeriods else { return nil }
    let framesOffset =
      offset + (MemoryLayout<smptop_prof_sample>.offset(of: \smptop_prof_sample.frames) ?? 40)
    var frames: [UInt64] = []
    frames.reserveCapacity(depth)
    for i in 0..<depth {
      frames.append(raw.loadUnaligned(fromByteOffset: framesOffset + i * 8, as: UInt64.self))
    }
    let flags = UInt32(s.flags)
    let unseen = flags & SMPTOP_PROF_UNSEEN.rawValue != 0
    return ProfileSample(
      lcpu: ring, position: position, tsc: s.tsc, thread: s.thread, periods: s.periods,
      idle: flags & SMPTOP_PROF_IDLE.rawValue != 0, nested: flags & SMPTOP_PROF_NESTED.rawValue != 0,
      truncated: flags & SMPTOP_PROF_TRUNCATED.rawValue != 0, rip: unseen ? 0 : s.rip,
      frames: unseen ? [] : frames, unseen: unseen)
  }
}
