/// Running profile counts over a few sliding windows (the last 1, 2, 5 … seconds), kept up to
/// date as samples arrive and as they fall out of each window, so asking for the hottest
/// functions of a window costs the number of functions, not the number of samples.
///
/// Each distinct stack is stored once and each distinct address named once (by function and by
/// source line); a sample is kept as its TSC, periods and stack number. Counts by name (self and
/// total) and icicle tries are kept for the views that were asked for recently: a view asked for
/// the first time is counted once from the samples in its window, then follows every sample that
/// enters or leaves it; a view nobody asked for during `viewLifetime` additions is dropped.
///
/// The results equal ``ProfileModel``'s recount (`windowed(seconds:)`, `report`, `stacks`) as long
/// as every lcpu's samples come in TSC order, as the guest writes them: a window holds an lcpu's
/// samples from the first one no older than the newest sample of any lcpu minus the window.
public struct ProfileCounts: Sendable {
  /// The windows counted, in seconds, ascending; samples older than the last one are dropped.
  public let windows: [Double]
  /// Additions after which a view nobody asked for is dropped.
  public var viewLifetime: UInt64 = 50
  /// The guest's TSC rate (counts per millisecond); 0 = unknown, then nothing expires.
  public private(set) var tscPerMs: UInt64 = 0
  /// Samples ever added.
  public private(set) var added: UInt64 = 0
  /// Additions so far (the clock of the views' ages and cached results).
  public private(set) var additions: UInt64 = 0
  /// Samples lost so far, per lcpu (not windowed).
  var lost: [UInt32: UInt64] = [:]
  /// The newest TSC of any sample, nil before the first.
  var newest: UInt64?
  /// Samples per lcpu.
  var lanes: [UInt32: Lane] = [:]
  /// Stack number of each distinct stack in the lanes.
  var stackIDs: [StackKey: Int32] = [:]
  /// The stacks by number; a freed one has no paths.
  var stacks: [Stack] = []
  /// Freed stack numbers, for reuse.
  var freeStacks: [Int32] = []
  /// Names by number.
  var names: [String] = []
  /// Number of each name.
  var nameIDs: [String: Int32] = [:]
  /// Address → name number, by function (0) and by source line (1).
  var addressNames: [[UInt64: Int32]] = [[:], [:]]
  /// Counts by name of the views asked for.
  var views: [ViewKey: View] = [:]
  /// Icicle tries of the views asked for.
  var icicles: [ViewKey: Icicle] = [:]

  /// Distinct addresses a cache keeps before it starts over (garbage frames cannot grow it
  /// without bound).
  static let addressCacheLimit = 1 << 16
  /// Trie nodes an icicle keeps before it is counted afresh (nodes whose count fell to 0 stay
  /// until then).
  static let icicleNodeLimit = 1 << 16

  /// One sample as kept: when, how many periods, which stack (-1 = idle).
  struct Entry: Sendable {
    var tsc: UInt64
    var periods: Int
    var stack: Int32
  }

  /// One lcpu's samples, oldest first, and its counts per window.
  struct Lane: Sendable {
    /// Kept samples; `entries[0]` is sample number `base`.
    var entries: [Entry] = []
    /// Number of the first kept sample.
    var base = 0
    /// Per window: number of its first sample.
    var starts: [Int]
    /// Samples whose stack reference was given back (every one before it).
    var released = 0
    /// Per window: samples, periods, idle periods.
    var samples: [Int]
    var periods: [Int]
    var idle: [Int]

    init(windows: Int) {
      starts = Array(repeating: 0, count: windows)
      samples = Array(repeating: 0, count: windows)
      periods = Array(repeating: 0, count: windows)
      idle = Array(repeating: 0, count: windows)
    }

    /// Number one past the newest sample.
    var end: Int { base + entries.count }
    /// Sample number `n`.
    func entry(_ n: Int) -> Entry { entries[n - base] }
  }

