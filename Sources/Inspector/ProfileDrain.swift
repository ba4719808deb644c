import InspectABI

/// One stack sample an lcpu took of itself in its timer interrupt (`struct smptop_prof_sample`).
public struct ProfileSample: Sendable, Equatable, Codable {
  /// The lcpu whose ring held it (the lcpu that was sampled).
  public var lcpu: UInt32
  /// Its position in that ring.
  public var position: UInt64
  /// Guest TSC when it was taken.
  public var tsc: UInt64
  /// The thread that was running, 0 = the lcpu's idle context.
  public var thread: UInt64
  /// Sampling periods it stands for (1, more when the interrupt came late and skipped deadlines).
  public var periods: UInt64
  /// The lcpu was idle (halted in its idle loop).
  public var idle: Bool
  /// The tick interrupted another interrupt handler.
  public var nested: Bool
  /// The frame chain went on past the frames kept.
  public var truncated: Bool
  /// The interrupted instruction.
  public var rip: UInt64
  /// Return addresses of the frame-pointer chain, innermost first.
  public var frames: [UInt64]

  /// Creates a sample.
  public init(
    lcpu: UInt32, position: UInt64, tsc: UInt64, thread: UInt64, periods: UInt64 = 1, idle: Bool,
    nested: Bool = false, truncated: Bool = false, rip: UInt64, frames: [UInt64]
  ) {
    self.lcpu = lcpu
    self.position = position
    self.tsc = tsc
    self.thread = thread
    self.periods = periods
    self.idle = idle
    self.nested = nested
    self.truncated = truncated
    self.rip = rip
    self.frames = frames
  }

  /// The code addresses to name, outermost first and the interrupted instruction last; a
  /// return address is moved back by one byte into its call instruction, so it names the
  /// calling function and line, not whatever follows the call.
  public var stack: [UInt64] {
    var out: [UInt64] = []
    out.reserveCapacity(frames.count + 1)
    for f in frames.reversed() { out.append(f &- 1) }
    out.append(rip)
    return out
  }
}

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
    return ProfileSample(
      lcpu: ring, position: position, tsc: s.tsc, thread: s.thread, periods: s.periods,
      idle: flags & SMPTOP_PROF_IDLE.rawValue != 0, nested: flags & SMPTOP_PROF_NESTED.rawValue != 0,
      truncated: flags & SMPTOP_PROF_TRUNCATED.rawValue != 0, rip: s.rip, frames: frames)
  }
}
