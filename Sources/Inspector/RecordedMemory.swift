import Foundation

/// Trace events drained from the guest's rings while one frame was recorded.
public struct RecordedTrace: Sendable, Equatable {
  /// The events drained since the previous frame, each ring's in position order.
  public var events: [TraceEvent]
  /// Records lost to overwriting (or found torn) since the previous frame, per ring lcpu.
  public var lost: [UInt32: UInt64]
  /// The classes the guest traced (the control word) at the last drain.
  public var enabled: TraceClasses
  /// The guest's TSC counts per millisecond.
  public var tscPerMs: UInt64

  /// Creates a frame's trace.
  public init(
    events: [TraceEvent] = [], lost: [UInt32: UInt64] = [:], enabled: TraceClasses = [], tscPerMs: UInt64 = 0
  ) {
    self.events = events
    self.lost = lost
    self.enabled = enabled
    self.tscPerMs = tscPerMs
  }

  /// Adds a drain's batch.
  public mutating func add(_ batch: TraceBatch, tscPerMs: UInt64) {
    events += batch.events
    for (ring, n) in batch.lost { lost[ring, default: 0] &+= n }
    enabled = batch.enabled
    if tscPerMs != 0 { self.tscPerMs = tscPerMs }
  }

  /// Records lost in all rings.
  public var totalLost: UInt64 { lost.values.reduce(0, &+) }
}

/// Guest memory captured earlier: frames of (address, bytes) ranges, replayed one frame at a time.
///
/// File format (little-endian): an 8-byte magic, then frames. A frame is the tag `FRAM`, a
/// UInt32 range count, a UInt64 capture time in nanoseconds, then for each range a UInt64
/// address, a UInt32 length and that many bytes.
///
/// Format 2 (magic `SMPTREC2`) may follow a frame with its trace: the tag `TRCE`, UInt64 TSC
/// counts per millisecond, UInt64 enabled classes, a UInt32 count of (UInt32 ring, UInt64 lost)
/// pairs, a UInt32 event count, then per event UInt32 ring, UInt64 position, UInt64 TSC, UInt16
/// kind, UInt32 lcpu and UInt64 object, arg, arg2 and site (58 bytes). Format 1 (`SMPTREC1`)
/// has frames only: it replays without a trace.
public final class RecordedMemory: GuestMemory {
  public let kind = MemorySourceKind.recording
  public let isLive = false
  /// One captured frame.
  public struct Frame: Sendable, Equatable {
    /// When it was captured (nanoseconds, the recorder's clock).
    public var timeNanoseconds: UInt64
    /// The captured ranges, in capture order.
    public var ranges: [(address: UInt64, bytes: [UInt8])]
    /// The trace drained up to this frame (nil: none recorded, e.g. a format-1 recording).
    public var trace: RecordedTrace?

    /// Creates a frame.
    public init(
      timeNanoseconds: UInt64, ranges: [(address: UInt64, bytes: [UInt8])], trace: RecordedTrace? = nil
    ) {
      self.timeNanoseconds = timeNanoseconds
      self.ranges = ranges
      self.trace = trace
    }

    public static func == (a: Frame, b: Frame) -> Bool {
      a.timeNanoseconds == b.timeNanoseconds && a.ranges.count == b.ranges.count
        && zip(a.ranges, b.ranges).allSatisfy { $0.address == $1.address && $0.bytes == $1.bytes }
        && a.trace == b.trace
    }
  }

  /// The magic of format 1 (frames only).
  static let magicV1 = Array("SMPTREC1".utf8)
  /// The magic of format 2 (frames, each optionally followed by its trace).
  static let magic = Array("SMPTREC2".utf8)
  /// Bytes of one encoded trace event.
  static let traceEventSize = 58
  /// Frames in the recording.
  public let frames: [Frame]
  /// The file format's version (1: no trace; 2: frames may carry their trace).
  public let formatVersion: Int
  /// The frame reads come from.
  public private(set) var current = 0
  /// The latest frame a snapshot was taken from (-1 before the first).
  public private(set) var played = -1

  /// A recording held in memory.
  public init(frames: [Frame], formatVersion: Int = 2) {
    self.frames = frames
    self.formatVersion = formatVersion
  }

