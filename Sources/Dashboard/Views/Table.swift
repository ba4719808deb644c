/// One column of a table view: how wide it may be, when it is dropped, and how a row draws into it.
struct Column<Row> {
  /// The sort key it shows, if any (the header marks the sorted column).
  var key: SortKey?
  /// Header text.
  var title: String
  /// Width it is planned with when deciding which columns fit.
  var preferred: Int
  /// Narrowest it may get when space is short (flexible columns only).
  var minimum: Int
  /// Widest it may grow.
  var maximum: Int
  /// Share of leftover width it takes (0 = fixed width).
  var weight: Int
  /// 0 = always shown; columns with higher numbers appear only as the terminal gets wider.
  var priority: Int
  /// Extra width a flexible column claims at a later priority, before less important columns appear
  /// (so RIP symbols get readable before rarely needed counters show up).
  var bonus: (priority: Int, width: Int)? = nil
  /// How the header (and usually the content) aligns.
  var align: Alignment
  /// Draws one row's cell.
  var draw: (inout Grid, Row, _ x: Int, _ y: Int, _ width: Int) -> Void

  /// A fixed-width column.
  static func fixed(
    _ title: String, _ width: Int, priority: Int, key: SortKey? = nil, align: Alignment = .right,
    draw: @escaping (inout Grid, Row, Int, Int, Int) -> Void
  ) -> Column {
    Column(
      key: key, title: title, preferred: width, minimum: width, maximum: width, weight: 0, priority: priority,
      align: align, draw: draw)
  }

  /// A column that grows with the terminal.
  static func flexible(
    _ title: String, minimum: Int, preferred: Int, maximum: Int, weight: Int, priority: Int,
    bonus: (priority: Int, width: Int)? = nil, key: SortKey? = nil, align: Alignment = .left,
    draw: @escaping (inout Grid, Row, Int, Int, Int) -> Void
  ) -> Column {
    Column(
      key: key, title: title, preferred: preferred, minimum: minimum, maximum: maximum, weight: weight,
      priority: priority, bonus: bonus, align: align, draw: draw)
  }
}

/// A column placed on screen.
struct PlacedColumn<Row> {
  var column: Column<Row>
  var x: Int
  var width: Int
}

/// Chooses which columns fit in `width` and how wide each one is.
///
/// Columns are admitted by priority (stopping at the first that does not fit at its preferred width),
/// flexible columns shrink towards their minimum when even the essential ones do not fit, and leftover
/// width goes to flexible columns by weight. Columns keep their declared order on screen.
func placeColumns<Row>(_ columns: [Column<Row>], width: Int, gap: Int = 1) -> [PlacedColumn<Row>] {
  // Admission entries: each column at its priority, and each bonus at its own.
  var entries: [(priority: Int, index: Int, bonus: Bool)] = columns.indices.map {
    (columns[$0].priority, $0, false)
  }
  for i in columns.indices {
    if let b = columns[i].bonus { entries.append((b.priority, i, true)) }
  }
  entries.sort { ($0.priority, $0.bonus ? 1 : 0, $0.index) < ($1.priority, $1.bonus ? 1 : 0, $1.index) }
  var kept = Set<Int>()
  var planned: [Int: Int] = [:]
  var used = 0
  for e in entries {
    if e.bonus {
      guard kept.contains(e.index), let b = columns[e.index].bonus else { continue }
      if used + b.width > width { break }
      planned[e.index, default: 0] += b.width
      used += b.width
      continue
    }
    let cost = columns[e.index].preferred + (kept.isEmpty ? 0 : gap)
    if e.priority > 0 && used + cost > width { break }
    kept.insert(e.index)
    planned[e.index] = columns[e.index].preferred
    used += cost
  }
  let order = columns.indices.filter { kept.contains($0) }
  var widths = Dictionary(
    uniqueKeysWithValues: order.map { ($0, min(columns[$0].maximum, planned[$0, default: 0])) })
  let gaps = max(0, order.count - 1) * gap
  var total = widths.values.reduce(0, +) + gaps
  // Too wide: shrink flexible columns, the widest-over-minimum first.
  while total > width {
    guard
      let i = order.filter({ widths[$0, default: 0] > columns[$0].minimum }).max(by: {
        widths[$0, default: 0] - columns[$0].minimum < widths[$1, default: 0] - columns[$1].minimum
      })
    else { break }
    widths[i, default: 0] -= 1
    total -= 1
  }
  // Room to spare: grow flexible columns by weight up to their maximum.
  var extra = width - total
  while extra > 0 {
    let growing = order.filter { columns[$0].weight > 0 && widths[$0, default: 0] < columns[$0].maximum }
    guard !growing.isEmpty else { break }
    let weights = growing.map { columns[$0].weight }.reduce(0, +)
    var given = 0
    for i in growing {
      let share = max(1, extra * columns[i].weight / weights)
      let room = columns[i].maximum - widths[i, default: 0]
      let g = min(share, room, extra - given)
      widths[i, default: 0] += g
      given += g
      if given >= extra { break }
    }
    if given == 0 { break }
    extra -= given
  }
  var x = 0
  var placed: [PlacedColumn<Row>] = []
  for i in order {
    let w = min(widths[i, default: 0], max(0, width - x))
    if w <= 0 { break }
    placed.append(PlacedColumn(column: columns[i], x: x, width: w))
    x += w + gap
  }
  return placed
}

/// Draws a table: a header row and the visible rows, the selected one highlighted.
///
/// The header marks the column of `sortKey` with an arrow. Returns `sortKey` when no placed column shows
/// it (the terminal is too narrow for it), so the caller can name the key elsewhere; nil otherwise.
@discardableResult
func drawTable<Row>(
  into grid: inout Grid, rect: Rect, columns: [PlacedColumn<Row>], rows: [Row], scroll: Int,
  selected: Int?, sortKey: SortKey?, descending: Bool, glyphs: Glyphs, id: (Row) -> Int
) -> SortKey? {
  let hidden = columns.contains { $0.column.key != nil && $0.column.key == sortKey } ? nil : sortKey
  guard rect.height > 0 else { return hidden }
  grid.fill(Rect(x: rect.x, y: rect.y, width: rect.width, height: 1), with: Cell(" ", .header))
  for c in columns {
    var title = c.column.title
    var style = Style.header
    if let key = c.column.key, key == sortKey {
      title =
        c.column.align == .right
        ? (descending ? glyphs.down : glyphs.up) + title : title + (descending ? glyphs.down : glyphs.up)
      style = .headerSorted
    }
    grid.field(
      title, x: rect.x + c.x, y: rect.y, width: c.width, style: style, align: c.column.align,
      ellipsis: glyphs.ellipsis)
  }
  let visible = max(0, rect.height - 1)
  guard visible > 0, scroll < rows.count else { return hidden }
  for (n, row) in rows[max(0, scroll)...].prefix(visible).enumerated() {
    let y = rect.y + 1 + n
    for c in columns { c.column.draw(&grid, row, rect.x + c.x, y, c.width) }
    if let selected, id(row) == selected { grid.restyle(y: y, from: rect.x, to: rect.maxX, .selected) }
  }
  return hidden
}
