import Model
@_exported import Model  // Format and the row models are part of the dashboard's interface

/// What every v2 pane needs to turn guest cycles into time and thread ids into names, computed once per frame.
struct PaneContext {
  /// The guest's clock (its "now" is the newest timer tick of any lcpu).
  var clock: GuestClock
  var glyphs: Glyphs
  /// Thread id → name.
  var threadNames: ThreadNames

  init(snapshot: Snapshot, glyphs: Glyphs) {
    clock = snapshot.clock
    self.glyphs = glyphs
    threadNames = ThreadNames(snapshot)
  }

  /// The guest's "now".
  var now: UInt64 { clock.now }

  /// Cycles as seconds; nil when the guest does not say how fast its TSC runs.
  func seconds(_ tsc: Double) -> Double? { clock.seconds(tsc) }

  func seconds(_ tsc: UInt64) -> Double? { clock.seconds(tsc) }

  /// Seconds from now until `tsc` (negative = in the past); nil without a clock or a deadline.
  func until(_ tsc: UInt64) -> Double? { clock.until(tsc) }

  /// Seconds since `tsc`; nil when unknown.
  func since(_ tsc: UInt64) -> Double? { clock.since(tsc) }

  /// A thread's name, "t17" when it is not in the thread table, "kernel" for 0.
  func threadName(_ id: UInt64) -> String { threadNames(id) }

  /// A duration, or the unknown marker.
  func duration(_ s: Double?) -> String {
    s.map { Format.duration(seconds: $0, micro: glyphs.micro) } ?? glyphs.unknown
  }

  /// Time until a deadline ("late 3.0ms" once passed), or the unknown marker.
  func due(_ s: Double?) -> String {
    s.map { Format.due(seconds: $0, micro: glyphs.micro) } ?? glyphs.unknown
  }

  /// A rate, or the unknown marker.
  func rate(_ v: Double?) -> String { v.map(Format.human) ?? glyphs.unknown }
}

/// The marker column character and style for a record's consistency: " " fine, "~" changing, "!" unreadable.
func consistencyMarker(_ c: Consistency) -> (Unicode.Scalar, Style) {
  switch c {
  case .consistent: return (" ", .normal)
  case .inconsistent: return ("~", .warn)
  case .unreadable: return ("!", .error)
  }
}

/// A value a row sorts by.
enum SortValue: Comparable {
  case number(Double)
  case text(String)
}

/// Rows filtered by `search` and ordered by `values` (lexicographic, unknown last), ties by id.
func arrangeRows<Row>(
  _ rows: [Row], filter: String, sort: PaneState, search: (Row) -> String, id: (Row) -> Int,
  values: (Row, SortKey) -> [SortValue?]
) -> [Row] {
  arrangeOrder(rows, filter: filter, sort: sort, search: search, id: id, values: values).map { rows[$0] }
}

/// The indices of the rows matching the filter, in the pane's sort order (ties by id).
///
/// Sorts indices, not rows: rows carry whole records and are expensive to move.
func arrangeOrder<Row>(
  _ rows: [Row], filter: String, sort: PaneState, search: (Row) -> String, id: (Row) -> Int,
  values: (Row, SortKey) -> [SortValue?]
) -> [Int] {
  let needle = filter.lowercased()
  let kept = needle.isEmpty ? Array(rows.indices) : rows.indices.filter { search(rows[$0]).contains(needle) }
  let order = sortedOrder(
    ids: kept.map { id(rows[$0]) }, keys: kept.map { values(rows[$0], sort.sortKey) }, sort: sort)
  return order.map { kept[$0] }
}

/// The order of rows given by their ids and sort values: by the values (unknown last), then by id.
func sortedOrder(ids: [Int], keys: [[SortValue?]], sort: PaneState) -> [Int] {
  ids.indices.sorted { a, b in
    for (x, y) in zip(keys[a], keys[b]) {
      switch (x, y) {
      case (nil, nil): continue
      case (nil, _): return false
      case (_, nil): return true
      case (let x?, let y?):
        if x == y { continue }
        return sort.descending ? x > y : x < y
      }
    }
    return ids[a] < ids[b]
  }
}

/// Draws a selectable, scrollable table of rows already arranged, and reports the row order and page size.
func drawPaneTable<Row>(
  into g: inout Grid, state: DashboardState, rect: Rect, columns: [Column<Row>], rows: [Row],
  id: (Row) -> Int, layout: inout ViewLayout
) {
  drawPaneTable(
    into: &g, state: state, rect: rect, columns: columns, ids: rows.map(id), id: id, layout: &layout
  ) { rows[$0] }
}

