/// Number and time formatting for dense columns, without Foundation (fast, locale-independent).
public enum Format {
  /// `value` with exactly `decimals` digits after the point ("12.5"); "?" for NaN or infinity.
  public static func fixed(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return "?" }
    let decimals = max(0, min(decimals, 6))
    var scale: Double = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.0e15 else { return value < 0 ? "-huge" : "huge" }
    let n = UInt64(scaled)
    let s = UInt64(scale)
    var out = value < 0 && n != 0 ? "-" : ""
    out += String(n / s)
    if decimals > 0 {
      let frac = String(n % s)
      out += "." + String(repeating: "0", count: decimals - frac.count) + frac
    }
    return out
  }

  /// A count or rate in at most 5 columns, htop style: "7", "2.5", "999", "1.2k", "34k", "3.4M", "1.0G".
  public static func human(_ value: Double) -> String {
    guard value.isFinite else { return "?" }
    if value < 0 { return "-" + human(-value) }
    if value == 0 { return "0" }
    if value < 9.95 && value != value.rounded() { return fixed(value, decimals: 1) }
    if value < 999.5 { return fixed(value, decimals: 0) }
    let units: [(Double, String)] = [(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")]
    for (i, (scale, suffix)) in units.enumerated() {
      let v = value / scale
      if v < 9.95 { return fixed(v, decimals: 1) + suffix }
      if v < 999.5 || i == units.count - 1 { return fixed(v, decimals: 0) + suffix }
    }
    return "huge"
  }

  /// A byte count with binary units: "512B", "3.4K", "128M", "1.0G".
  public static func bytes(_ value: UInt64) -> String {
    if value < 1024 { return "\(value)B" }
    let units = ["K", "M", "G", "T", "P", "E"]
    var v = Double(value) / 1024
    for (i, suffix) in units.enumerated() {
      if v < 9.95 { return fixed(v, decimals: 1) + suffix }
      if v < 1023.5 || i == units.count - 1 { return fixed(v, decimals: 0) + suffix }
      v /= 1024
    }
    return "huge"
  }

  /// A duration in at most 6 columns: "850ns", "12µs", "1.2ms", "3.40s", "12.3s", "5m03s", "1h02m", "3d04h".
  public static func duration(seconds: Double, micro: String = "µs") -> String {
    guard seconds.isFinite else { return "?" }
    if seconds < 0 { return "-" + duration(seconds: -seconds, micro: micro) }
    if seconds < 1e-6 { return fixed(seconds * 1e9, decimals: 0) + "ns" }
    if seconds < 9.95e-6 { return fixed(seconds * 1e6, decimals: 1) + micro }
    if seconds < 999.5e-6 { return fixed(seconds * 1e6, decimals: 0) + micro }
    if seconds < 9.995e-3 { return fixed(seconds * 1e3, decimals: 2) + "ms" }
    if seconds < 99.95e-3 { return fixed(seconds * 1e3, decimals: 1) + "ms" }
    if seconds < 999.5e-3 { return fixed(seconds * 1e3, decimals: 0) + "ms" }
    if seconds < 9.995 { return fixed(seconds, decimals: 2) + "s" }
    if seconds < 59.95 { return fixed(seconds, decimals: 1) + "s" }
    let total = UInt64(min(seconds, 9.0e15).rounded(.down))
    if total < 3600 { return "\(total / 60)m" + pad2(total % 60) + "s" }
    if total < 86400 { return "\(total / 3600)h" + pad2(total / 60 % 60) + "m" }
    return "\(total / 86400)d" + pad2(total / 3600 % 24) + "h"
  }

  /// Time until a deadline in at most 11 columns: "1.49ms", or "late 78.6ms" once it has passed.
  public static func due(seconds: Double, micro: String = "µs") -> String {
    guard seconds.isFinite else { return "?" }
    return seconds < 0
      ? "late " + duration(seconds: -seconds, micro: micro) : duration(seconds: seconds, micro: micro)
  }

  /// An uptime like htop's: "00:12:34", "1 day, 02:03:04".
  public static func uptime(seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let total = UInt64(min(seconds, 9.0e15).rounded(.down))
    let days = total / 86400
    let clock = pad2(total / 3600 % 24) + ":" + pad2(total / 60 % 60) + ":" + pad2(total % 60)
    if days == 0 { return clock }
    return "\(days) day\(days == 1 ? "" : "s"), " + clock
  }

  /// Lower-case hexadecimal, zero-padded to `digits`.
  public static func hex(_ value: UInt64, digits: Int = 16) -> String {
    let s = String(value, radix: 16)
    return s.count >= digits ? s : String(repeating: "0", count: digits - s.count) + s
  }

  /// An address as "0x…" without padding, the way symbol+offset fallbacks read.
  public static func address(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

  /// Two digits, zero-padded.
  static func pad2(_ v: UInt64) -> String { v < 10 ? "0\(v)" : "\(v)" }
}
