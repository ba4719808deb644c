/// Bounds-checked little-endian reads from an untrusted byte array. Every offset and size that
/// comes from the file goes through here, with overflow checks, so a hostile file yields an
/// `ELFError` instead of a trap.
struct ByteReader: Sendable {
  let bytes: [UInt8]

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  var count: Int { bytes.count }

  /// Checks that `size` bytes starting at `offset` lie inside the file and returns the range.
  func range(offset: UInt64, size: UInt64, what: @autoclosure () -> String) throws(ELFError) -> Range<Int> {
    let (end, overflow) = offset.addingReportingOverflow(size)
    guard !overflow, end <= UInt64(bytes.count) else {
      throw ELFError(
        .truncated,
        "\(what()) (offset 0x\(String(offset, radix: 16)), size 0x\(String(size, radix: 16))) extends past the "
          + "end of the file (0x\(String(bytes.count, radix: 16)) bytes)")
    }
    return Int(offset)..<Int(end)
  }

  /// The product of a count and an entry size, or a `.malformed` error on overflow.
  static func product(_ count: UInt64, _ size: UInt64, what: @autoclosure () -> String) throws(ELFError)
    -> UInt64
  {
    let (total, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow else {
      throw ELFError(.malformed, "\(what()): \(count) entries of \(size) bytes overflow")
    }
    return total
  }

  func u8(_ offset: Int) -> UInt8 { bytes[offset] }

  /// Reads a little-endian integer at `offset`; the caller has checked the range.
  func load<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
    bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
  }

  func u16(_ offset: Int) -> UInt16 { load(offset, as: UInt16.self) }
  func u32(_ offset: Int) -> UInt32 { load(offset, as: UInt32.self) }
  func u64(_ offset: Int) -> UInt64 { load(offset, as: UInt64.self) }

  /// The NUL-terminated string at `offset` inside `table` (a checked range of the file).
  func string(in table: Range<Int>, at offset: UInt64, what: @autoclosure () -> String) throws(ELFError)
    -> String
  {
    guard offset < UInt64(table.count) else {
      throw ELFError(
        .malformed, "\(what()): name offset \(offset) is outside its string table (\(table.count) bytes)")
    }
    let start = table.lowerBound + Int(offset)
    guard let end = bytes[start..<table.upperBound].firstIndex(of: 0) else {
      throw ELFError(.malformed, "\(what()): the name at offset \(offset) is not NUL-terminated")
    }
    return String(decoding: bytes[start..<end], as: UTF8.self)
  }
}
