import Dashboard
import Inspector
import Testing

/// The lcpus, thread, allocator-order and virtqueue tables: the dashboard pane and the text snapshot
/// render one snapshot through one row model, so every cell the text table prints stands in the
/// pane's line for the same row, under the same header, aligned the same way.
@Suite struct RowCellAgreementTests {
  typealias Find = LockCellAgreementTests

  /// How a column's cell is found in the pane.
  enum PaneCell {
    /// Under the same title, aligned like the text column.
    case aligned
    /// In a meter under the title: the text ends at the meter's closing bracket.
    case meter
    /// Not drawn by the pane (a cell the text table adds).
    case none
  }

  /// Renders `pane` and the text table of `columns` from the same rows, and compares every cell.
  ///
  /// - Parameters:
  ///   - anchor: a title only the table's header line has.
  ///   - key: the text of the pane's identifying cell (under the first column's title, right-aligned)
  ///     for a row.
  ///   - paneCell: how each column is found in the pane.
  /// - Returns: how many pane cells were compared.
  static func compare<Cells>(
    pane: Pane, columns: [TextColumn<Cells>], rows: [(marker: String, cells: Cells)], anchor: String,
    key: (Cells) -> String, paneCell: (String) -> PaneCell = { _ in .aligned }, snapshot: Snapshot,
    rates: SnapshotRates?, sourceLocation: SourceLocation = #_sourceLocation
  ) throws -> Int {
    let text = TextTable.lines(columns, rows: rows).map { Array($0) }
    let textHeader = try #require(text.first, sourceLocation: sourceLocation)
    let lines = Find.paneLines(pane, snapshot, rates)
    let headerIndex = try #require(
      lines.firstIndex { Find.find(Array(anchor), in: $0) != nil }, "no \(anchor) header",
      sourceLocation: sourceLocation)
    let header = lines[headerIndex]
    let first = try #require(columns.first, sourceLocation: sourceLocation)
    try #require(!rows.isEmpty, sourceLocation: sourceLocation)
    var compared = 0
    for (n, row) in rows.enumerated() {
      let textLine = text[n + 1]
      #expect(textLine.first.map(String.init) == row.marker, sourceLocation: sourceLocation)
      let id = key(row.cells)
      let line = try #require(
        lines.dropFirst(headerIndex + 1).first {
          Find.cell($0, header: header, title: first.title, left: first.left, length: id.count) == id
        }, "no pane line for \(id)", sourceLocation: sourceLocation)
      for column in columns {
        let cell = column.cell(row.cells)
        if column.width == 0 || cell.count <= column.width {
          let inText = Find.cell(
            textLine, header: textHeader, title: column.title, left: column.left, length: cell.count)
          #expect(inText == cell, "text table, \(id), \(column.title)", sourceLocation: sourceLocation)
        }
        if column.title == first.title {  // the identifying cell, found above
          compared += 1
          continue
        }
        switch paneCell(column.title) {
        case .none: continue
        case .meter:
          let start = try #require(
            Find.find(Array(column.title), in: header), "no \(column.title) in the pane",
            sourceLocation: sourceLocation)
          let slice = String(line[start..<min(line.count, start + 60)])
          #expect(
            slice.contains(cell + "]"), "pane, \(id), \(column.title): \(slice)",
            sourceLocation: sourceLocation)
        case .aligned:
          let shown = Find.cell(
            line, header: header, title: column.title, left: column.left, length: cell.count)
          if let shown, let cut = shown.firstIndex(of: "…"), column.left {
            #expect(
              cell.hasPrefix(shown[..<cut]), "pane, \(id), \(column.title)", sourceLocation: sourceLocation)
          } else {
            #expect(
              shown == cell, "pane, \(id), \(column.title): \(String(line))", sourceLocation: sourceLocation)
          }
        }
        compared += 1
      }
    }
    return compared
  }

  @Test(arguments: [true, false])
  func lcpusPaneAndTextTable(withRates: Bool) throws {
    let (snap, allRates) = try Fixtures.fullV2()
    let rates = withRates ? allRates : nil
    let rows = LCPURow.rows(snap, rates: rates, symbolize: Fixtures.symbolize)
    let compared = try Self.compare(
      pane: .lcpus, columns: LCPURow.columns(ripTitle: "RIP (last tick)"),
      rows: rows.map { ($0.cells.marker, $0.cells) },
      anchor: "APIC", key: { $0.lcpu + $0.marker }, paneCell: { $0 == "BUSY%" ? .meter : .aligned },
      snapshot: snap, rates: rates)
    #expect(compared == rows.count * 14)
  }

  @Test(arguments: [true, false])
  func threadListAndTextTable(withRates: Bool) throws {
    let (snap, allRates) = try Fixtures.fullV2()
    let rows = ThreadRow.rows(snap)
    let compared = try Self.compare(
      pane: .locks, columns: ThreadRow.columns, rows: rows.map { ($0.cells.marker, $0.cells) },
      anchor: "BLOCKED ON",
      key: { $0.id + $0.marker }, snapshot: snap, rates: withRates ? allRates : nil)
    #expect(compared == rows.count * 9)
    #expect(rows.first?.isBlocked == true, "blocked threads first")
  }

  @Test(arguments: [true, false])
  func allocPaneAndTextTable(withRates: Bool) throws {
    let (snap, allRates) = try Fixtures.fullV2()
    let rates = withRates ? allRates : nil
    let rows = AllocOrderRow.rows(snap, rates: rates)
    let compared = try Self.compare(
      pane: .allocator, columns: AllocOrderRow.columns, rows: rows.map { (" ", $0.cells) }, anchor: "SPLITS",
      key: { $0.order }, paneCell: { $0 == "USED/FREE BLOCKS" ? .meter : .aligned }, snapshot: snap,
      rates: rates)
    #expect(compared == rows.count * 15)
  }

  @Test(arguments: [true, false])
  func virtioPaneAndTextTable(withRates: Bool) throws {
    let (snap, allRates) = try Fixtures.fullV2()
    let rates = withRates ? allRates : nil
    let rows = VirtqueueRow.rows(snap, rates: rates)
    let compared = try Self.compare(
      pane: .virtio, columns: VirtqueueRow.columns, rows: rows.map { ($0.cells.marker, $0.cells) },
      anchor: "LASTUSD", key: { $0.marker + $0.queue }, paneCell: { $0 == "FILL" ? .meter : .aligned },
      snapshot: snap, rates: rates)
    #expect(compared == rows.count * 20)
    #expect(rows.contains { $0.cells.deviceIndices != "-" }, "QMP's view is in the fixture")
  }

  /// Negative control: a cell changed after rendering is not found in the pane.
  @Test func aChangedCellIsNoticed() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let lines = Find.paneLines(.virtio, snap, rates)
    let header = try #require(lines.first { Find.find(Array("LASTUSD"), in: $0) != nil })
    let row = try #require(VirtqueueRow.rows(snap, rates: rates).first)
    let line = try #require(
      lines.first {
        Find.cell($0, header: header, title: "QUEUE", left: true, length: row.cells.queue.count + 1)
          == row.cells.marker + row.cells.queue
      })
    let shown = Find.cell(
      line, header: header, title: "PACKETS", left: false, length: row.cells.packets.count)
    #expect(shown == row.cells.packets)
    // The same comparison with one cell changed fails.
    var changed = row.cells
    changed.packets = row.cells.packets == "999" ? "998" : "999"
    #expect(
      Find.cell(line, header: header, title: "PACKETS", left: false, length: changed.packets.count)
        != changed.packets)
    // And the text table of the changed row shows the changed cell, not the pane's.
    let text = TextTable.lines(VirtqueueRow.columns, rows: [(row.cells.marker, changed)]).map { Array($0) }
    let inText = Find.cell(
      text[1], header: text[0], title: "PACKETS", left: false, length: changed.packets.count)
    #expect(inText == changed.packets && inText != shown)
  }
}
