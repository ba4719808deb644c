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
}

extension GuestMemory {
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
