import Model
import NIOConcurrencyHelpers

/// The live profile: the running counts of the guest's stack samples, shared by the feed that
/// adds each drain and the pane that asks for the view it shows (under one lock; the counts are
/// never copied).
public final class ProfileLive: Sendable {
  private let counts: NIOLockedValueBox<ProfileCounts>

  /// Creates empty counts over the pane's windows.
  public init(windows: [Double] = ProfileState.windows) {
    counts = NIOLockedValueBox(ProfileCounts(windows: windows))
  }

  /// Runs `body` on the counts, alone.
  public func withCounts<R>(_ body: (inout ProfileCounts) -> R) -> R {
    counts.withLockedValue { body(&$0) }
  }
}

/// What the profile pane shows: the guest's stack samples of the last seconds, counted live.
public struct ProfileData: Sendable {
  /// The running counts (shared: a copy of the data reads the same counts).
  public var live: ProfileLive
  /// The guest's sampling rate per lcpu (0 = it booted without `prof_hz`).
  public var hz: UInt64
  /// Whether the guest publishes profile rings at all.
  public var present: Bool
  /// Problems with the rings, for a person.
  public var problems: [String]

  /// Creates the pane's input.
  public init(live: ProfileLive, hz: UInt64, present: Bool = true, problems: [String] = []) {
    self.live = live
    self.hz = hz
    self.present = present
    self.problems = problems
  }

  /// Creates the pane's input from samples named through tables: by line where `lineNames`
  /// knows the address, else by function, else `0x…`.
  public init(
    samples: [ProfileSample], lost: [UInt32: UInt64] = [:], tscPerMs: UInt64,
    functionNames: [UInt64: String] = [:], lineNames: [UInt64: String] = [:], hz: UInt64, present: Bool = true
  ) {
    let live = ProfileLive()
    live.withCounts {
      $0.add(samples: samples, lost: lost, tscPerMs: tscPerMs) { address, lines in
        Self.name(address, lines: lines, functionNames: functionNames, lineNames: lineNames)
      }
    }
    self.init(live: live, hz: hz, present: present)
  }

  /// The name of a code address: its source line when `lines` and known, else its function,
  /// else its address.
  public static func name(
    _ address: UInt64, lines: Bool, functionNames: [UInt64: String], lineNames: [UInt64: String]
  ) -> String {
    if lines, let n = lineNames[address] { return n }
    return functionNames[address] ?? "0x" + String(address, radix: 16)
  }
}

/// The profile pane's own choices: window, lcpu, naming, view.
public struct ProfileState: Sendable, Equatable, Codable {
  /// Index into `windows`.
  public var window: Int = 2
  /// The lcpu shown; nil = every lcpu together.
  public var lcpu: Int?
  /// Name samples by source line instead of by function.
  public var lines = false
  /// Show the icicle view instead of the table.
  public var icicle = false

  /// The windows `+`/`-` step through, in seconds.
  public static let windows: [Double] = [1, 2, 5, 10, 30]

  /// The window in seconds.
  public var windowSeconds: Double { Self.windows[max(0, min(window, Self.windows.count - 1))] }

  /// Creates the default state (every lcpu, 5 s, by function, table).
  public init() {}
}

/// One function (or line) of the profile table.
struct ProfilePaneRow: Equatable {
  /// Counts in sampling periods.
  var row: ProfileRow
  /// Share of every period in the window (idle included) spent in it.
  var selfShare: Double
  /// Share of every period with it anywhere on the stack.
  var totalShare: Double
  /// A stable identity: a hash of the name.
  var id: Int
}

/// A name's stable row identity (FNV-1a of its UTF-8, the same in every run).
func profileRowID(_ name: String) -> Int {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
  return Int(truncatingIfNeeded: h >> 1)
}

/// The report the pane draws: the state's lcpu and window, named by function or line.
func profileReport(_ data: ProfileData, state: ProfileState) -> ProfileReport {
  data.live.withCounts { $0.report(profileViewKey(state)) }
}

/// The counts' view of a state.
func profileViewKey(_ state: ProfileState) -> ProfileCounts.ViewKey {
  ProfileCounts.ViewKey(
    window: max(0, min(state.window, ProfileState.windows.count - 1)), lcpu: state.lcpu.map { UInt32($0) },
    lines: state.lines)
}

