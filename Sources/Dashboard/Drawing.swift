/// Horizontal placement of text inside a field.
public enum Alignment: Sendable {
  /// Flush left.
  case left
  /// Flush right (numbers).
  case right
  /// Centred.
  case center
}

extension Grid {
  /// Writes text at a position, clipped to `maxWidth` columns and the grid; returns the columns written.
  ///
  /// Control characters become `?`, combining marks are dropped, and a double-width character that
  /// would straddle the limit becomes a space.
  @discardableResult
  public mutating func put(_ text: String, x: Int, y: Int, style: Style = .normal, maxWidth: Int? = nil)
    -> Int
  {
    guard y >= 0, y < height, x < width else { return 0 }
    let limit = min(width, maxWidth.map { x + max(0, $0) } ?? width)
    var col = x
    for raw in text.unicodeScalars {
      if col >= limit { break }
      let scalar = printable(raw)
      let w = columnWidth(scalar)
      if w == 0 { continue }
      if w == 2 {
        if col + 1 >= limit {
          if col >= 0 { self[col, y] = Cell(" ", style) }
          col += 1
          break
        }
        if col >= 0 {
          self[col, y] = Cell(scalar, style)
          self[col + 1, y] = Cell("\u{0}", style)
        }
        col += 2
      } else {
        if col >= 0 { self[col, y] = Cell(scalar, style) }
        col += 1
      }
    }
    return max(0, col - x)
  }

  /// Writes text into a field of `width` columns: aligned, cut with an ellipsis when too long, padded with
  /// blanks in `style` when `pad` is true.
  public mutating func field(
    _ text: String, x: Int, y: Int, width fieldWidth: Int, style: Style = .normal,
    align: Alignment = .left, ellipsis: Unicode.Scalar = "…", pad: Bool = false
  ) {
    guard fieldWidth > 0 else { return }
    let cut = truncate(text, to: fieldWidth, ellipsis: ellipsis)
    let w = displayWidth(cut)
    if pad { fill(Rect(x: x, y: y, width: fieldWidth, height: 1), with: Cell(" ", style)) }
    let start: Int
    switch align {
    case .left: start = x
    case .right: start = x + fieldWidth - w
    case .center: start = x + (fieldWidth - w) / 2
    }
    put(cut, x: start, y: y, style: style, maxWidth: x + fieldWidth - start)
  }

  /// Draws a horizontal line.
  public mutating func hline(x: Int, y: Int, width lineWidth: Int, glyphs: Glyphs, style: Style = .border) {
    guard lineWidth > 0 else { return }
    for i in 0..<lineWidth { self[x + i, y] = Cell(glyphs.horizontal, style) }
  }

  /// Draws a box around a rectangle, with an optional title in the top edge.
  public mutating func box(
    _ rect: Rect, glyphs: Glyphs, style: Style = .border, title: String? = nil,
    titleStyle: Style = .title
  ) {
    guard rect.width >= 2, rect.height >= 2 else { return }
    let r = rect.maxX - 1
    let b = rect.maxY - 1
    self[rect.x, rect.y] = Cell(glyphs.topLeft, style)
    self[r, rect.y] = Cell(glyphs.topRight, style)
    self[rect.x, b] = Cell(glyphs.bottomLeft, style)
    self[r, b] = Cell(glyphs.bottomRight, style)
    hline(x: rect.x + 1, y: rect.y, width: rect.width - 2, glyphs: glyphs, style: style)
    hline(x: rect.x + 1, y: b, width: rect.width - 2, glyphs: glyphs, style: style)
    for y in (rect.y + 1)..<b {
      self[rect.x, y] = Cell(glyphs.vertical, style)
      self[r, y] = Cell(glyphs.vertical, style)
    }
    if let title, rect.width > 6 {
      put(" ", x: rect.x + 2, y: rect.y, style: style)
      let n = put(
        truncate(title, to: rect.width - 6, ellipsis: glyphs.ellipsis), x: rect.x + 3, y: rect.y,
        style: titleStyle)
      put(" ", x: rect.x + 3 + n, y: rect.y, style: style)
    }
  }

