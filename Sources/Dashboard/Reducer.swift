import Model

/// Applies one action to the state and says what the caller must do. Pure: no I/O, no clock, no globals.
public func reduce(_ state: DashboardState, _ action: Action) -> (DashboardState, Reaction) {
  var s = state
  // A message stays up until the user does something.
  switch action {
  case .sync, .status, .resize, .effectFinished: break
  default: s.statusMessage = nil
  }

  switch action {
  case .quit:
    return (s, .quit)

  case .toggleHelp:
    s.helpVisible.toggle()
    return (s, .redraw)

  case .escape:
    if s.helpVisible {
      s.helpVisible = false
    } else if let top = s.whereViews.popLast() {
      // Back to the view under it, scrolled as it was.
      s.detailScroll = top.scrollBefore
      return (s, [.redraw, .openDetail])
    } else if s.detail != nil {
      s.detail = nil
      s.detailScroll = 0
      s.threadsView = false
    } else if !s.filter.isEmpty {
      s.filter = ""
    } else {
      return (s, [])
    }
    return (s, .redraw)

  case .nextPane, .previousPane, .selectPane:
    let all = Pane.allCases
    let i = all.firstIndex(of: s.pane) ?? 0
    switch action {
    case .nextPane: s.pane = all[(i + 1) % all.count]
    case .previousPane: s.pane = all[(i + all.count - 1) % all.count]
    case .selectPane(let p): s.pane = p
    default: break
    }
    s.detail = nil
    s.detailScroll = 0
    s.threadsView = false
    s.whereViews = []
    s.helpVisible = false
    // The sampler learns what the pane needs (the timers pane places timer owners).
    return (s, [.redraw, .openDetail])

  case .move(let n):
    if s.threadsView && s.whereView == nil { return (moveThreadSelection(s, by: n), .redraw) }
    if s.detail != nil || s.whereView != nil { return scrollDetail(s, by: n) }
    return (moveSelection(s, by: n), .redraw)
  case .pageUp:
    if s.threadsView && s.whereView == nil {
      return (moveThreadSelection(s, by: -threadsPerPage(s)), .redraw)
    }
    if s.detail != nil || s.whereView != nil {
      return scrollDetail(s, by: -max(1, s.layout.detailPageRows - 1))
    }
    return (moveSelection(s, by: -max(1, s.layout.pageRows - 1)), .redraw)
  case .pageDown:
    if s.threadsView && s.whereView == nil { return (moveThreadSelection(s, by: threadsPerPage(s)), .redraw) }
    if s.detail != nil || s.whereView != nil {
      return scrollDetail(s, by: max(1, s.layout.detailPageRows - 1))
    }
    return (moveSelection(s, by: max(1, s.layout.pageRows - 1)), .redraw)
  case .home:
    if s.threadsView && s.whereView == nil { return (moveThreadSelection(s, by: Int.min / 2), .redraw) }
    if s.detail != nil || s.whereView != nil { return scrollDetail(s, by: Int.min / 2) }
    return (moveSelection(s, by: Int.min / 2), .redraw)
  case .end:
    if s.threadsView && s.whereView == nil { return (moveThreadSelection(s, by: Int.max / 2), .redraw) }
    if s.detail != nil || s.whereView != nil { return scrollDetail(s, by: Int.max / 2) }
    return (moveSelection(s, by: Int.max / 2), .redraw)

  case .openDetail:
    if s.whereView != nil { return (s, []) }
    if s.threadsView {
      // The selected thread's view: its backtrace, the lock it waits on and that lock's holder.
      guard let id = s.selectedThread ?? s.layout.threadIDs.first else {
        s.statusMessage = "no thread to open"
        return (s, .redraw)
      }
      s.selectedThread = id
      s.whereViews.append(OpenWhereView(view: .thread(id), scrollBefore: s.detailScroll))
      s.detailScroll = 0
      return (s, [.redraw, .openDetail])
    }
    if s.pane == .locks {
      // The selected lock's view: its holder and every waiter, each with where it is.
      guard let id = s.current.selectedID ?? s.layout.rowIDs.first else {
        s.statusMessage = "nothing selected"
        return (s, .redraw)
      }
      s.current.selectedID = id
      s.whereViews.append(
        OpenWhereView(view: .lock(UInt64(bitPattern: Int64(id))), scrollBefore: s.detailScroll))
      s.detailScroll = 0
      return (s, [.redraw, .openDetail])
    }
    guard s.pane == .lcpus else {
      s.statusMessage = "no detail view in this pane"
      return (s, .redraw)
    }
    guard let id = s.current.selectedID ?? s.layout.rowIDs.first else {
      s.statusMessage = "nothing selected"
      return (s, .redraw)
    }
    s.current.selectedID = id
    s.detail = id
    s.detailScroll = 0
    return (s, [.redraw, .openDetail])

  case .detailNeighbour(let n):
    guard let open = s.detail, !s.layout.rowIDs.isEmpty else { return (s, []) }
    let ids = s.layout.rowIDs
    let i = ids.firstIndex(of: open) ?? 0
    let j = min(ids.count - 1, max(0, i + n))
    s.detail = ids[j]
    s.current.selectedID = ids[j]
    s.detailScroll = 0
    return (s, [.redraw, .openDetail])

  case .sortNext, .sortPrevious:
    let keys = s.pane.sortKeys(generic: s.layout.generic)
    guard !keys.isEmpty else { return (s, []) }
    let i = keys.firstIndex(of: s.current.sortKey) ?? 0
    let j = action == .sortNext ? (i + 1) % keys.count : (i + keys.count - 1) % keys.count
    s.current.sortKey = keys[j]
    s.current.descending = keys[j].defaultDescending
    s.statusMessage = sortMessage(s)
    return (s, .redraw)
  case .invertSort:
    s.current.descending.toggle()
    s.statusMessage = sortMessage(s)
    return (s, .redraw)

  case .beginFilter:
    s.filterBeforeEdit = s.filter
    s.isEditingFilter = true
    s.helpVisible = false
    return (s, .redraw)
  case .filterInput(let c):
    guard s.isEditingFilter, s.filter.count < 64 else { return (s, []) }
    s.filter.append(c)
    s.current.scroll = 0
    return (s, .redraw)
  case .filterBackspace:
    guard s.isEditingFilter, !s.filter.isEmpty else { return (s, []) }
    s.filter.removeLast()
    return (s, .redraw)
  case .commitFilter:
    s.isEditingFilter = false
    return (s, .redraw)
  case .cancelFilter:
    s.isEditingFilter = false
    s.filter = s.filterBeforeEdit
    return (s, .redraw)

  case .timelineFreeze:
    s.timeline.frozen.toggle()
    return (s, [.redraw, .freezeTimeline])
  case .timelineZoom(let n):
    s.timeline.zoom = max(0, min(TimelineState.windows.count - 1, s.timeline.zoom + n))
    return (s, .redraw)
  case .timelineScroll(let n):
    s.timeline.back = max(0, s.timeline.back - n)
    return (s, .redraw)
  case .timelineLanes(let n):
    s.timeline.firstLane = max(0, s.timeline.firstLane + n * max(1, s.layout.pageRows))
    return (s, .redraw)
  case .profileLCPU(let n):
    let choices: [Int?] = [nil] + s.layout.profileLCPUs.map { Optional($0) }
    let i = choices.firstIndex(of: s.profile.lcpu) ?? 0
    s.profile.lcpu = choices[max(0, min(choices.count - 1, i + n))]
    return (s, .redraw)
  case .profileLines:
    s.profile.lines.toggle()
    return (s, .redraw)
  case .profileIcicle:
    s.profile.icicle.toggle()
    return (s, .redraw)
  case .profileWindow(let n):
    s.profile.window = max(0, min(ProfileState.windows.count - 1, s.profile.window + n))
    return (s, .redraw)
  case .toggleTrace:
    s.timeline.traceOn.toggle()
    s.statusMessage = s.timeline.traceOn ? "switching tracing on..." : "switching tracing off..."
    return (s, [.redraw, .toggleTrace])
  case .togglePause:
    if s.vmPaused {
      s.vmPaused = false
      s.statusMessage = "resuming the VM..."
      return (s, [.redraw, .resumeVM])
    }
    s.vmPaused = true
    s.statusMessage = "pausing the VM..."
    return (s, [.redraw, .pauseVM])
  case .step:
    guard let target = s.targetLCPU else {
      s.statusMessage = "select an lcpu to step"
      return (s, .redraw)
    }
    s.vmPaused = true
    s.statusMessage = "stepping lcpu \(target)..."
    return (s, [.redraw, .stepSelected])
  case .toggleThreads:
    s.whereViews = []
    if s.threadsView {
      s.threadsView = false
      s.detail = nil
      s.detailScroll = 0
      return (s, .redraw)
    }
    // The view lives in the lcpus pane's detail area (it scrolls like the detail view).
    if s.pane != .lcpus { s.pane = .lcpus }
    s.threadsView = true
    s.detail = s.detail ?? s.current.selectedID ?? s.layout.rowIDs.first ?? 0
    s.detailScroll = 0
    return (s, [.redraw, .openDetail])
  case .stepLine:
    guard let target = s.detail else { return (s, []) }
    s.vmPaused = true
    s.statusMessage = "stepping lcpu \(target) to the next source line..."
    return (s, [.redraw, .stepLineSelected])
  case .continueVM:
    s.vmPaused = false
    s.statusMessage = "resuming the VM..."
    return (s, [.redraw, .continueVM])

  case .faster, .slower:
    let steps = DashboardState.intervals
    let now = s.intervalMilliseconds
    let next: Int?
    if action == .faster {
      next = steps.last(where: { $0 < now })
    } else {
      next = steps.first(where: { $0 > now })
    }
    guard let next else {
      s.statusMessage = "refresh interval stays \(intervalText(now))"
      return (s, .redraw)
    }
    s.intervalMilliseconds = next
    s.statusMessage = "refresh every \(intervalText(next))"
    return (s, [.redraw, .changeInterval])

  case .redraw:
    return (s, [.redraw, .fullRedraw])
  case .cycleColors:
    let all = ColorSchemeName.allCases
    let i = all.firstIndex(of: s.colorScheme) ?? 0
    s.colorScheme = all[(i + 1) % all.count]
    s.statusMessage = "colours: \(s.colorScheme.rawValue)"
    return (s, [.redraw, .changeColors])
  case .resize:
    return (s, .redraw)

  case .sync(let layout):
    s.layout = layout
    if let running = layout.vmRunning { s.vmPaused = !running }
    var p = s.current
    if let id = p.selectedID, !layout.rowIDs.contains(id) { p.selectedID = nil }
    if p.selectedID == nil { p.selectedID = layout.rowIDs.first }
    p.scroll = scrollKeepingVisible(p, layout)
    s.current = p
    if s.threadsView && s.whereView == nil && !layout.threadIDs.isEmpty {
      if let id = s.selectedThread, !layout.threadIDs.contains(id) { s.selectedThread = nil }
      if s.selectedThread == nil { s.selectedThread = layout.threadIDs.first }
    }
    s.detailScroll = max(0, min(s.detailScroll, layout.detailLines - layout.detailPageRows))
    return (s, [])

  case .status(let message):
    s.statusMessage = message
    return (s, .redraw)
  case .effectFinished(let result):
    guard result.sequence > s.lastEffect else { return (s, []) }
    s.lastEffect = result.sequence
    s.statusMessage = result.message
    return (s, .redraw)
  }
}