  /// What makes two samples' stacks the same: the frames as recorded and the interrupted RIP.
  struct StackKey: Hashable, Sendable {
    var frames: [UInt64]
    var rip: UInt64
  }

  /// A distinct stack: its names, outermost first, by function and by line.
  struct Stack: Sendable {
    var key: StackKey
    /// Samples in the lanes that have it.
    var refs: Int
    /// Name numbers, outermost first and the interrupted instruction last, per naming.
    var paths: [[Int32]]
    /// The distinct name numbers of each path.
    var distinct: [[Int32]]
  }

  /// A view: a window, one lcpu or all, names by function or by line.
  public struct ViewKey: Hashable, Sendable {
    /// Index into `windows`.
    public var window: Int
    /// The lcpu; nil = every lcpu.
    public var lcpu: UInt32?
    /// Name by source line.
    public var lines: Bool

    /// Creates a key.
    public init(window: Int, lcpu: UInt32?, lines: Bool) {
      self.window = window
      self.lcpu = lcpu
      self.lines = lines
    }

    /// Whether a sample of `lane` in window `w` belongs to it.
    func covers(window w: Int, lane: UInt32) -> Bool { w == window && (lcpu == nil || lcpu == lane) }
  }

  /// Self and total periods per name number of a view.
  struct View: Sendable {
    var selfCounts: [Int] = []
    var totals: [Int] = []
    /// When it was last asked for.
    var asked: UInt64
    /// The last report and when it was made.
    var cached: (at: UInt64, report: ProfileReport)?

    mutating func count(_ stack: Stack, periods: Int, lines: Bool) {
      let naming = lines ? 1 : 0
      guard let leaf = stack.paths[naming].last else { return }
      Self.bump(&selfCounts, Int(leaf), periods)
      for n in stack.distinct[naming] { Self.bump(&totals, Int(n), periods) }
    }

    static func bump(_ a: inout [Int], _ i: Int, _ d: Int) {
      if i >= a.count { a.append(contentsOf: repeatElement(0, count: i + 1 - a.count)) }
      a[i] += d
    }
  }

  /// A trie of name paths with periods: node 0 is the root.
  struct Icicle: Sendable {
    struct Node: Sendable {
      var count = 0
      var children: [Int32: Int32] = [:]
    }
    var nodes = [Node()]
    var asked: UInt64
    var cached: (at: UInt64, root: String, tree: ProfileNode)?

    mutating func count(_ path: [Int32], periods: Int) {
      var n = 0
      nodes[0].count += periods
      for name in path {
        if let child = nodes[n].children[name] {
          n = Int(child)
        } else {
          let child = nodes.count
          nodes.append(Node())
          nodes[n].children[name] = Int32(child)
          n = child
        }
        nodes[n].count += periods
      }
    }
  }

  /// Creates empty counts over `windows` seconds (ascending; at least one).
  public init(windows: [Double]) {
    let sorted = windows.sorted()
    self.windows = sorted.isEmpty ? [30] : sorted
  }

  // MARK: adding

  /// The addresses of `samples` not named yet (to look up together before ``add``).
  public func unnamed(in samples: [ProfileSample]) -> [UInt64] {
    var out = Set<UInt64>()
    for s in samples where !s.idle {
      if stackIDs[StackKey(frames: s.frames, rip: s.rip)] != nil { continue }
      for a in s.stack where addressNames[0][a] == nil { out.insert(a) }
    }
    return Array(out)
  }