  /// Loads a recording file, refusing malformed input with a clear message.
  public convenience init(path: String) throws(GuestMemoryError) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw GuestMemoryError(
        .sourceFailed, MemoryRange(address: 0, count: 0), "cannot read recording \(path)")
    }
    let file = try Self.decodeFile(Array(data))
    self.init(frames: file.frames, formatVersion: file.version)
  }

  /// Whether the recording carries a trace (format 2 with at least one frame's trace).
  public var hasTrace: Bool { frames.contains { $0.trace != nil } }

  /// Notes that a snapshot was taken from the current frame (the replayed timeline shows the
  /// trace up to it).
  public func markPlayed() { played = max(played, current) }

  /// Moves to the next frame; false at the end.
  @discardableResult public func advance() -> Bool {
    guard current + 1 < frames.count else { return false }
    current += 1
    return true
  }

  /// Every frame's trace, concatenated (nil when no frame carries one).
  public var trace: RecordedTrace? {
    guard hasTrace else { return nil }
    var all = RecordedTrace()
    for case let t? in frames.map(\.trace) {
      all.events += t.events
      for (ring, n) in t.lost { all.lost[ring, default: 0] &+= n }
      all.enabled = t.enabled
      if t.tscPerMs != 0 { all.tscPerMs = t.tscPerMs }
    }
    return all
  }

  public func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    guard frames.indices.contains(current) else {
      return ranges.map { .failure(GuestMemoryError(.notRecorded, $0, "the recording is empty")) }
    }
    let frame = frames[current]
    return ranges.map { range in
      guard let end = range.end, range.count >= 0 else {
        return .failure(GuestMemoryError(.outOfRange, range, "invalid range"))
      }
      for captured in frame.ranges {
        let capturedEnd = captured.address + UInt64(captured.bytes.count)
        if range.address >= captured.address && end <= capturedEnd {
          let start = Int(range.address - captured.address)
          return .success(Array(captured.bytes[start..<start + range.count]))
        }
      }
      return .failure(GuestMemoryError(.notRecorded, range, "not in the recording"))
    }
  }

  /// Appends frames to a recording file, writing the magic first when the file is new.
  ///
  /// A format-1 file gets the frames without their traces (that format cannot hold them);
  /// the result says whether the traces were written.
  @discardableResult
  public static func append(_ frames: [Frame], to path: String) throws(GuestMemoryError) -> Bool {
    let none = MemoryRange(address: 0, count: 0)
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: Data(magic)) else {
        throw GuestMemoryError(.sourceFailed, none, "cannot create recording \(path)")
      }
    }
    guard let handle = FileHandle(forUpdatingAtPath: path) else {
      throw GuestMemoryError(.sourceFailed, none, "cannot write recording \(path)")
    }
    defer { try? handle.close() }
    do {
      let head = try handle.read(upToCount: 8).map(Array.init) ?? []
      let version: Int
      if head == magic {
        version = 2
      } else if head == magicV1 {
        version = 1
      } else {
        throw GuestMemoryError(.sourceFailed, none, "\(path) is not an smptop recording (bad magic)")
      }
      let written =
        version == 1 ? frames.map { Frame(timeNanoseconds: $0.timeNanoseconds, ranges: $0.ranges) } : frames
      try handle.seekToEnd()
      try handle.write(contentsOf: Data(encode(written).dropFirst(magic.count)))
      return version == 2
    } catch let error as GuestMemoryError {
      throw error
    } catch {
      throw GuestMemoryError(.sourceFailed, none, "cannot write recording \(path): \(error)")
    }
  }

  /// Serializes frames in the file format above (format 2).
  public static func encode(_ frames: [Frame]) -> [UInt8] {
    var out = magic
    func put<T: FixedWidthInteger>(_ value: T) {
      withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }
    for frame in frames {
      out += Array("FRAM".utf8)
      put(UInt32(frame.ranges.count))
      put(frame.timeNanoseconds)
      for range in frame.ranges {
        put(range.address)
        put(UInt32(range.bytes.count))
        out += range.bytes
      }
      guard let trace = frame.trace else { continue }
      out += Array("TRCE".utf8)
      put(trace.tscPerMs)
      put(trace.enabled.rawValue)
      put(UInt32(trace.lost.count))
      for (ring, n) in trace.lost.sorted(by: { $0.key < $1.key }) {
        put(ring)
        put(n)
      }
      put(UInt32(trace.events.count))
      out.reserveCapacity(out.count + trace.events.count * traceEventSize)
      for e in trace.events {
        put(e.ring)
        put(e.position)
        put(e.tsc)
        put(e.kind.rawValue)
        put(e.lcpu)
        put(e.object)
        put(e.arg)
        put(e.arg2)
        put(e.site)
      }
    }
    return out
  }

  /// Parses the file format (either version), bounding every count by the bytes actually present.
  public static func decode(_ bytes: [UInt8]) throws(GuestMemoryError) -> [Frame] {
    try decodeFile(bytes).frames
  }

  /// Parses the file format: its version and frames.
  public static func decodeFile(_ bytes: [UInt8]) throws(GuestMemoryError) -> (version: Int, frames: [Frame])
  {
    let none = MemoryRange(address: 0, count: 0)
    let version: Int
    if bytes.count >= 8, Array(bytes[0..<8]) == magic {
      version = 2
    } else if bytes.count >= 8, Array(bytes[0..<8]) == magicV1 {
      version = 1
    } else {
      throw GuestMemoryError(.sourceFailed, none, "not an smptop recording (bad magic)")
    }
    var reader = ByteReader(bytes: bytes, offset: 8)
    var frames: [Frame] = []
    while !reader.atEnd {
      let tag = reader.take(4)
      if version == 2, tag == Array("TRCE".utf8), !frames.isEmpty, frames[frames.count - 1].trace == nil {
        frames[frames.count - 1].trace = try decodeTrace(&reader, frame: frames.count - 1)
        continue
      }
      guard tag == Array("FRAM".utf8), let count = reader.u32(), let time = reader.u64() else {
        throw GuestMemoryError(.sourceFailed, none, "recording truncated or corrupt in frame \(frames.count)")
      }
      var ranges: [(address: UInt64, bytes: [UInt8])] = []
      for _ in 0..<count {
        guard let address = reader.u64(), let length = reader.u32(), let data = reader.take(Int(length))
        else {
          throw GuestMemoryError(.sourceFailed, none, "recording truncated in frame \(frames.count)")
        }
        ranges.append((address, data))
      }
      frames.append(Frame(timeNanoseconds: time, ranges: ranges))
    }
    return (version, frames)
  }

  /// Parses one `TRCE` section (after its tag).
  static func decodeTrace(_ reader: inout ByteReader, frame: Int) throws(GuestMemoryError) -> RecordedTrace {
    let none = MemoryRange(address: 0, count: 0)
    func corrupt(_ why: String) -> GuestMemoryError {
      GuestMemoryError(.sourceFailed, none, "recording's trace of frame \(frame): \(why)")
    }
    guard let tscPerMs = reader.u64(), let enabled = reader.u64(), let lostCount = reader.u32() else {
      throw corrupt("truncated header")
    }
    guard Int(lostCount) <= (reader.bytes.count - reader.offset) / 12 else {
      throw corrupt("truncated loss counts")
    }
    var trace = RecordedTrace(enabled: TraceClasses(rawValue: enabled), tscPerMs: tscPerMs)
    for _ in 0..<lostCount {
      guard let ring = reader.u32(), let n = reader.u64() else { throw corrupt("truncated loss counts") }
      trace.lost[ring, default: 0] &+= n
    }
    guard let count = reader.u32(), Int(count) <= (reader.bytes.count - reader.offset) / traceEventSize else {
      throw corrupt("truncated events")
    }
    trace.events.reserveCapacity(Int(count))
    for i in 0..<Int(count) {
      guard let ring = reader.u32(), let position = reader.u64(), let tsc = reader.u64(),
        let rawKind = reader.u16(), let lcpu = reader.u32(), let object = reader.u64(),
        let arg = reader.u64(),
        let arg2 = reader.u64(), let site = reader.u64()
      else { throw corrupt("truncated events") }
      guard let kind = TraceKind(rawValue: rawKind) else {
        throw corrupt("event \(i) has unknown kind \(rawKind)")
      }
      trace.events.append(
        TraceEvent(
          ring: ring, position: position, tsc: tsc, kind: kind, lcpu: lcpu, object: object, arg: arg,
          arg2: arg2,
          site: site))
    }
    return trace
  }
}

/// Reads little-endian integers from a byte array, never past its end.
struct ByteReader {
  let bytes: [UInt8]
  var offset: Int

  var atEnd: Bool { offset >= bytes.count }

  mutating func take(_ count: Int) -> [UInt8]? {
    guard count >= 0, count <= bytes.count - offset else { return nil }
    defer { offset += count }
    return Array(bytes[offset..<offset + count])
  }

  mutating func u16() -> UInt16? { integer(UInt16.self) }

  mutating func u32() -> UInt32? { integer(UInt32.self) }

  mutating func u64() -> UInt64? { integer(UInt64.self) }

  /// A little-endian integer read in place (no intermediate array).
  mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> T? {
    let size = MemoryLayout<T>.size
    guard size <= bytes.count - offset else { return nil }
    let value = bytes.withUnsafeBytes {
      T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    offset += size
    return value
  }
}
