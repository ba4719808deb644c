import Model

/// The smallest terminal the dashboard draws into; anything smaller gets a "too small" message.
public let minimumSize = (width: 40, height: 8)

/// A rendered frame and the geometry the reducer needs to move through it.
public struct Frame: Sendable, Equatable {
  /// What to show.
  public var grid: Grid
  /// Row order and page sizes of what is shown, for `reduce(_, .sync(layout))`.
  public var layout: ViewLayout
}

/// Renders the dashboard into a grid of `width` × `height` cells. Pure: the same inputs give the same grid.
///
/// - Parameters:
///   - state: selection, pane, overlays.
///   - snapshot: the latest snapshot, nil before the first one.
///   - rates: rates between the two latest snapshots.
///   - detail: disassembly and frame chain for `state.detail`, fetched by the caller.
///   - target: QEMU version and machine for the header.
///   - symbolize: address to "symbol+0x1a".
public func render(
  state: DashboardState, snapshot: Snapshot?, rates: SnapshotRates?, detail: DetailData? = nil,
  target: TargetInfo = TargetInfo(), symbolize: Symbolizer = { _ in nil }, width: Int, height: Int
) -> Grid {
  renderFrame(
    state: state, data: DashboardData(snapshot: snapshot, rates: rates, detail: detail, target: target),
    symbolize: symbolize, width: width, height: height
  ).grid
}

/// Renders a frame and reports its layout; the run loop feeds the layout back with `.sync`.
public func renderFrame(
  state: DashboardState, data: DashboardData, symbolize: Symbolizer, width: Int, height: Int
) -> Frame {
  var g = Grid(width: width, height: height)
  let vmRunning = data.snapshot?.runState.map(\.isRunning)
  guard width >= minimumSize.width, height >= minimumSize.height else {
    drawTooSmall(into: &g)
    return Frame(grid: g, layout: ViewLayout(rowIDs: state.layout.rowIDs, pageRows: 1, vmRunning: vmRunning))
  }
  let glyphs = state.charset.glyphs
  let generic = data.snapshot.map { $0.guest == nil } ?? false
  drawHeader(into: &g, state: state, data: data, width: width)
  drawFunctionBar(into: &g, state: state, y: height - 1, width: width)
  let body = Rect(x: 0, y: headerHeight + 1, width: width, height: height - headerHeight - 2)
  var layout = ViewLayout(
    rowIDs: [], pageRows: max(1, body.height - 1), vmRunning: vmRunning, generic: generic)

  if let snap = data.snapshot {
    switch state.pane {
    case .lcpus where generic:
      layout = drawVCPUPane(
        into: &g, state: state, snapshot: snap, symbolize: symbolize, body: body, layout: layout)
    case .lcpus:
      layout = drawLCPUPane(
        into: &g, state: state, data: data, snapshot: snap, symbolize: symbolize, body: body,
        layout: layout)
    case _ where generic:
      drawPlaceholder(into: &g, lines: placeholderText(for: state.pane, generic: generic), body: body)
    case .locks:
      layout = drawLocksPane(
        into: &g, state: state, data: data, snapshot: snap, symbolize: symbolize, body: body, layout: layout)
    case .allocator:
      layout = drawAllocPane(into: &g, state: state, data: data, snapshot: snap, body: body, layout: layout)
    case .virtio:
      layout = drawVirtioPane(into: &g, state: state, data: data, snapshot: snap, body: body, layout: layout)
    case .timers:
      layout = drawTimersPane(into: &g, state: state, data: data, snapshot: snap, body: body, layout: layout)
    case .timeline:
      layout = drawTimelinePane(into: &g, state: state, timeline: data.timeline, body: body, layout: layout)
    case .profile:
      layout = drawProfilePane(into: &g, state: state, profile: data.profile, body: body, layout: layout)
    }
    if let view = state.whereView {
      // A lock or thread view covers the pane (and the lcpu detail or threads view under it).
      let content = whereContent(view, state: state, data: data, symbolize: symbolize, width: width)
      g.fill(body)
      let scroll = max(0, min(state.detailScroll, content.height - body.height))
      g.blit(cropped(content, from: scroll, rows: body.height), x: body.x, y: body.y)
      layout.detailLines = content.height
      layout.detailPageRows = body.height
    } else if state.threadsView, state.detail != nil, state.pane == .lcpus {
      let content = threadsContent(state: state, data: data, symbolize: symbolize, width: width)
      g.fill(body)
      let scroll = max(0, min(state.detailScroll, content.grid.height - body.height))
      g.blit(cropped(content.grid, from: scroll, rows: body.height), x: body.x, y: body.y)
      layout.detailLines = content.grid.height
      layout.detailPageRows = body.height
      layout.threadIDs = content.ids
      layout.threadLines = content.lines
    } else if state.detail != nil, state.pane == .lcpus {
      let content = detailContent(state: state, data: data, symbolize: symbolize, width: width)
      g.fill(body)
      let scroll = max(0, min(state.detailScroll, content.height - body.height))
      g.blit(cropped(content, from: scroll, rows: body.height), x: body.x, y: body.y)
      layout.detailLines = content.height
      layout.detailPageRows = body.height
    }
  } else {
    drawPlaceholder(into: &g, lines: ["Waiting for the first snapshot."], body: body)
  }
  // The tab bar goes last: it names the sort key when the pane had no room for that column.
  drawTabs(
    into: &g, state: state, generic: generic,
    hiddenSortKey: state.detail == nil && state.whereView == nil ? layout.hiddenSortKey : nil,
    y: headerHeight, width: width)
  if state.helpVisible {
    drawHelp(
      into: &g, area: Rect(x: 0, y: 0, width: width, height: height - 1), glyphs: glyphs,
      extraLegend: state.staticLockFindings.isEmpty ? [] : [staticFindingsLegend])
  }
  return Frame(grid: g, layout: layout)
}