  /// Adds samples and loss (per lcpu), moves every window on to the newest sample, and drops
  /// the samples older than the longest window. `name` names an address by function
  /// (`lines` false) or by source line; it is asked once per address and naming.
  public mutating func add(
    samples new: [ProfileSample], lost newLost: [UInt32: UInt64], tscPerMs: UInt64,
    name: (_ address: UInt64, _ lines: Bool) -> String
  ) {
    if tscPerMs != 0 { self.tscPerMs = tscPerMs }
    for (lcpu, n) in newLost { lost[lcpu, default: 0] &+= n }
    added &+= UInt64(new.count)
    additions &+= 1
    for (key, view) in views where additions &- view.asked > viewLifetime { views[key] = nil }
    for (key, trie) in icicles
    where additions &- trie.asked > viewLifetime || trie.nodes.count > Self.icicleNodeLimit {
      icicles[key] = nil
    }
    let viewKeys = Array(views.keys)
    let icicleKeys = Array(icicles.keys)
    var i = 0
    while i < new.count {
      let lcpu = new[i].lcpu
      var lane = lanes.removeValue(forKey: lcpu) ?? Lane(windows: windows.count)
      while i < new.count, new[i].lcpu == lcpu {
        let s = new[i]
        i += 1
        let periods = Int(s.periods)
        let id = s.idle ? -1 : intern(s, name: name)
        lane.entries.append(Entry(tsc: s.tsc, periods: periods, stack: id))
        for w in windows.indices {
          lane.samples[w] += 1
          lane.periods[w] += periods
          if s.idle { lane.idle[w] += periods }
        }
        newest = max(newest ?? s.tsc, s.tsc)
        if id >= 0 { count(stack: id, periods: periods, lane: lcpu, windows: nil, viewKeys, icicleKeys) }
      }
      lanes[lcpu] = lane
    }
    expire(viewKeys, icicleKeys)
  }

  /// The stack number of a non-idle sample, its stack named and stored when new.
  mutating func intern(_ s: ProfileSample, name: (UInt64, Bool) -> String) -> Int32 {
    let key = StackKey(frames: s.frames, rip: s.rip)
    if let id = stackIDs[key] {
      stacks[Int(id)].refs += 1
      return id
    }
    var paths: [[Int32]] = [[], []]
    var distinct: [[Int32]] = [[], []]
    for naming in 0..<2 {
      var seen = Set<Int32>()
      for a in s.stack {
        let n = nameID(a, lines: naming == 1, name: name)
        paths[naming].append(n)
        if seen.insert(n).inserted { distinct[naming].append(n) }
      }
    }
    let stack = Stack(key: key, refs: 1, paths: paths, distinct: distinct)
    let id: Int32
    if let free = freeStacks.popLast() {
      id = free
      stacks[Int(id)] = stack
    } else {
      id = Int32(stacks.count)
      stacks.append(stack)
    }
    stackIDs[key] = id
    return id
  }

  /// The name number of `address` by function or line.
  mutating func nameID(_ address: UInt64, lines: Bool, name: (UInt64, Bool) -> String) -> Int32 {
    let naming = lines ? 1 : 0
    if let n = addressNames[naming][address] { return n }
    let text = name(address, lines)
    let n: Int32
    if let known = nameIDs[text] {
      n = known
    } else {
      n = Int32(names.count)
      names.append(text)
      nameIDs[text] = n
    }
    if addressNames[naming].count >= Self.addressCacheLimit { addressNames[naming].removeAll() }
    addressNames[naming][address] = n
    return n
  }

  /// Adds (positive `periods`) or takes away a sample of `stack` on `lane` to the views and
  /// icicles of window `w` (nil = every window) that cover it.
  mutating func count(
    stack id: Int32, periods: Int, lane: UInt32, windows w: Int?, _ viewKeys: [ViewKey],
    _ icicleKeys: [ViewKey]
  ) {
    let stack = stacks[Int(id)]
    for key in viewKeys where (w == nil || key.window == w) && (key.lcpu == nil || key.lcpu == lane) {
      views[key]?.count(stack, periods: periods, lines: key.lines)
    }
    for key in icicleKeys where (w == nil || key.window == w) && (key.lcpu == nil || key.lcpu == lane) {
      icicles[key]?.count(stack.paths[key.lines ? 1 : 0], periods: periods)
    }
  }

