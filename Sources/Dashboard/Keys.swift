/// A key press, decoded by the terminal backend from whatever the terminal sent.
public enum Key: Sendable, Hashable {
  /// A printable character (including space).
  case character(Character)
  /// Ctrl plus a letter, given in lower case: Ctrl-L is `.control("l")`.
  case control(Character)
  /// F1…F12.
  case function(Int)
  /// Arrow up.
  case up
  /// Arrow down.
  case down
  /// Arrow left.
  case left
  /// Arrow right.
  case right
  /// Page up.
  case pageUp
  /// Page down.
  case pageDown
  /// Home.
  case home
  /// End.
  case end
  /// Enter or Return.
  case enter
  /// Escape (alone, after the short ESC delay).
  case escape
  /// Tab.
  case tab
  /// Shift-Tab.
  case backTab
  /// Backspace.
  case backspace
  /// The terminal changed size.
  case resize
}

/// What a key means to the dashboard, independent of which key it was.
public enum Action: Sendable, Equatable {
  /// Leave the dashboard.
  case quit
  /// Show or hide the key table.
  case toggleHelp
  /// Close the innermost thing open: filter editing, help, a lock or thread view, detail, then an
  /// active filter.
  case escape
  /// Next pane (Tab).
  case nextPane
  /// Previous pane (Shift-Tab).
  case previousPane
  /// A pane by number.
  case selectPane(Pane)
  /// Move the selection (or scroll the detail view) by rows.
  case move(Int)
  /// Move by one page up.
  case pageUp
  /// Move by one page down.
  case pageDown
  /// Go to the first row.
  case home
  /// Go to the last row.
  case end
  /// Open the detail view of the selected row: an lcpu's, a lock's (holder and waiters) or, in
  /// the threads view, a thread's.
  case openDetail
  /// In the detail view, show the previous (-1) or next (+1) lcpu.
  case detailNeighbour(Int)
  /// Sort by the next column.
  case sortNext
  /// Sort by the previous column.
  case sortPrevious
  /// Reverse the sort direction.
  case invertSort
  /// Start typing a filter.
  case beginFilter
  /// Type one character into the filter.
  case filterInput(Character)
  /// Delete the last filter character.
  case filterBackspace
  /// Keep the filter and stop editing.
  case commitFilter
  /// Drop the edit and restore the previous filter.
  case cancelFilter
  /// Stop the VM, or let it run again.
  case togglePause
  /// Single-step the selected lcpu by one instruction.
  case step
  /// Step the detail view's lcpu until its source line changes.
  case stepLine
  /// Open (or close) the threads view: where every thread is.
  case toggleThreads
  /// Let the VM run.
  case continueVM
  /// Refresh more often.
  case faster
  /// Refresh less often.
  case slower
  /// Repaint the whole terminal (Ctrl-L).
  case redraw
  /// Switch to the next colour scheme.
  case cycleColors
  /// The terminal changed size.
  case resize
  /// The run loop reports the geometry of the frame it is about to draw.
  case sync(ViewLayout)
  /// The program reports something to the user (an effect's result or error).
  case status(String)
  /// An effect the sampler carried out finished; its result replaces the "…ing" message.
  case effectFinished(EffectResult)
  /// Timeline pane: freeze or unfreeze the view.
  case timelineFreeze
  /// Timeline pane: a wider (+1) or narrower (-1) window.
  case timelineZoom(Int)
  /// Timeline pane: move the window back (-1) or forward (+1) by half its width.
  case timelineScroll(Int)
  /// Timeline pane: show earlier (-1) or later (+1) lanes.
  case timelineLanes(Int)
  /// Switch the guest's tracing on (every class) or off: writes its trace control word.
  case toggleTrace
  /// Profile pane: the previous (-1) or next (+1) lcpu; before the first comes "all lcpus".
  case profileLCPU(Int)
  /// Profile pane: name samples by source line instead of function, or back.
  case profileLines
  /// Profile pane: show the icicle view of the chosen lcpu instead of the table, or back.
  case profileIcicle
  /// Profile pane: a longer (+1) or shorter (-1) window of samples.
  case profileWindow(Int)
}

