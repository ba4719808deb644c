/// The panes of the dashboard, in tab order; keys 1–7 select them.
///
/// Each pane shows one family of ABI v2 tables; a guest that does not publish a table gets a line saying so.
public enum Pane: Int, Sendable, Codable, CaseIterable {
  /// Per-lcpu state, load, interrupts and RIP (per-vCPU registers in generic mode).
  case lcpus = 1
  /// Lock holders and contention.
  case locks
  /// Buddy allocator levels.
  case allocator
  /// virtio queues.
  case virtio
  /// Timer deadlines.
  case timers
  /// The event trace: lock holds and waits, interrupts, switches per lcpu over time.
  case timeline
  /// The guest's stack samples: hottest functions or lines per lcpu and overall, an icicle view.
  case profile

  /// The tab label.
  public func title(generic: Bool) -> String {
    switch self {
    case .lcpus: return generic ? "vCPUs" : "lcpus"
    case .locks: return "locks"
    case .allocator: return "alloc"
    case .virtio: return "virtio"
    case .timers: return "timers"
    case .timeline: return "timeline"
    case .profile: return "profile"
    }
  }

  /// The sort keys this pane offers, in F6 order; the first is the default.
  public var sortKeys: [SortKey] { sortKeys(generic: false) }

  /// The sort keys this pane offers for a guest with the inspection ABI, or in generic mode (where the
  /// lcpus pane shows only vCPU number, state and RIP), in F6 order; the first is the default.
  public func sortKeys(generic: Bool) -> [SortKey] {
    switch self {
    case .lcpus where generic: return [.index, .state, .rip]
    case .lcpus: return [.index, .state, .busy, .irq, .ipi, .thread, .rip, .deadline]
    case .locks: return [.contention, .name, .acquisitions, .wait, .hold, .waiters, .misuse]
    case .allocator: return [.order, .free, .allocs]
    case .virtio: return [.queue, .fill, .packets, .bytes, .errors]
    case .timers: return [.index, .pending, .deadline, .fired, .late]
    case .timeline: return []
    case .profile: return [.selfShare, .totalShare, .function]
    }
  }
}

/// A column a pane can sort by; the raw value is the title of the column it marks.
public enum SortKey: String, Sendable, Codable, CaseIterable {
  /// lcpu or vCPU number.
  case index = "CPU"
  /// State label (busy first when descending).
  case state = "STATE"
  /// Busy share in the last interval.
  case busy = "BUSY%"
  /// Interrupts per second, all kinds.
  case irq = "IRQ/s"
  /// IPIs received per second.
  case ipi = "IPI/s"
  /// Current thread id.
  case thread = "THREAD"
  /// RIP symbol name.
  case rip = "RIP"
  /// Next timer deadline.
  case deadline = "DUE IN"
  /// Lock contention: contended acquisitions per second, then contended share.
  case contention = "CONT/s"
  /// Lock (or device) name.
  case name = "NAME"
  /// Lock acquisitions per second.
  case acquisitions = "ACQ/s"
  /// Lock wait time (mean, then max).
  case wait = "WAIT"
  /// Longest lock hold.
  case hold = "HOLD"
  /// Threads or lcpus waiting for a lock.
  case waiters = "WAITERS"
  /// Misuse counted on a lock.
  case misuse = "MISUSE"
  /// Buddy order.
  case order = "ORDER"
  /// Free bytes of a buddy order.
  case free = "FREE"
  /// Allocations per second.
  case allocs = "ALLOC/s"
  /// Virtqueue (device, then queue index).
  case queue = "QUEUE"
  /// Ring fill (descriptors in flight).
  case fill = "FILL"
  /// Packets per second.
  case packets = "PKT/s"
  /// Bytes per second.
  case bytes = "B/s"
  /// Errors, then drops.
  case errors = "ERR"
  /// Pending timers.
  case pending = "PEND"
  /// Timers fired per second.
  case fired = "FIRED/s"
  /// Timer lateness (max).
  case late = "LATE MAX"
  /// Profile: share of the window's sampling periods spent in the function itself.
  case selfShare = "SELF%"
  /// Profile: share of the periods with the function anywhere on the stack.
  case totalShare = "TOTAL%"
  /// Profile: the function's (or source line's) name.
  case function = "FUNCTION"