  /// Moves every window's start past the samples older than it, takes them out of its counts,
  /// and gives back the stacks of samples no window holds.
  mutating func expire(_ viewKeys: [ViewKey], _ icicleKeys: [ViewKey]) {
    guard tscPerMs != 0, let newest else { return }
    for lcpu in Array(lanes.keys) {
      guard var lane = lanes.removeValue(forKey: lcpu) else { continue }
      for w in windows.indices {
        let span = UInt64(windows[w] * 1000) &* tscPerMs
        let cutoff = newest > span ? newest - span : 0
        var n = lane.starts[w]
        while n < lane.end {
          let e = lane.entry(n)
          guard e.tsc < cutoff else { break }
          lane.samples[w] -= 1
          lane.periods[w] -= e.periods
          if e.stack < 0 {
            lane.idle[w] -= e.periods
          } else {
            count(stack: e.stack, periods: -e.periods, lane: lcpu, windows: w, viewKeys, icicleKeys)
          }
          n += 1
        }
        lane.starts[w] = n
      }
      let first = lane.starts.min() ?? lane.base
      while lane.released < first {
        let id = lane.entry(lane.released).stack
        if id >= 0 { release(id) }
        lane.released += 1
      }
      if first - lane.base >= max(256, lane.entries.count / 2) {
        lane.entries.removeFirst(first - lane.base)
        lane.base = first
      }
      lanes[lcpu] = lane
    }
  }

  /// Gives back one sample's reference to a stack; frees the stack with the last one.
  mutating func release(_ id: Int32) {
    stacks[Int(id)].refs -= 1
    guard stacks[Int(id)].refs == 0 else { return }
    stackIDs.removeValue(forKey: stacks[Int(id)].key)
    stacks[Int(id)].paths = [[], []]
    stacks[Int(id)].distinct = [[], []]
    stacks[Int(id)].key = StackKey(frames: [], rip: 0)
    freeStacks.append(id)
  }

  // MARK: asking

  /// The lcpus with samples in the longest window, ascending.
  public var lcpus: [UInt32] {
    let last = windows.count - 1
    return lanes.filter { $0.value.samples[last] > 0 }.keys.sorted()
  }

  /// The index of the window closest to `seconds`.
  public func windowIndex(seconds: Double) -> Int {
    windows.indices.min { abs(windows[$0] - seconds) < abs(windows[$1] - seconds) } ?? 0
  }

  /// Samples, periods and idle periods in window `w` of `lcpu` (nil = every lcpu).
  public func totals(window w: Int, lcpu: UInt32? = nil) -> (samples: Int, periods: Int, idle: Int) {
    var out = (samples: 0, periods: 0, idle: 0)
    for (l, lane) in lanes where lcpu == nil || lcpu == l {
      out.samples += lane.samples[w]
      out.periods += lane.periods[w]
      out.idle += lane.idle[w]
    }
    return out
  }

  /// Samples lost for `lcpu` (nil = every lcpu).
  public func lostCount(lcpu: UInt32? = nil) -> UInt64 {
    if let lcpu { return lost[lcpu] ?? 0 }
    return lost.values.reduce(0, &+)
  }

  /// The non-idle share of `lcpu`'s periods in window `w` (nil = every lcpu), in percent.
  public func busyShare(window w: Int, lcpu: UInt32? = nil) -> Double {
    let t = totals(window: w, lcpu: lcpu)
    return t.periods == 0 ? 0 : Double(t.periods - t.idle) * 100 / Double(t.periods)
  }

