/// How row models spell units and missing values, so a terminal without Unicode gets ASCII.
public struct CellStyle: Sendable, Equatable {
  /// The microsecond unit ("µs" or "us").
  public var micro: String
  /// What a cell shows before its value can be known (a rate before the second snapshot).
  public var unknown: String
  /// Marks a list cut short ("…" or ">").
  public var ellipsis: String
  /// What a cell shows when the value does not apply (no holder, no waits): "-".
  public var none: String = "-"

  /// A style from its parts.
  public init(micro: String, unknown: String, ellipsis: String, none: String = "-") {
    self.micro = micro
    self.unknown = unknown
    self.ellipsis = ellipsis
    self.none = none
  }

  /// Unicode: "µs", "—" for unknown, "…".
  public static let unicode = CellStyle(micro: "µs", unknown: "—", ellipsis: "…")
  /// 7-bit ASCII: "us", "-" for unknown, ">".
  public static let ascii = CellStyle(micro: "us", unknown: "-", ellipsis: ">")

  /// A duration cell, or `none` for nil.
  public func duration(_ seconds: Double?) -> String {
    seconds.map { Format.duration(seconds: $0, micro: micro) } ?? none
  }

  /// A count or rate cell, or `unknown` for nil.
  public func rate(_ value: Double?) -> String { value.map(Format.human) ?? unknown }
}
