/// Hexadecimal helpers for the protocol's ASCII encodings.
enum Hex {
  private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

  /// The value of one ASCII hex digit, or nil.
  @inline(__always)
  static func value(of digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit &- UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit &- UInt8(ascii: "a") &+ 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit &- UInt8(ascii: "A") &+ 10
    default: return nil
    }
  }

  /// Two lowercase hex digits for `byte`.
  static func byte(_ byte: UInt8) -> String {
    String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]], as: UTF8.self)
  }

  /// Appends two lowercase hex digits for `byte` to `out`.
  @inline(__always)
  static func append(_ byte: UInt8, to out: inout [UInt8]) {
    out.append(digits[Int(byte >> 4)])
    out.append(digits[Int(byte & 0xf)])
  }

  /// Lowercase hex encoding of `bytes`.
  static func encode(_ bytes: some Sequence<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for b in bytes { append(b, to: &out) }
    return out
  }

  /// Lowercase hex encoding of `bytes` as a string.
  static func string(_ bytes: some Sequence<UInt8>) -> String {
    String(decoding: encode(bytes), as: UTF8.self)
  }

  /// Decodes pairs of hex digits; nil if the length is odd or a digit is invalid.
  static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
    guard text.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(text.count / 2)
    var high: UInt8? = nil
    for c in text {
      guard let v = value(of: c) else { return nil }
      if let h = high {
        out.append(h << 4 | v)
        high = nil
      } else {
        high = v
      }
    }
    return out
  }

  /// Parses a hex number (no prefix) of at most 16 digits; nil if empty or invalid.
  static func number(_ text: some Collection<UInt8>) -> UInt64? {
    guard !text.isEmpty, text.count <= 16 else { return nil }
    var result: UInt64 = 0
    for c in text {
      guard let v = value(of: c) else { return nil }
      result = result << 4 | UInt64(v)
    }
    return result
  }

  /// Parses a hex number given as a string.
  static func number(_ text: some StringProtocol) -> UInt64? { number(Array(text.utf8)) }

  /// The number as lowercase hex without leading zeros.
  static func string(_ value: UInt64) -> String { String(value, radix: 16) }
}