/// The lcpus pane: a table, or compact meters plus a table when the lcpus do not fit one per row.
func drawLCPUPane(
  into g: inout Grid, state: DashboardState, data: DashboardData, snapshot: Snapshot, symbolize: Symbolizer,
  body: Rect, layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  let all = lcpuRows(snapshot, rates: data.rates, symbolize: symbolize, glyphs: glyphs)
  let rows = arrange(all, filter: state.filter, sort: state.current)
  layout.rowIDs = rows.map(\.id)
  let plan = planLCPUPane(count: all.count, body: body)
  let selected =
    state.current.selectedID.flatMap { id in layout.rowIDs.contains(id) ? id : nil } ?? rows.first?.id
  if plan.compact {
    drawMeters(into: &g, rows: all, plan: plan, body: body, selected: selected, glyphs: glyphs)
  }
  if let y = plan.summaryLine {
    drawSummary(
      into: &g, row: rows.first { $0.id == selected }, x: body.x, y: y, width: body.width, glyphs: glyphs)
    layout.pageRows = plan.meterRows
  }
  if !plan.table.isEmpty {
    let stopped = snapshot.vcpus?.isEmpty == false
    let columns = placeColumns(
      lcpuColumns(glyphs: glyphs, ripTitle: stopped ? "RIP (stopped)" : "RIP (last tick)"),
      width: plan.table.width)
    let page = max(1, plan.table.height - 1)
    let scroll = scrollKeepingVisible(
      PaneState(selectedID: selected, scroll: state.current.scroll),
      ViewLayout(rowIDs: layout.rowIDs, pageRows: page))
    layout.hiddenSortKey = drawTable(
      into: &g, rect: plan.table, columns: columns, rows: rows, scroll: scroll, selected: selected,
      sortKey: state.current.sortKey, descending: state.current.descending, glyphs: glyphs, id: \.id)
    layout.pageRows = page
    if rows.isEmpty {
      g.put(
        all.isEmpty
          ? "The guest published no lcpu records." : "No lcpu matches the filter \"\(state.filter)\".",
        x: plan.table.x + 1, y: plan.table.y + 1, style: .dim, maxWidth: plan.table.width - 2)
    }
  }
  return layout
}

/// The generic-mode pane: vCPU registers from the gdbstub.
func drawVCPUPane(
  into g: inout Grid, state: DashboardState, snapshot: Snapshot, symbolize: Symbolizer, body: Rect,
  layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  let rows = arrange(vcpuRows(snapshot, symbolize: symbolize), filter: state.filter, sort: state.current)
  layout.rowIDs = rows.map(\.id)
  let selected =
    state.current.selectedID.flatMap { id in layout.rowIDs.contains(id) ? id : nil } ?? rows.first?.id
  let columns = placeColumns(vcpuColumns(glyphs: glyphs), width: body.width)
  let page = max(1, body.height - 1)
  let scroll = scrollKeepingVisible(
    PaneState(selectedID: selected, scroll: state.current.scroll),
    ViewLayout(rowIDs: layout.rowIDs, pageRows: page))
  layout.hiddenSortKey = drawTable(
    into: &g, rect: body, columns: columns, rows: rows, scroll: scroll, selected: selected,
    sortKey: state.current.sortKey, descending: state.current.descending, glyphs: glyphs, id: \.id)
  layout.pageRows = page
  if snapshot.vcpus == nil {
    drawPlaceholder(
      into: &g,
      lines: [
        "No vCPU registers in this snapshot.",
        "The gdbstub reads registers while the VM is stopped: press space to pause it, s to step.",
      ], body: Rect(x: body.x, y: body.y + 1, width: body.width, height: body.height - 1))
  }
  return layout
}

/// Rows `from ..< from + rows` of a grid.
func cropped(_ grid: Grid, from: Int, rows: Int) -> Grid {
  var out = Grid(width: grid.width, height: max(0, min(rows, grid.height - from)))
  out.blit(grid, x: 0, y: 0, sourceY: from)
  return out
}

/// The message shown instead of the dashboard when the terminal is smaller than `minimumSize`.
func drawTooSmall(into g: inout Grid) {
  let lines = [
    "terminal too small",
    "\(g.width)x\(g.height), need \(minimumSize.width)x\(minimumSize.height)",
    "q quits",
  ]
  let top = max(0, (g.height - lines.count) / 2)
  for (i, line) in lines.enumerated() where top + i < g.height {
    let text = truncate(line, to: g.width, ellipsis: ">")
    g.put(text, x: max(0, (g.width - displayWidth(text)) / 2), y: top + i, style: i == 0 ? .warn : .normal)
  }
}