/// Moves the selection by `n` rows through the last frame's row order.
func moveSelection(_ state: DashboardState, by n: Int) -> DashboardState {
  var s = state
  let ids = s.layout.rowIDs
  guard !ids.isEmpty else { return s }
  var p = s.current
  let i = p.selectedID.flatMap { ids.firstIndex(of: $0) } ?? 0
  let j = min(ids.count - 1, max(0, i.addingReportingOverflow(n).partialValue))
  p.selectedID = ids[j]
  p.scroll = scrollKeepingVisible(p, s.layout)
  s.current = p
  return s
}

/// Moves the threads view's selection by `n` threads and scrolls so that the selected thread's
/// row (and as much of its backtrace below it as fits) is on screen.
func moveThreadSelection(_ state: DashboardState, by n: Int) -> DashboardState {
  var s = state
  let ids = s.layout.threadIDs
  let lines = s.layout.threadLines
  guard !ids.isEmpty, lines.count == ids.count else { return s }
  let i = s.selectedThread.flatMap { ids.firstIndex(of: $0) } ?? 0
  let j = min(ids.count - 1, max(0, i.addingReportingOverflow(n).partialValue))
  s.selectedThread = ids[j]
  let page = max(1, s.layout.detailPageRows)
  let top = lines[j]
  let end = j + 1 < lines.count ? lines[j + 1] : s.layout.detailLines
  var scroll = s.detailScroll
  if end > scroll + page { scroll = min(top, end - page) }
  if top < scroll { scroll = top }
  s.detailScroll = max(0, min(scroll, s.layout.detailLines - page))
  return s
}