  /// Whether a fresh sort by this key starts descending (biggest first), as htop does for load columns.
  public var defaultDescending: Bool {
    switch self {
    case .busy, .irq, .ipi, .contention, .acquisitions, .wait, .hold, .waiters, .misuse, .free, .allocs,
      .fill,
      .packets, .bytes, .errors, .pending, .fired, .late, .selfShare, .totalShare:
      return true
    default: return false
    }
  }
}

/// The colour scheme the terminal applies; F2 cycles through them.
public enum ColorSchemeName: String, Sendable, Codable, CaseIterable {
  /// Colours on the terminal's default background.
  case standard
  /// No colours: bold, reverse, underline and dim only (`--no-color`, `NO_COLOR`).
  case monochrome
}

/// Selection, scroll and sort of one pane, kept while the user visits other panes.
public struct PaneState: Sendable, Equatable, Codable {
  /// The selected row's identity (an lcpu index), so the selection follows the lcpu when rows re-sort.
  public var selectedID: Int?
  /// The first visible row.
  public var scroll: Int = 0
  /// The sort column.
  public var sortKey: SortKey = .index
  /// Biggest first.
  public var descending: Bool = false

  /// Creates a pane state.
  public init(selectedID: Int? = nil, scroll: Int = 0, sortKey: SortKey = .index, descending: Bool = false) {
    self.selectedID = selectedID
    self.scroll = scroll
    self.sortKey = sortKey
    self.descending = descending
  }
}

/// What the last frame looked like, fed back to the reducer so keys can move through the visible rows.
public struct ViewLayout: Sendable, Equatable, Codable {
  /// The identities of the current pane's rows, in display order (after filter and sort).
  public var rowIDs: [Int]
  /// How many rows one page shows (PgUp/PgDn distance).
  public var pageRows: Int
  /// How many lines the detail view has, and how many it shows.
  public var detailLines: Int
  /// How many detail lines fit on screen.
  public var detailPageRows: Int
  /// QEMU's view: true running, false stopped, nil unknown.
  public var vmRunning: Bool?
  /// True when the frame showed a guest without the inspection ABI (generic mode).
  public var generic: Bool
  /// The sort key whose column did not fit the terminal's width, so the header names it instead.
  public var hiddenSortKey: SortKey?
  /// In the threads view: the thread ids in display order.
  public var threadIDs: [UInt64] = []
  /// In the threads view: the content line of each row of `threadIDs`.
  public var threadLines: [Int] = []
  /// In the profile pane: the lcpus it has samples of, ascending (Left/Right step through them).
  public var profileLCPUs: [Int] = []

  /// Creates a layout.
  public init(
    rowIDs: [Int], pageRows: Int, detailLines: Int = 0, detailPageRows: Int = 0, vmRunning: Bool? = nil,
    generic: Bool = false, hiddenSortKey: SortKey? = nil
  ) {
    self.rowIDs = rowIDs
    self.pageRows = pageRows
    self.detailLines = detailLines
    self.detailPageRows = detailPageRows
    self.vmRunning = vmRunning
    self.generic = generic
    self.hiddenSortKey = hiddenSortKey
  }
}

/// A view opened on top of a pane to answer "where": a lock with its holder and waiters, or one
/// thread. Such views stack (Esc goes back one).
public enum WhereView: Sendable, Equatable, Hashable, Codable {
  /// The lock whose object is at this address.
  case lock(UInt64)
  /// The thread with this id.
  case thread(UInt64)
}

