/// Which characters the terminal can show: Unicode when the locale is UTF-8, ASCII otherwise (LANG=C).
public enum Charset: String, Sendable, Codable, CaseIterable {
  /// Box drawing, block meters, µ and arrows.
  case unicode
  /// Only 7-bit ASCII: `+-|` boxes, `|` meters, `us` for microseconds.
  case ascii

  /// The glyph set for this charset.
  public var glyphs: Glyphs { self == .unicode ? .unicode : .ascii }
}

/// The characters views draw with, so one renderer serves UTF-8 and ASCII terminals.
public struct Glyphs: Sendable, Equatable {
  /// Box corners and lines.
  public var topLeft, topRight, bottomLeft, bottomRight, horizontal, vertical: Unicode.Scalar
  /// The full meter cell.
  public var meterFull: Unicode.Scalar
  /// Partial meter cells, 1/8 to 7/8 (empty for ASCII: no partial cells).
  public var meterEighths: [Unicode.Scalar]
  /// Marks a string cut to fit.
  public var ellipsis: Unicode.Scalar
  /// Separates header segments.
  public var separator: String
  /// The microsecond unit.
  public var micro: String
  /// Sort direction arrows.
  public var up, down: String
  /// Marks the current line (disassembly, backtrace).
  public var pointer: String
  /// Stands for a value not known yet (a rate before the second snapshot).
  public var unknown: String = "-"
  /// Column heights from empty to full, for histograms.
  public var levels: [Unicode.Scalar] = [" ", ".", ":", "-", "=", "+", "*", "#"]

  /// UTF-8 terminals.
  public static let unicode = Glyphs(
    topLeft: "┌", topRight: "┐", bottomLeft: "└", bottomRight: "┘", horizontal: "─", vertical: "│",
    meterFull: "█", meterEighths: ["▏", "▎", "▍", "▌", "▋", "▊", "▉"], ellipsis: "…", separator: " │ ",
    micro: "µs", up: "↑", down: "↓", pointer: "▶", unknown: "—",
    levels: [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"])

  /// ASCII-only terminals (LANG=C).
  public static let ascii = Glyphs(
    topLeft: "+", topRight: "+", bottomLeft: "+", bottomRight: "+", horizontal: "-", vertical: "|",
    meterFull: "|", meterEighths: [], ellipsis: ">", separator: " | ", micro: "us", up: "^", down: "v",
    pointer: ">")
}

/// How many columns a scalar takes: 0 for combining marks, 2 for East Asian wide and emoji, else 1.
@inline(__always)
func columnWidth(_ s: Unicode.Scalar) -> Int {
  let v = s.value
  if v < 0x300 { return 1 }
  switch s.properties.generalCategory {
  case .nonspacingMark, .enclosingMark, .format: return 0
  default: break
  }
  switch v {
  case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
    0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
    0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
    return 2
  default:
    return 1
  }
}

/// A scalar safe to put on a terminal: control characters become `?`.
@inline(__always)
func printable(_ s: Unicode.Scalar) -> Unicode.Scalar {
  let v = s.value
  if v < 0x20 || (v >= 0x7F && v < 0xA0) { return "?" }
  return s
}

/// The number of terminal columns a string takes once control characters are replaced.
public func displayWidth(_ s: String) -> Int {
  var n = 0
  for scalar in s.unicodeScalars { n += columnWidth(printable(scalar)) }
  return n
}

/// A string cut to at most `width` columns, ending in `ellipsis` when it was cut.
public func truncate(_ s: String, to width: Int, ellipsis: Unicode.Scalar = "…") -> String {
  guard width > 0 else { return "" }
  if s.utf8.count <= width, s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s }
  if displayWidth(s) <= width { return s }
  var out = String.UnicodeScalarView()
  var used = 0
  for scalar in s.unicodeScalars {
    let p = printable(scalar)
    let w = columnWidth(p)
    if used + w > width - 1 { break }
    out.append(p)
    used += w
  }
  out.append(ellipsis)
  return String(out)
}

/// A symbol+offset cut to `width` columns, keeping the "+0x…" offset: "kernel.Workload.sp…+0x1a".
public func truncateSymbol(_ s: String, to width: Int, ellipsis: Unicode.Scalar = "…") -> String {
  if displayWidth(s) <= width { return s }
  guard let plus = s.lastIndex(of: "+"), s[plus...].hasPrefix("+0x") else {
    return truncate(s, to: width, ellipsis: ellipsis)
  }
  let offset = String(s[plus...])
  let room = width - displayWidth(offset)
  guard room >= 4 else { return truncate(s, to: width, ellipsis: ellipsis) }
  return truncate(String(s[..<plus]), to: room, ellipsis: ellipsis) + offset
}