/// How many thread rows start within one page below the selected one (PgUp/PgDn distance).
func threadsPerPage(_ s: DashboardState) -> Int {
  let lines = s.layout.threadLines
  let i = s.selectedThread.flatMap { s.layout.threadIDs.firstIndex(of: $0) } ?? 0
  guard i < lines.count else { return 1 }
  let page = max(1, s.layout.detailPageRows)
  return max(1, lines.filter { $0 > lines[i] && $0 < lines[i] + page }.count)
}

/// The scroll offset that keeps the selected row on screen, changing the old one as little as possible.
func scrollKeepingVisible(_ p: PaneState, _ layout: ViewLayout) -> Int {
  let page = max(1, layout.pageRows)
  let maxScroll = max(0, layout.rowIDs.count - page)
  var scroll = min(max(0, p.scroll), maxScroll)
  if let id = p.selectedID, let i = layout.rowIDs.firstIndex(of: id) {
    if i < scroll { scroll = i }
    if i >= scroll + page { scroll = i - page + 1 }
  }
  return scroll
}

/// Scrolls the detail view, clamped to its content.
func scrollDetail(_ state: DashboardState, by n: Int) -> (DashboardState, Reaction) {
  var s = state
  let maxScroll = max(0, s.layout.detailLines - s.layout.detailPageRows)
  s.detailScroll = min(maxScroll, max(0, s.detailScroll.addingReportingOverflow(n).partialValue))
  return (s, .redraw)
}

/// "sorted by BUSY% ↓": the title of the column the rows are ordered by, and the header's arrow.
func sortMessage(_ s: DashboardState) -> String {
  sortText(s.current.sortKey, descending: s.current.descending, glyphs: s.charset.glyphs)
}

/// "sorted by HOLD ↓", the same words whether F6 just chose the key or the key's column is hidden.
func sortText(_ key: SortKey, descending: Bool, glyphs: Glyphs) -> String {
  "sorted by \(key.rawValue) \(descending ? glyphs.down : glyphs.up)"
}

/// "500ms", "1s", "2.5s".
func intervalText(_ ms: Int) -> String {
  ms < 1000
    ? "\(ms)ms" : (ms % 1000 == 0 ? "\(ms / 1000)s" : Format.fixed(Double(ms) / 1000, decimals: 1) + "s")
}
