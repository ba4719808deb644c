import Foundation

/// Guest memory captured earlier: frames of (address, bytes) ranges, replayed one frame at a time.
///
/// File format (little-endian): the 8-byte magic `SMPTREC1`, then frames. A frame is the tag
/// `FRAM`, a UInt32 range count, a UInt64 capture time in nanoseconds, then for each range a
/// UInt64 address, a UInt32 length and that many bytes.
public final class RecordedMemory: GuestMemory {
  public let kind = MemorySourceKind.recording
  public let isLive = false
  /// One captured frame.
  public struct Frame: Sendable, Equatable {
    /// When it was captured (nanoseconds, the recorder's clock).
    public var timeNanoseconds: UInt64
    /// The captured ranges, in capture order.
    public var ranges: [(address: UInt64, bytes: [UInt8])]

    /// Creates a frame.
    public init(timeNanoseconds: UInt64, ranges: [(address: UInt64, bytes: [UInt8])]) {
      self.timeNanoseconds = timeNanoseconds
      self.ranges = ranges
    }

    public static func == (a: Frame, b: Frame) -> Bool {
      a.timeNanoseconds == b.timeNanoseconds && a.ranges.count == b.ranges.count
        && zip(a.ranges, b.ranges).allSatisfy { $0.address == $1.address && $0.bytes == $1.bytes }
    }
  }

  static let magic = Array("SMPTREC1".utf8)
  /// Frames in the recording.
  public let frames: [Frame]
  /// The frame reads come from.
  public private(set) var current = 0

  /// A recording held in memory.
  public init(frames: [Frame]) {
    self.frames = frames
  }

  /// Loads a recording file, refusing malformed input with a clear message.
  public convenience init(path: String) throws(GuestMemoryError) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw GuestMemoryError(
        .sourceFailed, MemoryRange(address: 0, count: 0), "cannot read recording \(path)")
    }
    try self.init(frames: Self.decode(Array(data)))
  }

  /// Moves to the next frame; false at the end.
  @discardableResult public func advance() -> Bool {
    guard current + 1 < frames.count else { return false }
    current += 1
    return true
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
  public static func append(_ frames: [Frame], to path: String) throws(GuestMemoryError) {
    let none = MemoryRange(address: 0, count: 0)
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: Data(magic)) else {
        throw GuestMemoryError(.sourceFailed, none, "cannot create recording \(path)")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw GuestMemoryError(.sourceFailed, none, "cannot write recording \(path)")
    }
    defer { try? handle.close() }
    do {
      try handle.seekToEnd()
      try handle.write(contentsOf: Data(encode(frames).dropFirst(magic.count)))
    } catch {
      throw GuestMemoryError(.sourceFailed, none, "cannot write recording \(path): \(error)")
    }
  }

  /// Serializes frames in the file format above.
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
    }
    return out
  }

  /// Parses the file format, bounding every count by the bytes actually present.
  public static func decode(_ bytes: [UInt8]) throws(GuestMemoryError) -> [Frame] {
    let none = MemoryRange(address: 0, count: 0)
    guard bytes.count >= 8, Array(bytes[0..<8]) == magic else {
      throw GuestMemoryError(.sourceFailed, none, "not an smptop recording (bad magic)")
    }
    var reader = ByteReader(bytes: bytes, offset: 8)
    var frames: [Frame] = []
    while !reader.atEnd {
      guard let tag = reader.take(4), tag == Array("FRAM".utf8), let count = reader.u32(),
        let time = reader.u64()
      else {
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
    return frames
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

  mutating func u32() -> UInt32? {
    take(4).map { $0.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
  }

  mutating func u64() -> UInt64? {
    take(8).map { $0.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
  }
}
