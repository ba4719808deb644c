/// A range of guest-physical memory to read.
public struct MemoryRange: Sendable, Hashable, Codable {
  /// First guest-physical address.
  public var address: UInt64
  /// Number of bytes.
  public var count: Int

  /// Creates a range.
  public init(address: UInt64, count: Int) {
    self.address = address
    self.count = count
  }

  /// One past the last address, or nil if the range wraps the address space.
  public var end: UInt64? {
    let (sum, overflow) = address.addingReportingOverflow(UInt64(clamping: count))
    return overflow ? nil : sum
  }
}

/// Why guest memory could not be read.
public struct GuestMemoryError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kind of failure.
  public enum Code: Sendable, Equatable {
    /// The range lies (partly) outside guest RAM.
    case outOfRange
    /// The source failed (socket closed, stub error, file vanished).
    case sourceFailed
    /// The range is not in a recording.
    case notRecorded
  }
  /// The kind of failure.
  public var code: Code
  /// The range that was asked for.
  public var range: MemoryRange
  /// What went wrong, for a person.
  public var detail: String

  /// Creates an error.
  public init(_ code: Code, _ range: MemoryRange, _ detail: String) {
    self.code = code
    self.range = range
    self.detail = detail
  }

  public var description: String {
    "cannot read \(range.count) bytes at 0x\(String(range.address, radix: 16)): \(detail)"
  }
}

/// What `GuestMemory.words(_:into:)` stores for a word it cannot read: odd, so no sequence
/// check accepts it.
public let unreadableWord = UInt64.max

/// Guest-physical memory, whatever provides it. The snapshot engine sees only this.
public protocol GuestMemory: AnyObject {
  /// What kind of source this is.
  var kind: MemorySourceKind { get }
  /// True when the guest may be writing while we read (sequence counters must be checked).
  var isLive: Bool { get }
  /// Reads several ranges; implementations batch them (one round trip where they can).
  /// Each element is the bytes of the matching range, or the error for that range.
  func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>]
  /// Reads one 64-bit little-endian word at each address, in order (nil where unreadable).
  /// Live snapshots read every record's sequence counter this way, before and after the records.
  func words(_ addresses: [UInt64]) -> [UInt64?]
  /// Copies the ranges, packed in order, into `buffer` (at least their total size), without
  /// allocating where the source can; returns the ranges that could not be read.
  func copy(_ ranges: [MemoryRange], into buffer: UnsafeMutableRawBufferPointer) -> [(
    index: Int, error: GuestMemoryError
  )]
  /// Reads one word at each address into `values` (resized to match), in order; an unreadable
  /// word reads as `unreadableWord` (odd, so no sequence check ever accepts it).
  func words(_ addresses: [UInt64], into values: inout [UInt64])
}

extension GuestMemory {
  /// Copies through `read`, for sources without a cheaper way.
  public func copy(_ ranges: [MemoryRange], into buffer: UnsafeMutableRawBufferPointer) -> [(
    index: Int, error: GuestMemoryError
  )] {
    var failures: [(index: Int, error: GuestMemoryError)] = []
    let results = read(ranges)
    var offset = 0
    for (i, range) in ranges.enumerated() {
      let count = max(range.count, 0)
      defer { offset += count }
      guard i < results.count else {
        failures.append((i, GuestMemoryError(.sourceFailed, range, "not read")))
        continue
      }
      switch results[i] {
      case .success(let bytes) where bytes.count == count && offset + count <= buffer.count:
        guard let base = buffer.baseAddress else { continue }
        bytes.withUnsafeBytes { source in
          if let from = source.baseAddress { (base + offset).copyMemory(from: from, byteCount: count) }
        }
      case .success(let bytes):
        failures.append((i, GuestMemoryError(.sourceFailed, range, "short read (\(bytes.count) bytes)")))
      case .failure(let error):
        failures.append((i, error))
      }
    }
    return failures
  }

  /// Word reads through `words(_:)`, for sources without a cheaper way.
  public func words(_ addresses: [UInt64], into values: inout [UInt64]) {
    values = words(addresses).map { $0 ?? unreadableWord }
  }

  /// Word reads through `read`, for sources without a cheaper way.
  public func words(_ addresses: [UInt64]) -> [UInt64?] {
    read(addresses.map { MemoryRange(address: $0, count: 8) }).map { result in
      guard case .success(let bytes) = result, bytes.count == 8 else { return nil }
      return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
  }

  /// Reads one range.
  public func read(_ address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
    let range = MemoryRange(address: address, count: count)
    guard let result = read([range]).first else {
      throw GuestMemoryError(.sourceFailed, range, "the source returned nothing")
    }
    return try result.get()
  }
}