/// The table's rows of a report, filtered by `filter` (case-insensitive, on the name) and sorted.
func profileRows(_ report: ProfileReport, filter: String, sort: PaneState) -> [ProfilePaneRow] {
  let rows = report.rows.map { r in
    ProfilePaneRow(
      row: r, selfShare: report.percent(r.selfCount), totalShare: report.percent(r.totalCount),
      id: profileRowID(r.name))
  }
  return arrangeRows(
    rows, filter: filter, sort: sort, search: { $0.row.name.lowercased() }, id: \.id,
    values: { r, key in
      switch key {
      case .totalShare: return [.number(r.totalShare), .number(r.selfShare), .text(r.row.name)]
      case .function: return [.text(r.row.name)]
      default: return [.number(r.selfShare), .number(r.totalShare), .text(r.row.name)]
      }
    })
}

/// The columns of the profile table.
func profileColumns(glyphs: Glyphs, lines: Bool) -> [Column<ProfilePaneRow>] {
  func share(_ v: Double, _ g: inout Grid, _ x: Int, _ y: Int, _ w: Int) {
    g.field(Format.fixed(v, decimals: 1), x: x, y: y, width: w, style: v == 0 ? .dim : .normal, align: .right)
  }
  return [
    .fixed("SELF%", 6, priority: 0, key: .selfShare) { g, r, x, y, w in share(r.selfShare, &g, x, y, w) },
    .fixed("TOTAL%", 7, priority: 0, key: .totalShare) { g, r, x, y, w in share(r.totalShare, &g, x, y, w) },
    .fixed("SELF", 7, priority: 2) { g, r, x, y, w in
      cellNumber(Format.human(Double(r.row.selfCount)), Double(r.row.selfCount), &g, x, y, w)
    },
    .fixed("TOTAL", 7, priority: 2) { g, r, x, y, w in
      cellNumber(Format.human(Double(r.row.totalCount)), Double(r.row.totalCount), &g, x, y, w)
    },
    .flexible(
      lines ? "LINE" : "FUNCTION", minimum: 16, preferred: 40, maximum: 200, weight: 1, priority: 0,
      key: .function
    ) { g, r, x, y, w in
      textCell(&g, r.row.name, x: x, y: y, width: w, glyphs: glyphs, style: .value)
    },
  ]
}

/// "12.3" for a percentage.
private func percentText(_ v: Double) -> String { Format.fixed(v, decimals: 1) + "%" }

/// The profile pane: the hottest functions (or source lines) of the chosen lcpu or of all of
/// them over the last seconds, self and total share of the window, idle apart; or an icicle
/// view of the same samples (root at top, callees below, widths by share).
///
/// Left/Right choose the lcpu (all first), `l` names by line or function, `f` switches table and
/// icicle, `+`/`-` change the window; the filter and F6 sort apply to the table.
func drawProfilePane(
  into g: inout Grid, state: DashboardState, profile: ProfileData?, body: Rect, layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  let p = state.profile
  guard let data = profile else {
    drawPlaceholder(
      into: &g,
      lines: [
        "No profile rings.",
        "The profile reads the guest's stack-sample rings live from its shared RAM file (--memory-file).",
      ],
      body: body)
    return layout
  }
  guard data.present, data.hz > 0 else {
    drawPlaceholder(
      into: &g,
      lines: [
        "The guest takes no stack samples.",
        "Boot it with prof_hz=N (100 to 10000 samples per second per lcpu), e.g. smptop run --append prof_hz=1000.",
      ] + data.problems,
      body: body)
    return layout
  }
  let lcpus = data.live.withCounts { $0.lcpus }.map { Int($0) }
  layout.profileLCPUs = lcpus
  let report = profileReport(data, state: p)
  // Line 1: what is shown.
  let who = p.lcpu.map { "lcpu \($0)" } ?? "all lcpus"
  let window = Format.fixed(p.windowSeconds, decimals: 0)
  let header =
    "\(who)  last \(window)s  by \(p.lines ? "line" : "function")  busy \(percentText(report.percent(report.busy)))"
    + "  idle \(percentText(report.percent(report.idle)))  lost \(report.lost)  \(data.hz) Hz"
  g.put(header, x: body.x, y: body.y, style: .title, maxWidth: body.width)
  // Line 2: the lcpus to choose from, each with its busy share.
  var x = body.x
  let shares = busyShares(data, state: p)
  func chip(_ text: String, selected: Bool) {
    guard x < body.maxX else { return }
    x += g.put(text, x: x, y: body.y + 1, style: selected ? .tabActive : .label, maxWidth: body.maxX - x)
    x += g.put(" ", x: x, y: body.y + 1, maxWidth: body.maxX - x)
  }
  chip(" all \(Format.fixed(shares[nil] ?? 0, decimals: 0))% ", selected: p.lcpu == nil)
  for l in lcpus {
    chip(" \(l): \(Format.fixed(shares[l] ?? 0, decimals: 0))% ", selected: p.lcpu == l)
  }
  let count = "\(Format.human(Double(report.samples))) samples"
  if x + count.count < body.maxX {
    g.put(count, x: body.maxX - count.count, y: body.y + 1, style: .dim)
  }
  let rest = Rect(x: body.x, y: body.y + 2, width: body.width, height: max(0, body.height - 2))
  if let problem = data.problems.first, rest.height > 0 {
    g.put("problem: " + problem, x: rest.x, y: rest.maxY - 1, style: .warn, maxWidth: rest.width)
  }
  if p.icicle {
    let tree = icicleTree(data, state: p)
    drawIcicle(into: &g, tree: tree, filter: state.filter, rect: rest, glyphs: glyphs)
    layout.rowIDs = []
    return layout
  }
  let rows = profileRows(report, filter: state.filter, sort: state.current)
  drawPaneTable(
    into: &g, state: state, rect: rest, columns: profileColumns(glyphs: glyphs, lines: p.lines), rows: rows,
    id: \.id, layout: &layout)
  if rows.isEmpty {
    drawEmptyLine(
      into: &g,
      report.rows.isEmpty
        ? (report.samples == 0
          ? "No samples in the window yet." : "Every sample in the window found the lcpu idle.")
        : noMatch("function", state.filter),
      rect: rest)
  }
  return layout
}