/// What the caller must do after a reduction. The reducer never does I/O; these flags ask for it.
public struct Reaction: OptionSet, Sendable, Hashable {
  /// The raw bits.
  public let rawValue: UInt32
  /// Creates a reaction from raw bits.
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// Render and present a new frame.
  public static let redraw = Reaction(rawValue: 1 << 0)
  /// Leave the run loop.
  public static let quit = Reaction(rawValue: 1 << 1)
  /// Stop the VM (QMP `stop`).
  public static let pauseVM = Reaction(rawValue: 1 << 2)
  /// Let the VM run again (QMP `cont`).
  public static let resumeVM = Reaction(rawValue: 1 << 3)
  /// Single-step `state.targetLCPU` by one instruction (stopping the VM first if needed).
  public static let stepSelected = Reaction(rawValue: 1 << 4)
  /// Step `state.detail`'s lcpu until its source line changes (stopping the VM first if needed).
  public static let stepLineSelected = Reaction(rawValue: 1 << 10)
  /// Continue the VM after stepping.
  public static let continueVM = Reaction(rawValue: 1 << 5)
  /// The sampler should use `state.intervalMilliseconds`.
  public static let changeInterval = Reaction(rawValue: 1 << 6)
  /// Fetch detail data (disassembly, frame chain) for `state.detail`, and backtraces while a lock
  /// or thread view (`state.whereViews`) is open or the timers pane shows; sent again when one
  /// closes and when the pane changes.
  public static let openDetail = Reaction(rawValue: 1 << 7)
  /// Clear and repaint the whole terminal, not only changed cells.
  public static let fullRedraw = Reaction(rawValue: 1 << 8)
  /// Apply `state.colorScheme`.
  public static let changeColors = Reaction(rawValue: 1 << 9)
  /// Switch the guest's tracing on or off (`state.timeline.traceOn` says which).
  public static let toggleTrace = Reaction(rawValue: 1 << 11)
  /// Freeze or unfreeze the timeline's data (`state.timeline.frozen`).
  public static let freezeTimeline = Reaction(rawValue: 1 << 12)
}

/// The key table: what `key` means in `state` (filter editing and the help overlay change it); nil = ignored.
public func action(for key: Key, in state: DashboardState) -> Action? {
  // Keys that mean the same everywhere.
  switch key {
  case .control("c"): return .quit
  case .resize: return .resize
  case .control("l"): return .redraw
  default: break
  }
  if state.isEditingFilter {
    switch key {
    case .enter: return .commitFilter
    case .escape: return .cancelFilter
    case .backspace: return .filterBackspace
    case .character(let c): return .filterInput(c)
    case .function(10): return .quit
    case .up: return .move(-1)
    case .down: return .move(1)
    default: return nil
    }
  }
  if state.helpVisible {
    switch key {
    case .function(10), .character("q"): return .quit
    default: return .toggleHelp  // htop: any key leaves the help screen
    }
  }
  if state.pane == .timeline && state.detail == nil {
    switch key {
    case .character(" "): return .timelineFreeze
    case .character("+"), .character("="): return .timelineZoom(1)
    case .character("-"), .character("_"): return .timelineZoom(-1)
    case .left: return .timelineScroll(-1)
    case .right: return .timelineScroll(1)
    case .pageUp: return .timelineLanes(-1)
    case .pageDown: return .timelineLanes(1)
    case .character("t"): return .toggleTrace
    default: break
    }
  }
  if state.pane == .profile && state.detail == nil && state.whereView == nil {
    switch key {
    case .left: return .profileLCPU(-1)
    case .right: return .profileLCPU(1)
    case .character("l"): return .profileLines
    case .character("f"): return .profileIcicle
    case .character("+"), .character("="): return .profileWindow(1)
    case .character("-"), .character("_"): return .profileWindow(-1)
    default: break
    }
  }
  switch key {
  case .function(1), .character("?"), .character("h"): return .toggleHelp
  case .function(10), .character("q"): return .quit
  case .function(2): return .cycleColors
  case .function(3), .function(4), .character("/"), .character("\\"): return .beginFilter
  case .function(5), .character(" "): return .togglePause
  case .function(6), .character(">"), .character("."): return .sortNext
  case .character("<"), .character(","): return .sortPrevious
  case .character("I"): return .invertSort
  case .function(7), .character("s"): return .step
  case .character("n"): return state.detail == nil ? nil : .stepLine
  case .character("T"): return .toggleThreads
  case .function(8), .character("c"): return .continueVM
  case .character("+"), .character("="): return .slower
  case .character("-"), .character("_"): return .faster
  case .tab: return .nextPane
  case .backTab: return .previousPane
  case .character(let c) where c >= "1" && c <= "9":
    return c.wholeNumberValue.flatMap(Pane.init(rawValue:)).map(Action.selectPane)
  case .up, .character("k"): return .move(-1)
  case .down, .character("j"): return .move(1)
  case .left: return state.detail == nil || state.whereView != nil ? nil : .detailNeighbour(-1)
  case .right: return state.detail == nil || state.whereView != nil ? nil : .detailNeighbour(1)
  case .pageUp, .control("b"): return .pageUp
  case .pageDown, .control("f"): return .pageDown
  case .home, .character("g"): return .home
  case .end, .character("G"): return .end
  case .enter:
    // A lock row, an lcpu row or a thread of the threads view; nothing under a lock or thread view.
    if state.whereView != nil { return nil }
    return state.detail == nil || state.threadsView ? .openDetail : nil
  case .escape: return .escape
  default: return nil
  }
}