  /// Draws an htop-style bar meter, `[||||||     42.0%]`, with the text overlaid on the bar's right end
  /// and a blank between bar and text whenever the text leaves room for one.
  ///
  /// - Parameters:
  ///   - fraction: 0...1 filled, nil when unknown (an empty bar).
  ///   - text: right-aligned inside the bar; its characters take the colour of the bar part they cover.
  ///   - fillStyle: the style of the filled part (busy, error…).
  public mutating func meter(
    x: Int, y: Int, width meterWidth: Int, fraction: Double?, text: String, glyphs: Glyphs,
    fillStyle: Style = .meterBusy, brackets: Bool = true
  ) {
    guard meterWidth >= (brackets ? 3 : 1) else { return }
    let inner = brackets ? meterWidth - 2 : meterWidth
    let x0 = brackets ? x + 1 : x
    if brackets {
      self[x, y] = Cell("[", .border)
      self[x + meterWidth - 1, y] = Cell("]", .border)
    }
    let f = min(1, max(0, fraction.flatMap { $0.isFinite ? $0 : nil } ?? 0))
    // Eighths of a cell when the charset has partial blocks, whole cells otherwise.
    let steps = glyphs.meterEighths.isEmpty ? 1 : 8
    let units = Int((f * Double(inner * steps)).rounded())
    let full = units / steps
    let part = units % steps
    // A blank keeps the bar from running into the text ("[███ 20/2]", not "[███20/2]").
    let spaced = !text.isEmpty && displayWidth(text) < inner ? " " + text : text
    let label = Array(truncate(spaced, to: inner, ellipsis: glyphs.ellipsis).unicodeScalars)
    let labelStart = inner - label.count
    for i in 0..<inner {
      let filled = i < full || (i == full && part > 0)
      let style: Style = filled ? fillStyle : .meterIdle
      if i >= labelStart {
        self[x0 + i, y] = Cell(printable(label[i - labelStart]), style)
      } else if i < full {
        self[x0 + i, y] = Cell(glyphs.meterFull, style)
      } else if i == full && part > 0 {
        self[x0 + i, y] = Cell(glyphs.meterEighths[part - 1], style)
      } else {
        self[x0 + i, y] = Cell(" ", .meterIdle)
      }
    }
  }
}

/// A line built from pieces, each with a priority: the lowest-priority pieces are dropped until it fits.
struct Segments {
  /// One piece of a line.
  struct Piece {
    var text: String
    var style: Style
    /// 0 = always shown; higher numbers are dropped first.
    var priority: Int
    /// Draw a separator before this piece.
    var separated: Bool
    /// Cut with an ellipsis to the room left instead of being dropped (long free text).
    var elastic: Bool
    /// Drawn before `text` in the label style, and dropped with it ("irq " in "irq 3.0k/s").
    var label: String
  }

  var pieces: [Piece] = []

  mutating func add(
    _ text: String, _ style: Style = .normal, priority: Int = 0, separated: Bool = false,
    elastic: Bool = false,
    label: String = ""
  ) {
    pieces.append(
      Piece(
        text: text, style: style, priority: priority, separated: separated, elastic: elastic, label: label))
  }

  /// Draws the pieces that fit in `width` columns; returns the columns used.
  @discardableResult
  func draw(into grid: inout Grid, x: Int, y: Int, width: Int, glyphs: Glyphs) -> Int {
    var kept = pieces
    func length(_ ps: [Piece]) -> Int {
      var n = 0
      for (i, p) in ps.enumerated() {
        if p.separated && i > 0 { n += displayWidth(glyphs.separator) }
        n += displayWidth(p.label) + (p.elastic ? min(displayWidth(p.text), 8) : displayWidth(p.text))
      }
      return n
    }
    while length(kept) > width, let worst = kept.map(\.priority).max(), worst > 0,
      let i = kept.lastIndex(where: { $0.priority == worst })
    {
      kept.remove(at: i)
    }
    var col = x
    for (i, p) in kept.enumerated() {
      if p.separated && i > 0 {
        col += grid.put(glyphs.separator, x: col, y: y, style: .border, maxWidth: x + width - col)
      }
      col += grid.put(p.label, x: col, y: y, style: .label, maxWidth: x + width - col)
      let text = p.elastic ? truncate(p.text, to: x + width - col, ellipsis: glyphs.ellipsis) : p.text
      col += grid.put(text, x: col, y: y, style: p.style, maxWidth: x + width - col)
    }
    return col - x
  }
}