/// One opened ``WhereView`` and the scroll of the view under it, restored when it closes.
public struct OpenWhereView: Sendable, Equatable, Codable {
  /// The view.
  public var view: WhereView
  /// `detailScroll` before it opened.
  public var scrollBefore: Int

  /// Creates an entry.
  public init(view: WhereView, scrollBefore: Int) {
    self.view = view
    self.scrollBefore = scrollBefore
  }
}

/// Everything the dashboard remembers between frames. A value: the reducer returns a new one.
public struct DashboardState: Sendable, Equatable, Codable {
  /// The visible pane.
  public var pane: Pane = .lcpus
  /// Per-pane selection, scroll and sort.
  public var panes: [Pane: PaneState] = [:]
  /// The row filter (case-insensitive substring); empty shows every row.
  public var filter: String = ""
  /// True while the user types the filter.
  public var isEditingFilter: Bool = false
  /// The filter as it was before editing began (Esc restores it).
  public var filterBeforeEdit: String = ""
  /// How often the sampler takes a snapshot, in milliseconds.
  public var intervalMilliseconds: Int = 1000
  /// True when the user stopped the VM (space) or QEMU reports it stopped.
  public var vmPaused: Bool = false
  /// The key-table overlay is shown.
  public var helpVisible: Bool = false
  /// Locks with static ISR findings (`smptop isrcheck` on the kernel ELF): lock object address →
  /// what can happen ("sleep-in-irq", "irq-unsafe"). Empty when the check did not run.
  public var staticLockFindings: [UInt64: String] = [:]
  /// The lcpu (or vCPU) whose detail view is open, nil when closed.
  public var detail: Int?
  /// The first visible line of the detail view.
  public var detailScroll: Int = 0
  /// The threads view (T) is open in the detail area: every thread and where it is.
  public var threadsView: Bool = false
  /// The thread selected in the threads view (its id); nil selects the first.
  public var selectedThread: UInt64?
  /// Lock and thread views opened with Enter, innermost last; they cover the pane (and the
  /// lcpu detail or threads view) until Esc closes them one by one.
  public var whereViews: [OpenWhereView] = []
  /// The colour scheme.
  public var colorScheme: ColorSchemeName = .standard
  /// The characters the terminal can show.
  public var charset: Charset = .unicode
  /// A one-line message for the user (effects' progress and results, errors); cleared by the next key,
  /// and an effect's progress message is replaced by its result when the effect finishes.
  public var statusMessage: String?
  /// The sequence number of the last effect result taken into `statusMessage`.
  public var lastEffect: UInt64 = 0
  /// The view on top: the last opened lock or thread view, nil when none is open.
  public var whereView: WhereView? { whereViews.last?.view }

  /// The last frame's geometry (set by `.sync`).
  public var layout = ViewLayout(rowIDs: [], pageRows: 1)
  /// The timeline pane's window, position and freeze.
  public var timeline = TimelineState()
  /// The profile pane's window, lcpu, naming and view.
  public var profile = ProfileState()

  /// The refresh intervals `+` and `-` step through, in milliseconds.
  public static let intervals = [100, 200, 250, 500, 1000, 2000, 3000, 5000, 10000]

  /// Creates the initial state.
  public init(
    pane: Pane = .lcpus, intervalMilliseconds: Int = 1000, colorScheme: ColorSchemeName = .standard,
    charset: Charset = .unicode
  ) {
    self.pane = pane
    self.intervalMilliseconds = intervalMilliseconds
    self.colorScheme = colorScheme
    self.charset = charset
  }

  /// The current pane's selection, scroll and sort.
  public var current: PaneState {
    get {
      let key = pane.sortKeys.first ?? .index
      return panes[pane] ?? PaneState(sortKey: key, descending: key.defaultDescending)
    }
    set { panes[pane] = newValue }
  }

  /// The lcpu that `s` steps and the detail view shows: the open detail's, else the selected row's.
  public var targetLCPU: Int? { detail ?? (pane == .lcpus ? current.selectedID : nil) }
}
