import Dashboard
import Inspector
import Testing

/// The locks pane and `smptop locks` (the text lock table) render one snapshot: every cell the text
/// table prints must stand in the pane's line for the same lock, under the same header, aligned the
/// same way.
@Suite struct LockCellAgreementTests {
  /// The pane's title for each text-table column (only the lock name's differs).
  static func paneTitle(_ tableTitle: String) -> String { tableTitle == "LOCK" ? "NAME" : tableTitle }

  /// The cell under `title` in `line`: left-aligned cells start where the title starts, right-aligned
  /// ones end where it ends; nil when the title is not in the header.
  static func cell(_ line: [Character], header: [Character], title: String, left: Bool, length: Int)
    -> String?
  {
    guard let start = find(Array(title), in: header) else { return nil }
    let end = start + title.count
    let range = left ? start..<min(line.count, start + length) : max(0, end - length)..<min(line.count, end)
    guard range.lowerBound < range.upperBound else { return "" }
    return String(line[range])
  }

  /// The first index of `needle` in `haystack` as a whole word.
  static func find(_ needle: [Character], in haystack: [Character]) -> Int? {
    guard needle.count <= haystack.count else { return nil }
    for i in 0...(haystack.count - needle.count) where Array(haystack[i..<(i + needle.count)]) == needle {
      let before = i == 0 || haystack[i - 1] == " " || "↑↓^v".contains(haystack[i - 1])
      let afterIndex = i + needle.count
      let after =
        afterIndex == haystack.count || haystack[afterIndex] == " " || "↑↓^v".contains(haystack[afterIndex])
      if before && after { return i }
    }
    return nil
  }

  /// The lines of `pane` drawn from `snap` on a 260x60 terminal.
  static func paneLines(_ pane: Pane, _ snap: Snapshot, _ rates: SnapshotRates?) -> [[Character]] {
    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    let frame = renderFrame(
      state: DashboardState(pane: pane), data: data, symbolize: Fixtures.symbolize, width: 260, height: 60)
    return frame.grid.text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0) }
  }

  @Test(arguments: [true, false])
  func paneAndLockTableShowTheSameCells(withRates: Bool) throws {
    let (snap, allRates) = try Fixtures.fullV2()
    let rates = withRates ? allRates : nil
    let table = LockTable(snapshot: snap, rates: rates, top: 0, symbolize: Fixtures.symbolize)
    let tableLines = table.text.split(separator: "\n").map { Array($0) }
    let tableHeader = try #require(tableLines.first)

    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    let frame = renderFrame(
      state: DashboardState(pane: .locks), data: data, symbolize: Fixtures.symbolize, width: 260, height: 60)
    let paneLines = frame.grid.text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0) }
    let paneHeaderIndex = try #require(paneLines.firstIndex { Self.find(Array("HOLDER"), in: $0) != nil })
    let paneHeader = paneLines[paneHeaderIndex]

    #expect(table.rows.count == snap.locks.count)
    var compared = 0
    for (n, row) in table.rows.enumerated() {
      let tableLine = tableLines[n + 1]
      // The pane's line for this lock: its name under NAME, after the marker.
      // The pane draws the marker in the NAME column's first cell, the name after it.
      let nameCell = row.cells.marker + row.cells.name
      let paneLine = try #require(
        paneLines.dropFirst(paneHeaderIndex + 1).first {
          Self.cell($0, header: paneHeader, title: "NAME", left: true, length: nameCell.count) == nameCell
        }, "no pane line shows lock \(nameCell)")
      for column in LockTable.columns {
        let text = column.cell(row.cells)
        guard column.width == 0 || text.count <= column.width else { continue }  // cut in the text table
        let inTable = Self.cell(
          tableLine, header: tableHeader, title: column.title, left: column.left, length: text.count)
        #expect(inTable == text, "text table, \(nameCell), \(column.title)")
        if column.title == "LOCK" { continue }  // found above, with the marker
        let inPane = Self.cell(
          paneLine, header: paneHeader, title: Self.paneTitle(column.title), left: column.left,
          length: text.count)
        // A cell too long for the pane's column is cut there with "…": what it shows must be the start.
        if let shown = inPane, let cut = shown.firstIndex(of: "…"), column.left {
          #expect(text.hasPrefix(shown[..<cut]), "pane, \(nameCell), \(column.title): \(String(paneLine))")
        } else {
          #expect(inPane == text, "pane, \(nameCell), \(column.title): \(String(paneLine))")
        }
        compared += 1
      }
      #expect(tableLine.first.map(String.init) == row.cells.marker)
    }
    #expect(compared >= snap.locks.count * 10, "most cells were compared")
    // One deadlock sentence, the same in both.
    for sentence in table.deadlocks { #expect(frame.grid.text.contains(sentence)) }
    #expect(!table.deadlocks.isEmpty)
    if let misuse = table.misuse { #expect(frame.grid.text.contains(misuse)) }
  }

  /// Negative control: a cell the pane does not show is not found by the comparison.
  @Test func aWrongCellIsNoticed() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let lines = Self.paneLines(.locks, snap, rates)
    let header = try #require(lines.first { Self.find(Array("HOLDER"), in: $0) != nil })
    let table = LockTable(snapshot: snap, rates: rates, top: 0, symbolize: Fixtures.symbolize)
    let row = try #require(table.rows.first { $0.cells.holder != "-" })
    let line = try #require(
      lines.first { String($0).contains(row.cells.name) && String($0).contains(row.cells.holder) })
    let wrong = row.cells.holder + "x"
    #expect(Self.cell(line, header: header, title: "HOLDER", left: true, length: wrong.count) != wrong)
  }

  /// The timers pane draws the shared timer-queue row model's cells (the text snapshot prints the
  /// same cells): each one stands under its header in the pane's line for that lcpu.
  @Test func timersPaneShowsTheRowModelsCells() throws {
    let (snap, rates) = try Fixtures.fullV2()
    let lines = Self.paneLines(.timers, snap, rates)
    let headerIndex = try #require(lines.firstIndex { Self.find(Array("LATE MAX"), in: $0) != nil })
    let header = lines[headerIndex]
    let rows = TimerQueueRow.rows(snap, rates: rates)
    try #require(!rows.isEmpty)
    for row in rows {
      let c = row.cells
      let line = try #require(
        lines.dropFirst(headerIndex + 1).first {
          Self.cell($0, header: header, title: "CPU", left: false, length: c.lcpu.count + 1) == c.lcpu
            + c.marker
        }, "no pane line for lcpu \(c.lcpu)")
      let columns: [(String, Bool, String)] = [
        ("PEND", false, c.pending), ("DUE IN", false, c.due), ("FIRED/s", false, c.firedPerSecond),
        ("LATE MAX", false, c.lateMax), ("LATE AVG", false, c.lateMean), ("FIRED", false, c.fired),
        ("LATENESS", true, c.lateness), ("EARLIEST PENDING", true, c.earliest),
      ]
      for (title, left, text) in columns {
        let shown = Self.cell(line, header: header, title: title, left: left, length: text.count)
        if let shown, let cut = shown.firstIndex(of: "…"), left {
          #expect(text.hasPrefix(shown[..<cut]), "lcpu \(c.lcpu), \(title)")
        } else {
          #expect(shown == text, "lcpu \(c.lcpu), \(title): \(String(line))")
        }
      }
    }
  }
}
