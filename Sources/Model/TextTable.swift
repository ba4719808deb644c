/// One column of a plain-text table: its title, width (0 = the rest of the line), alignment and cell.
///
/// The titles are the dashboard pane's, so a column is found under the same header in both.
public struct TextColumn<Cells>: Sendable {
  /// The header.
  public var title: String
  /// Width in characters; 0 for the last column, which takes what it needs.
  public var width: Int
  /// Left-aligned (text) or right-aligned (numbers).
  public var left: Bool
  /// The cell it shows.
  public var cell: @Sendable (Cells) -> String

  /// A column from its parts.
  public init(title: String, width: Int, left: Bool, cell: @escaping @Sendable (Cells) -> String) {
    self.title = title
    self.width = width
    self.left = left
    self.cell = cell
  }
}

/// Row models' cells as plain-text lines (`smptop locks`, the text snapshot).
public enum TextTable {
  /// The header line, then one line per row: a marker column (" ", "~" changing while read, "!"
  /// unreadable), then the cells; a cell too long for its column ends in "…". Trailing blanks are cut.
  public static func lines<Cells>(_ columns: [TextColumn<Cells>], rows: [(marker: String, cells: Cells)])
    -> [String]
  {
    func cell(_ s: String, _ width: Int, _ left: Bool) -> String {
      guard width > 0 else { return s }
      let cut = s.count > width ? String(s.prefix(width - 1)) + "…" : s
      let fill = String(repeating: " ", count: max(0, width - cut.count))
      return left ? cut + fill : fill + cut
    }
    func line(_ marker: String, _ cells: [String]) -> String {
      var s = marker
      for (i, c) in columns.enumerated() {
        s += (i == 0 ? "" : " ") + cell(cells[i], c.width, c.left)
      }
      while s.last == " " { s.removeLast() }
      return s
    }
    var out = [line(" ", columns.map(\.title))]
    for r in rows { out.append(line(r.marker, columns.map { $0.cell(r.cells) })) }
    return out
  }

  /// The marker column's character for a record's consistency.
  public static func marker(_ c: Consistency) -> String {
    switch c {
    case .consistent: return " "
    case .inconsistent: return "~"
    case .unreadable: return "!"
    }
  }
}
