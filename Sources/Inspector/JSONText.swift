/// JSON text appended to a byte buffer, for exports of millions of trace events.
///
/// `JSONEncoder` builds a tree per value and formats through Foundation: fine for one snapshot,
/// but a trace export writes each event once and must keep up with the guest's production
/// rate. This writer appends the bytes of strings (escaped as RFC 8259 requires), integers and
/// finite doubles straight to one buffer. Callers lay out the objects themselves; the tests
/// parse every export with `JSONSerialization`.
struct JSONText {
  /// The text so far, UTF-8.
  var bytes: [UInt8] = []

  /// Creates an empty buffer with room for `capacity` bytes.
  init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

  /// Appends literal JSON syntax (`{`, `":`, `,` …).
  mutating func raw(_ text: StaticString) {
    text.withUTF8Buffer { bytes.append(contentsOf: $0) }
  }

  /// Appends one byte of JSON syntax.
  mutating func byte(_ b: UInt8) { bytes.append(b) }

  /// Appends `"key":`.
  mutating func key(_ name: StaticString) {
    bytes.append(UInt8(ascii: "\""))
    raw(name)
    raw("\":")
  }

  /// Appends `"key":"value",` when there is a value, nothing otherwise.
  mutating func member(_ name: StaticString, _ value: String?) {
    guard let value else { return }
    key(name)
    string(value)
    byte(UInt8(ascii: ","))
  }

  /// Appends `"key":number,` when there is a value, nothing otherwise.
  mutating func member(_ name: StaticString, _ value: Double?) {
    guard let value else { return }
    key(name)
    number(value)
    byte(UInt8(ascii: ","))
  }

  /// Appends `"key":number,` when there is a value, nothing otherwise.
  mutating func member(_ name: StaticString, _ value: Int?) {
    guard let value else { return }
    key(name)
    number(value)
    byte(UInt8(ascii: ","))
  }

  /// Appends `s` as a JSON string literal: quote, backslash and control characters escaped.
  mutating func string(_ s: String) {
    bytes.append(UInt8(ascii: "\""))
    var s = s
    s.withUTF8 { utf8 in
      guard let base = utf8.baseAddress else { return }
      var start = 0
      for i in 0..<utf8.count {
        let b = base[i]
        guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
        bytes.append(contentsOf: UnsafeBufferPointer(start: base + start, count: i - start))
        start = i + 1
        switch b {
        case UInt8(ascii: "\""): raw("\\\"")
        case UInt8(ascii: "\\"): raw("\\\\")
        case UInt8(ascii: "\n"): raw("\\n")
        case UInt8(ascii: "\r"): raw("\\r")
        case UInt8(ascii: "\t"): raw("\\t")
        default:
          raw("\\u00")
          bytes.append(Self.hexDigit(b >> 4))
          bytes.append(Self.hexDigit(b & 0xf))
        }
      }
      bytes.append(contentsOf: UnsafeBufferPointer(start: base + start, count: utf8.count - start))
    }
    bytes.append(UInt8(ascii: "\""))
  }

  /// Appends an unsigned integer in decimal.
  mutating func number(_ v: UInt64) { bytes.append(contentsOf: String(v).utf8) }

  /// Appends a signed integer in decimal.
  mutating func number(_ v: Int) { bytes.append(contentsOf: String(v).utf8) }

  /// Appends a double as its shortest round-trip decimal; JSON has no NaN or infinity, so those
  /// are written as 0.
  mutating func number(_ v: Double) {
    guard v.isFinite else {
      bytes.append(UInt8(ascii: "0"))
      return
    }
    bytes.append(contentsOf: v.description.utf8)
  }

  /// Appends a double with exactly three decimals (microseconds with nanosecond digits).
  mutating func milli(_ v: Double) {
    guard v.isFinite else {
      bytes.append(UInt8(ascii: "0"))
      return
    }
    let thousandths = (v * 1000).rounded()
    guard thousandths.magnitude < 9e18 else {
      number(v)
      return
    }
    let t = Int64(thousandths)
    if t < 0 { bytes.append(UInt8(ascii: "-")) }
    let m = t.magnitude
    number(m / 1000)
    bytes.append(UInt8(ascii: "."))
    let frac = m % 1000
    bytes.append(UInt8(ascii: "0") + UInt8(frac / 100))
    bytes.append(UInt8(ascii: "0") + UInt8(frac / 10 % 10))
    bytes.append(UInt8(ascii: "0") + UInt8(frac % 10))
  }

  /// Appends `{"k":"v",…}` with the keys sorted (the order `JSONEncoder`'s `.sortedKeys` gives).
  mutating func object(_ fields: [String: String]) {
    bytes.append(UInt8(ascii: "{"))
    var first = true
    for (k, v) in fields.sorted(by: { $0.key < $1.key }) {
      if !first { bytes.append(UInt8(ascii: ",")) }
      first = false
      string(k)
      bytes.append(UInt8(ascii: ":"))
      string(v)
    }
    bytes.append(UInt8(ascii: "}"))
  }

  static func hexDigit(_ v: UInt8) -> UInt8 {
    v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10
  }
}