  /// The hottest functions (or source lines) of a view, like ``ProfileModel/report(lcpu:name:)``
  /// over the same window: counted from the samples the first time the view is asked for,
  /// kept up to date after that.
  public mutating func report(_ key: ViewKey) -> ProfileReport {
    if views[key] == nil { views[key] = makeView(key) }
    views[key]?.asked = additions
    if let cached = views[key]?.cached, cached.at == additions { return cached.report }
    var report = ProfileReport()
    let t = totals(window: key.window, lcpu: key.lcpu)
    report.samples = t.samples
    report.periods = t.periods
    report.idle = t.idle
    report.lost = lostCount(lcpu: key.lcpu)
    if let view = views[key] {
      for (n, total) in view.totals.enumerated() where total > 0 {
        let own = n < view.selfCounts.count ? view.selfCounts[n] : 0
        report.rows.append(ProfileRow(name: names[n], selfCount: own, totalCount: total))
      }
    }
    report.rows.sort { ($1.selfCount, $1.totalCount, $0.name) < ($0.selfCount, $0.totalCount, $1.name) }
    views[key]?.cached = (additions, report)
    return report
  }

  /// The icicle of a view: the root (named `root`) covers every period, its children are `idle`
  /// and the outermost frames, each frame's children the frames it called; most periods first
  /// (ties by name), boxes with no periods left out.
  public mutating func icicle(_ key: ViewKey, root: String) -> ProfileNode {
    if icicles[key] == nil { icicles[key] = makeIcicle(key) }
    icicles[key]?.asked = additions
    if let cached = icicles[key]?.cached, cached.at == additions, cached.root == root { return cached.tree }
    guard let trie = icicles[key] else { return ProfileNode(name: root, count: 0) }
    func order(_ a: ProfileNode, _ b: ProfileNode) -> Bool { (b.count, a.name) < (a.count, b.name) }
    func freeze(_ name: String, _ i: Int) -> ProfileNode {
      let node = trie.nodes[i]
      return ProfileNode(
        name: name, count: node.count,
        children: node.children.compactMap { child in
          trie.nodes[Int(child.value)].count > 0 ? freeze(names[Int(child.key)], Int(child.value)) : nil
        }.sorted(by: order))
    }
    var top = freeze(root, 0)
    let idle = totals(window: key.window, lcpu: key.lcpu).idle
    top.count += idle
    if idle > 0 {
      top.children.append(ProfileNode(name: "idle", count: idle))
      top.children.sort(by: order)
    }
    icicles[key]?.cached = (additions, root, top)
    return top
  }

  /// Counts a view from the samples in its window.
  func makeView(_ key: ViewKey) -> View {
    var view = View(asked: additions)
    forEachStack(in: key) { stack, periods in view.count(stack, periods: periods, lines: key.lines) }
    return view
  }

  /// Counts an icicle from the samples in its window.
  func makeIcicle(_ key: ViewKey) -> Icicle {
    var trie = Icicle(asked: additions)
    let naming = key.lines ? 1 : 0
    forEachStack(in: key) { stack, periods in trie.count(stack.paths[naming], periods: periods) }
    return trie
  }

  /// Calls `body` with the stack and periods of every non-idle sample in a view's window.
  func forEachStack(in key: ViewKey, _ body: (Stack, Int) -> Void) {
    for (l, lane) in lanes where key.lcpu == nil || key.lcpu == l {
      for n in lane.starts[key.window]..<lane.end {
        let e = lane.entry(n)
        if e.stack >= 0 { body(stacks[Int(e.stack)], e.periods) }
      }
    }
  }

  /// Distinct stacks kept (for tests: freed ones are reused).
  public var stackCount: Int { stackIDs.count }
}

/// One box of an icicle: a frame, the periods it was on the stack at this position, and its
/// callees.
public struct ProfileNode: Sendable, Equatable {
  /// The frame's name (`idle` for idle samples).
  public var name: String
  /// Periods.
  public var count: Int
  /// Callees, most periods first (ties by name).
  public var children: [ProfileNode]

  /// Creates a node.
  public init(name: String, count: Int, children: [ProfileNode] = []) {
    self.name = name
    self.count = count
    self.children = children
  }

  /// The deepest level below this node (0 = a leaf).
  public var depth: Int { children.map { $0.depth + 1 }.max() ?? 0 }
}