/// The busy share of every lcpu (key nil: all of them) over the state's window, in percent.
func busyShares(_ data: ProfileData, state: ProfileState) -> [Int?: Double] {
  let window = profileViewKey(state).window
  return data.live.withCounts { counts in
    var shares: [Int?: Double] = [nil: counts.busyShare(window: window)]
    for l in counts.lcpus where counts.totals(window: window, lcpu: l).samples > 0 {
      shares[Int(l)] = counts.busyShare(window: window, lcpu: l)
    }
    return shares
  }
}

/// One box of the icicle view: a frame, the periods it was on the stack at this position, and
/// its callees.
typealias IcicleNode = ProfileNode

/// The icicle tree of the state's lcpu and window: the root covers every period, its children are
/// `idle` and the outermost frames, each frame's children the frames it called.
func icicleTree(_ data: ProfileData, state: ProfileState) -> IcicleNode {
  let root = state.lcpu.map { "lcpu \($0)" } ?? "all lcpus"
  return data.live.withCounts { $0.icicle(profileViewKey(state), root: root) }
}

/// Draws an icicle: one line per stack depth, each node as wide as its share of the root, named
/// with its share; nodes matching the filter are highlighted. Levels that do not fit are
/// counted on the last line.
func drawIcicle(into g: inout Grid, tree: IcicleNode, filter: String, rect: Rect, glyphs: Glyphs) {
  guard rect.height > 0, rect.width > 0 else { return }
  guard tree.count > 0 else {
    g.put("No samples in the window yet.", x: rect.x + 1, y: rect.y, style: .dim, maxWidth: rect.width - 1)
    return
  }
  let depth = tree.depth + 1
  let levels = depth > rect.height ? max(1, rect.height - 1) : depth
  let needle = filter.lowercased()
  let total = tree.count
  let width = rect.width
  var alternate = false
  /// Draws `node` starting `start` periods from the root's left edge, then its children.
  func draw(_ node: IcicleNode, start: Int, level: Int) {
    guard level < levels else { return }
    let x0 = start * width / total
    let x1 = (start + node.count) * width / total
    guard x1 > x0 else { return }
    let w = x1 - x0
    let y = rect.y + level
    let matched = !needle.isEmpty && node.name.lowercased().contains(needle)
    alternate.toggle()
    let style: Style =
      matched ? .selected : node.name == "idle" ? .meterIdle : alternate ? .meterBusy : .value
    let share = Format.fixed(Double(node.count) * 100 / Double(total), decimals: 1) + "%"
    g.fill(Rect(x: rect.x + x0, y: y, width: w, height: 1), with: Cell(" ", style))
    if w > 1 {
      g.field(
        "\(node.name) \(share)", x: rect.x + x0, y: y, width: w - 1, style: style, ellipsis: glyphs.ellipsis)
    }
    g[rect.x + x1 - 1, y] = Cell(glyphs.vertical, matched ? .selected : .border)
    var offset = start
    for child in node.children {
      draw(child, start: offset, level: level + 1)
      offset += child.count
    }
  }
  draw(tree, start: 0, level: 0)
  if levels < depth {
    g.put(
      "\(depth - levels) deeper levels not shown", x: rect.x, y: rect.y + levels, style: .dim,
      maxWidth: rect.width)
  }
}
