/// What a cell means, not how it looks: the terminal maps each style to colours and attributes.
public enum Style: UInt8, Sendable, CaseIterable, Codable {
  /// Ordinary text.
  case normal
  /// Less important text: units, placeholders, offline rows.
  case dim
  /// The program name and pane titles.
  case title
  /// A table's column-header row.
  case header
  /// The column the table is sorted by, in the header row.
  case headerSorted
  /// A field name in front of its value ("source", "cost").
  case label
  /// A value that matters (numbers, names).
  case value
  /// Healthy: running, consistent.
  case ok
  /// Needs attention: inconsistent reads, late timers, problems.
  case warn
  /// Broken: halted lcpus, panics, unreadable records.
  case error
  /// The selected row or cell.
  case selected
  /// The filled part of a busy meter.
  case meterBusy
  /// The empty part of a meter and the text over it.
  case meterIdle
  /// Meter brackets, box lines and separators.
  case border
  /// The current pane in the tab bar.
  case tabActive
  /// The other panes in the tab bar.
  case tabInactive
  /// The key in the function-key bar ("F1").
  case functionKey
  /// The action in the function-key bar ("Help").
  case functionLabel
  /// The transient status message.
  case status
  /// The filter being edited, or the active filter.
  case filter
  /// A code address.
  case address
  /// A symbol name.
  case symbol
  /// The current instruction in a disassembly or the faulting frame.
  case current

  /// One character per style, for the style layer of golden files.
  public var code: Character {
    switch self {
    case .normal: return "."
    case .dim: return "d"
    case .title: return "T"
    case .header: return "H"
    case .headerSorted: return "O"
    case .label: return "l"
    case .value: return "v"
    case .ok: return "g"
    case .warn: return "w"
    case .error: return "E"
    case .selected: return "S"
    case .meterBusy: return "b"
    case .meterIdle: return "i"
    case .border: return "#"
    case .tabActive: return "A"
    case .tabInactive: return "a"
    case .functionKey: return "K"
    case .functionLabel: return "k"
    case .status: return "s"
    case .filter: return "f"
    case .address: return "x"
    case .symbol: return "y"
    case .current: return "C"
    }
  }
}

/// One character cell of the screen: a Unicode scalar and its semantic style.
public struct Cell: Sendable, Equatable {
  /// The character shown; U+0000 marks the right half of a double-width character.
  public var scalar: Unicode.Scalar
  /// What the character means.
  public var style: Style

  /// Creates a cell.
  public init(_ scalar: Unicode.Scalar, _ style: Style = .normal) {
    self.scalar = scalar
    self.style = style
  }

  /// A blank cell.
  public static let blank = Cell(" ", .normal)
  /// The right half of a double-width character (the terminal skips it).
  public static let continuation = Cell("\u{0}", .normal)

  /// True for the right half of a double-width character.
  public var isContinuation: Bool { scalar.value == 0 }
}

/// A rectangle of cells, in grid coordinates.
public struct Rect: Sendable, Equatable {
  /// Left column.
  public var x: Int
  /// Top row.
  public var y: Int
  /// Width in columns.
  public var width: Int
  /// Height in rows.
  public var height: Int

  /// Creates a rectangle.
  public init(x: Int, y: Int, width: Int, height: Int) {
    self.x = x
    self.y = y
    self.width = max(0, width)
    self.height = max(0, height)
  }

  /// One past the right column.
  public var maxX: Int { x + width }
  /// One past the bottom row.
  public var maxY: Int { y + height }
  /// True when the rectangle has no cells.
  public var isEmpty: Bool { width == 0 || height == 0 }

  /// The rectangle shrunk by `n` cells on every side.
  public func inset(_ n: Int) -> Rect {
    Rect(x: x + n, y: y + n, width: width - 2 * n, height: height - 2 * n)
  }
}

/// A screen's worth of styled characters: what every view draws into and what the terminal presents.
public struct Grid: Sendable, Equatable {
  /// Width in columns.
  public let width: Int
  /// Height in rows.
  public let height: Int
  /// Row-major cells, `width * height` of them.
  public private(set) var cells: [Cell]

  /// Creates a grid filled with `fill`.
  public init(width: Int, height: Int, fill: Cell = .blank) {
    self.width = max(0, width)
    self.height = max(0, height)
    cells = Array(repeating: fill, count: self.width * self.height)
  }

  /// The whole grid as a rectangle.
  public var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

  /// The cell at a position (a blank cell outside the grid).
  public subscript(x: Int, y: Int) -> Cell {
    get {
      guard x >= 0, y >= 0, x < width, y < height else { return .blank }
      return cells[y * width + x]
    }
    set {
      guard x >= 0, y >= 0, x < width, y < height else { return }
      cells[y * width + x] = newValue
    }
  }

  /// The cells of one row.
  public func row(_ y: Int) -> ArraySlice<Cell> {
    guard y >= 0, y < height else { return [] }
    return cells[(y * width)..<(y * width + width)]
  }

  /// Sets the style of every cell in a row span, keeping the characters.
  public mutating func restyle(y: Int, from x0: Int, to x1: Int, _ style: Style) {
    guard y >= 0, y < height else { return }
    let a = max(0, x0)
    let b = min(width, x1)
    guard a < b else { return }
    for i in (y * width + a)..<(y * width + b) { cells[i].style = style }
  }

  /// Fills a rectangle with one cell value.
  public mutating func fill(_ rect: Rect, with cell: Cell = .blank) {
    let x0 = max(0, rect.x)
    let x1 = min(width, rect.maxX)
    let y0 = max(0, rect.y)
    let y1 = min(height, rect.maxY)
    guard x0 < x1, y0 < y1 else { return }
    for y in y0..<y1 {
      for i in (y * width + x0)..<(y * width + x1) { cells[i] = cell }
    }
  }

  /// Copies another grid in at an offset, clipped to this grid.
  public mutating func blit(_ other: Grid, x: Int, y: Int, sourceY: Int = 0) {
    for row in 0..<other.height - sourceY {
      let ty = y + row
      guard ty >= 0, ty < height else { continue }
      for col in 0..<other.width {
        let tx = x + col
        guard tx >= 0, tx < width else { continue }
        cells[ty * width + tx] = other.cells[(row + sourceY) * other.width + col]
      }
    }
  }

  /// The characters, one line per row, trailing blanks removed: what a terminal capture shows.
  public var text: String {
    var out = String()
    out.reserveCapacity(width * height + height)
    for y in 0..<height {
      var line = String.UnicodeScalarView()
      for cell in row(y) where !cell.isContinuation { line.append(cell.scalar) }
      var s = String(line)
      while s.last == " " { s.removeLast() }
      out += s
      if y + 1 < height { out += "\n" }
    }
    return out
  }

  /// The styles, one `Style.code` per cell, trailing normal blanks removed: the colour layer of a golden file.
  public var styleText: String {
    var out = String()
    for y in 0..<height {
      var line = String()
      for cell in row(y) { line.append(cell.style.code) }
      // Trim trailing cells that are blank and normal, so the layer lines up with `text`.
      var keep = line.count
      let cellsOfRow = Array(row(y))
      while keep > 0, cellsOfRow[keep - 1].style == .normal,
        cellsOfRow[keep - 1].scalar == " " || cellsOfRow[keep - 1].isContinuation
      {
        keep -= 1
      }
      out += line.prefix(keep)
      if y + 1 < height { out += "\n" }
    }
    return out
  }
}
