import Model

/// One buddy order as the alloc pane shows it: the shared row model plus what only the pane needs.
struct OrderRow {
  /// The row every output renders.
  var row: AllocOrderRow
  /// The row's identity in the table (the order).
  var id: Int
  /// Lower-cased text the filter matches against.
  var search: String
  /// The order's record.
  var record: AllocOrderRecord { row.record }
  /// The interval's rates.
  var rates: AllocOrderRates? { row.rates }
  /// Bytes in free blocks.
  var freeBytes: UInt64 { row.freeBytes }
  /// Bytes in used blocks.
  var usedBytes: UInt64 { row.usedBytes }
}

/// "lock-free", "locked", or the guest's word.
func allocatorModeText(_ mode: String) -> String {
  switch mode.lowercased() {
  case "lockfree", "lock-free", "lock_free": return "lock-free"
  case "locked", "lock": return "locked"
  default: return mode.isEmpty ? "mode ?" : mode
  }
}

/// The columns of the order table: the row model's cells.
func orderColumns(glyphs: Glyphs) -> [Column<OrderRow>] {
  return [
    .fixed("ORDER", 6, priority: 0, key: .order) { g, r, x, y, w in
      g.field(r.row.cells.order, x: x, y: y, width: w, style: .value, align: .right)
    },
    .fixed("BLOCK", 6, priority: 0) { g, r, x, y, w in
      g.field(r.row.cells.block, x: x, y: y, width: w, style: .dim, align: .right)
    },
    .flexible(
      "USED/FREE BLOCKS", minimum: 12, preferred: 18, maximum: 48, weight: 2, priority: 0, align: .left
    ) {
      g, r, x, y, w in
      let total = r.freeBytes + r.usedBytes
      g.meter(
        x: x, y: y, width: w, fraction: total == 0 ? nil : Double(r.usedBytes) / Double(total),
        text: r.row.cells.usedFree, glyphs: glyphs)
    },
    .fixed("FREE", 6, priority: 0, key: .free) { g, r, x, y, w in
      g.field(r.row.cells.free, x: x, y: y, width: w, style: r.freeBytes == 0 ? .dim : .ok, align: .right)
    },
    .fixed("USED", 6, priority: 1) { g, r, x, y, w in
      g.field(r.row.cells.used, x: x, y: y, width: w, style: r.usedBytes == 0 ? .dim : .normal, align: .right)
    },
    .fixed("ALLOC/s", 8, priority: 0, key: .allocs) { g, r, x, y, w in
      cellNumber(r.row.cells.allocsPerSecond, r.rates?.allocsPerSecond, &g, x, y, w)
    },
    .fixed("FREE/s", 6, priority: 0) { g, r, x, y, w in
      cellNumber(r.row.cells.freesPerSecond, r.rates?.freesPerSecond, &g, x, y, w)
    },
    .fixed("FAIL/s", 6, priority: 0) { g, r, x, y, w in
      cellNumber(r.row.cells.failuresPerSecond, r.rates?.failuresPerSecond, &g, x, y, w, style: .error)
    },
    .fixed("CAS/s", 6, priority: 2) { g, r, x, y, w in
      cellNumber(r.row.cells.casRetriesPerSecond, r.rates?.casRetriesPerSecond, &g, x, y, w, style: .warn)
    },
    .fixed("ALLOCS", 7, priority: 3) { g, r, x, y, w in
      cellNumber(r.row.cells.allocs, Double(r.record.allocs), &g, x, y, w)
    },
    .fixed("FREES", 7, priority: 3) { g, r, x, y, w in
      cellNumber(r.row.cells.frees, Double(r.record.frees), &g, x, y, w)
    },
    .fixed("SPLITS", 7, priority: 4) { g, r, x, y, w in
      cellNumber(r.row.cells.splits, Double(r.record.splits), &g, x, y, w)
    },
    .fixed("MERGES", 7, priority: 4) { g, r, x, y, w in
      cellNumber(r.row.cells.merges, Double(r.record.merges), &g, x, y, w)
    },
    .fixed("FAILS", 6, priority: 2) { g, r, x, y, w in
      cellNumber(r.row.cells.failures, Double(r.record.failures), &g, x, y, w, style: .error)
    },
    .fixed("CAS", 7, priority: 5) { g, r, x, y, w in
      cellNumber(r.row.cells.casRetries, Double(r.record.casRetries), &g, x, y, w)
    },
  ]
}