/// Draws a selectable, scrollable table whose rows, in order, have `ids`, and reports the row order
/// and page size; `row` makes the row at a position, and is asked only for the rows on screen.
func drawPaneTable<Row>(
  into g: inout Grid, state: DashboardState, rect: Rect, columns: [Column<Row>], ids: [Int],
  id: (Row) -> Int, layout: inout ViewLayout, row: (Int) -> Row
) {
  let glyphs = state.charset.glyphs
  layout.rowIDs = ids
  let selected =
    state.current.selectedID.flatMap { s in layout.rowIDs.contains(s) ? s : nil } ?? layout.rowIDs.first
  let page = max(1, rect.height - 1)
  let scroll = scrollKeepingVisible(
    PaneState(selectedID: selected, scroll: state.current.scroll),
    ViewLayout(rowIDs: layout.rowIDs, pageRows: page))
  let start = min(max(0, scroll), ids.count)
  let visible = (start..<min(ids.count, start + page)).map(row)
  layout.hiddenSortKey = drawTable(
    into: &g, rect: rect, columns: placeColumns(columns, width: rect.width), rows: visible, scroll: 0,
    selected: selected, sortKey: state.current.sortKey, descending: state.current.descending, glyphs: glyphs,
    id: id)
  layout.pageRows = page
}

/// A table's "nothing here" line under its header.
func drawEmptyLine(into g: inout Grid, _ text: String, rect: Rect) {
  guard rect.height >= 2 else { return }
  g.put(text, x: rect.x + 1, y: rect.y + 1, style: .dim, maxWidth: rect.width - 2)
}

/// The line shown when nothing matches the filter.
func noMatch(_ what: String, _ filter: String) -> String { "No \(what) matches the filter \"\(filter)\"." }

/// A number cell: dim zero, unknown marker for nil.
func numberCell(
  _ g: inout Grid, _ value: Double?, x: Int, y: Int, width: Int, glyphs: Glyphs, style: Style = .normal
) {
  guard let value else {
    return g.field(glyphs.unknown, x: x, y: y, width: width, style: .dim, align: .right)
  }
  g.field(Format.human(value), x: x, y: y, width: width, style: value == 0 ? .dim : style, align: .right)
}

/// A row model's number cell, right-aligned; dim when its value is unknown or zero.
func cellNumber(
  _ text: String, _ value: Double?, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int, style: Style = .normal
) {
  g.field(text, x: x, y: y, width: w, style: value == nil || value == 0 ? .dim : style, align: .right)
}

/// A text cell cut with the ellipsis.
func textCell(
  _ g: inout Grid, _ text: String, x: Int, y: Int, width: Int, glyphs: Glyphs, style: Style = .normal,
  align: Alignment = .left
) {
  g.field(text, x: x, y: y, width: width, style: style, align: align, ellipsis: glyphs.ellipsis)
}

/// A compact histogram: one cell per bucket, height by log scale of its count.
func sparkline(_ counts: [UInt64], glyphs: Glyphs) -> String {
  let top = counts.max() ?? 0
  guard top > 0 else { return String(repeating: String(glyphs.levels[0]), count: counts.count) }
  let steps = glyphs.levels.count - 1
  let logTop = log2(Double(top) + 1)
  var out = ""
  for c in counts {
    if c == 0 {
      out.unicodeScalars.append(glyphs.levels[0])
    } else {
      let level = max(1, Int((log2(Double(c) + 1) / logTop * Double(steps)).rounded()))
      out.unicodeScalars.append(glyphs.levels[min(steps, level)])
    }
  }
  return out
}

/// log2 without Foundation.
func log2(_ x: Double) -> Double {
  guard x > 0 else { return 0 }
  return Double(x.exponent) + log2Fraction(x.significand)
}

/// log2 of a value in [1, 2) by a short series (precise enough for bar heights).
private func log2Fraction(_ m: Double) -> Double {
  // ln(m) = 2 atanh((m-1)/(m+1))
  let z = (m - 1) / (m + 1)
  let z2 = z * z
  let ln = 2 * z * (1 + z2 / 3 + z2 * z2 / 5 + z2 * z2 * z2 / 7)
  return ln / 0.6931471805599453
}

/// Splits a body into a top part of `top` rows and the rest.
func splitRows(_ r: Rect, top: Int) -> (Rect, Rect) {
  let t = max(0, min(r.height, top))
  return (
    Rect(x: r.x, y: r.y, width: r.width, height: t),
    Rect(x: r.x, y: r.y + t, width: r.width, height: r.height - t)
  )
}