/// The alloc pane: totals, mode and self-check on top, then one row per buddy order.
func drawAllocPane(
  into g: inout Grid, state: DashboardState, data: DashboardData, snapshot: Snapshot, body: Rect,
  layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  guard let a = snapshot.allocator else {
    g.put(
      "no allocator published by this guest", x: body.x + 1, y: body.y, style: .dim, maxWidth: body.width - 2)
    layout.rowIDs = []
    return layout
  }
  let rates = data.rates
  let page = a.pageBytes == 0 ? 4096 : a.pageBytes

  var lines: [Segments] = []
  var s1 = Segments()
  switch a.consistency {
  case .consistent: break
  case .inconsistent: s1.add("~ read while changing", .warn)
  case .unreadable(let reason): s1.add("! unreadable: " + reason, .error)
  }
  s1.add(allocatorModeText(a.mode), .value, separated: !s1.pieces.isEmpty)
  s1.add(
    Format.bytes(a.pagesManaged * page) + " (\(a.pagesManaged) pages)", .value, separated: true,
    label: "managed ")
  let freeShare = a.pagesManaged == 0 ? 0 : 100 * Double(a.pagesFree) / Double(a.pagesManaged)
  s1.add(
    Format.bytes(a.pagesFree * page) + " " + Format.fixed(freeShare, decimals: 0) + "%",
    freeShare < 10 ? .warn : .value,
    separated: true, label: "free ")
  if let o = a.largestFreeOrder {
    s1.add(
      "\(o) (" + Format.bytes(page << min(o, 40)) + ")", .value, priority: 2, separated: true,
      label: "largest free order ")
  } else {
    s1.add("none", .warn, priority: 2, separated: true, label: "largest free order ")
  }
  let cas = rates.map { r in r.allocOrders.reduce(0) { $0 + $1.casRetriesPerSecond } }
  s1.add(
    (cas.map(Format.human) ?? glyphs.unknown) + "/s", .value, priority: 1, separated: true,
    label: "CAS retries ")
  lines.append(s1)

  var s2 = Segments()
  if a.churnFailures > 0 {
    s2.add("CHURN CHECK FAILED \(a.churnFailures)/\(a.churnChecks)", .error)
  } else if a.churnChecks == 0 {
    s2.add("churn check not run yet", .dim)
  } else {
    s2.add("churn check ok \(a.churnChecks)/\(a.churnChecks)", .ok)
  }
  s2.add(Format.bytes(a.heapBytesInUse) + " in use", .value, priority: 1, separated: true, label: "heap ")
  s2.add(
    ", " + Format.human(Double(a.heapAllocs)) + " allocs, " + Format.human(Double(a.heapFrees)) + " frees",
    .normal,
    priority: 2)
  let leaked = Int64(bitPattern: a.startFreePages &- a.pagesFree)
  if a.startFreePages > 0 {
    s2.add(
      "\(leaked) pages since start", leaked > 0 ? .normal : .dim, priority: 3, separated: true,
      label: "taken ")
  }
  lines.append(s2)

  if !a.lcpuAllocs.isEmpty {
    var s3 = Segments()
    var text = ""
    for (i, n) in a.lcpuAllocs.enumerated() {
      if i > 0 { text += "  " }
      text += "cpu\(i) " + Format.human(Double(n))
      if i < a.lcpuFrees.count { text += "/" + Format.human(Double(a.lcpuFrees[i])) }
    }
    s3.add(text, .normal, elastic: true, label: "allocs/frees per lcpu: ")
    lines.append(s3)
  }
  for (n, line) in lines.enumerated() where n < body.height {
    line.draw(into: &g, x: body.x, y: body.y + n, width: body.width, glyphs: glyphs)
  }
  let (_, tableArea) = splitRows(body, top: lines.count + 1)
  let all = AllocOrderRow.rows(snapshot, rates: rates, style: cellStyle(glyphs)).map { r in
    OrderRow(row: r, id: Int(truncatingIfNeeded: r.id), search: "order \(r.id)")
  }
  let rows = arrangeRows(
    all, filter: state.filter, sort: state.current, search: \.search, id: \.id,
    values: { r, key in
      switch key {
      case .order: return [.number(Double(r.record.order))]
      case .free: return [.number(Double(r.freeBytes))]
      case .allocs: return [r.rates.map { .number($0.allocsPerSecond) }]
      default: return []
      }
    })
  drawPaneTable(
    into: &g, state: state, rect: tableArea, columns: orderColumns(glyphs: glyphs), rows: rows, id: \.id,
    layout: &layout)
  if all.isEmpty {
    drawEmptyLine(into: &g, "the allocator published no orders", rect: tableArea)
  } else if rows.isEmpty {
    drawEmptyLine(into: &g, noMatch("order", state.filter), rect: tableArea)
  }
  return layout
}
