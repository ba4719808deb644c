import Model
import Testing

/// The running profile counts against a recount from scratch (``ProfileModel``'s windowed
/// report and stacks, the icicle built from those stacks): random sample streams over several
/// lcpus, with idle samples, late samples standing for several periods, recursion, names shared
/// by several addresses, loss, and gaps long enough to empty every window.
@Suite struct ProfileCountsTests {
  /// The pane's windows.
  static let windows: [Double] = [1, 2, 5, 10, 30]
  /// 1 MHz guest TSC: one second is 1 000 000 counts.
  static let perMs: UInt64 = 1000

  /// A small deterministic generator (SplitMix64), so a failing seed can be run again.
  struct Random: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state &+= 0x9e37_79b9_7f4a_7c15
      var z = state
      z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
      z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
      return z ^ (z >> 31)
    }
  }

  /// Names by function: 12 addresses over 8 functions (some share one); by line: every third
  /// address has no line and falls back to its function.
  static func name(_ address: UInt64, lines: Bool) -> String {
    let k = Int(address / 0x100)
    if lines && k % 3 != 0 { return "F\(k % 8).swift:\(k)" }
    return "f\(k % 8)"
  }

  /// A random stream: per step, up to `maxBatch` samples per lcpu with per-lcpu rising TSCs
  /// (the lcpus' clocks apart by up to a second), and now and then a long gap.
  struct Stream {
    var rng: Random
    var lcpus: Int
    var clocks: [UInt64]
    var positions: [UInt64]
    /// Distinct stacks to draw from: frames (return addresses, innermost first) and RIP.
    var pool: [([UInt64], UInt64)]

    init(seed: UInt64, lcpus: Int) {
      rng = Random(state: seed)
      self.lcpus = lcpus
      clocks = (0..<lcpus).map { _ in 0 }
      positions = Array(repeating: 0, count: lcpus)
      pool = []
      for _ in 0..<40 {
        let depth = Int.random(in: 0...6, using: &rng)
        let frames = (0..<depth).map { _ in UInt64(Int.random(in: 1...12, using: &rng)) * 0x100 + 1 }
        pool.append((frames, UInt64(Int.random(in: 1...12, using: &rng)) * 0x100))
      }
      for l in 0..<lcpus { clocks[l] = UInt64.random(in: 0...1_000_000, using: &rng) }
    }

    mutating func batch(maxBatch: Int) -> (samples: [ProfileSample], lost: [UInt32: UInt64]) {
      var samples: [ProfileSample] = []
      var lost: [UInt32: UInt64] = [:]
      for l in 0..<lcpus {
        for _ in 0..<Int.random(in: 0...maxBatch, using: &rng) {
          let gap: UInt64 =
            Int.random(in: 0..<200, using: &rng) == 0
            ? UInt64.random(in: 1_000_000...12_000_000, using: &rng)
            : UInt64.random(in: 0...60_000, using: &rng)
          clocks[l] += gap
          let idle = Int.random(in: 0..<4, using: &rng) == 0
          let periods: UInt64 =
            Int.random(in: 0..<8, using: &rng) == 0 ? UInt64.random(in: 2...9, using: &rng) : 1
          let (frames, rip) = pool[Int.random(in: 0..<pool.count, using: &rng)]
          samples.append(
            ProfileSample(
              lcpu: UInt32(l), position: positions[l], tsc: clocks[l], thread: idle ? 0 : 1, periods: periods,
              idle: idle, rip: idle ? 0x9000 : rip, frames: idle ? [] : frames))
          positions[l] += 1
        }
        if Int.random(in: 0..<10, using: &rng) == 0 {
          lost[UInt32(l)] = UInt64.random(in: 1...3, using: &rng)
        }
      }
      return (samples, lost)
    }
  }

  /// The icicle counted from scratch, as the pane used to: a trie of the named stacks.
  static func icicle(_ model: ProfileModel, lcpu: UInt32?, lines: Bool, root: String) -> ProfileNode {
    let (stacks, idle) = model.stacks(lcpu: lcpu)
    final class Trie {
      var count = 0
      var children: [String: Trie] = [:]
    }
    let top = Trie()
    for (stack, n) in stacks {
      top.count += n
      var node = top
      for a in stack {
        let child = node.children[name(a, lines: lines)] ?? Trie()
        node.children[name(a, lines: lines)] = child
        child.count += n
        node = child
      }
    }
    func order(_ a: ProfileNode, _ b: ProfileNode) -> Bool { (b.count, a.name) < (a.count, b.name) }
    func freeze(_ name: String, _ t: Trie) -> ProfileNode {
      ProfileNode(
        name: name, count: t.count, children: t.children.map { freeze($0.key, $0.value) }.sorted(by: order))
    }
    var tree = freeze(root, top)
    tree.count += idle
    if idle > 0 {
      tree.children.append(ProfileNode(name: "idle", count: idle))
      tree.children.sort(by: order)
    }
    return tree
  }

  /// Where the counts and the recount disagree for every view of window `w` (empty = none).
  static func differences(_ counts: inout ProfileCounts, _ model: ProfileModel, window w: Int) -> [String] {
    var out: [String] = []
    let windowed = model.windowed(seconds: windows[w])
    if counts.lcpus != model.lcpus { out.append("lcpus \(counts.lcpus) vs \(model.lcpus)") }
    for lcpu in [nil] + model.lcpus.map({ Optional($0) }) {
      for lines in [false, true] {
        let key = ProfileCounts.ViewKey(window: w, lcpu: lcpu, lines: lines)
        let expected = windowed.report(lcpu: lcpu) { name($0, lines: lines) }
        let got = counts.report(key)
        if got != expected { out.append("report \(key): \(got) vs \(expected)") }
      }
      let root = lcpu.map { "lcpu \($0)" } ?? "all"
      let tree = counts.icicle(ProfileCounts.ViewKey(window: w, lcpu: lcpu, lines: false), root: root)
      if tree != icicle(windowed, lcpu: lcpu, lines: false, root: root) {
        out.append("icicle \(w) \(String(describing: lcpu))")
      }
      let periods = windowed.periods(lcpu: lcpu)
      let busy = periods == 0 ? 0 : Double(periods - windowed.stacks(lcpu: lcpu).idle) * 100 / Double(periods)
      if counts.busyShare(window: w, lcpu: lcpu) != busy {
        out.append("busy \(w) \(String(describing: lcpu))")
      }
    }
    return out
  }

  @Test(arguments: [(1 as UInt64, 1), (2, 2), (3, 3), (4, 4), (5, 2)])
  func runningCountsEqualARecountFromScratch(seed: UInt64, lcpus: Int) {
    var stream = Stream(seed: seed, lcpus: lcpus)
    var counts = ProfileCounts(windows: Self.windows)
    counts.viewLifetime = 7
    var model = ProfileModel(windowSeconds: Self.windows.last ?? 30)
    var rng = Random(state: seed &* 77)
    var compared = 0
    var expired = 0
    var emptied = 0
    for step in 0..<400 {
      let (samples, lost) = stream.batch(maxBatch: step % 50 < 5 ? 0 : 12)
      let before = model.count()
      model.add(samples: samples, lost: lost, tscPerMs: Self.perMs)
      counts.add(samples: samples, lost: lost, tscPerMs: Self.perMs, name: Self.name)
      if model.count() < before + samples.count { expired += 1 }
      if model.windowed(seconds: 1).count() < model.count() { emptied += 1 }
      // The 5 s view by function of every lcpu is asked for at every step (followed
      // incrementally); another window now and then (counted afresh, then followed a while).
      var problems = Self.differences(&counts, model, window: 2)
      if Int.random(in: 0..<5, using: &rng) == 0 {
        problems += Self.differences(
          &counts, model, window: Int.random(in: 0..<Self.windows.count, using: &rng))
      }
      #expect(problems.isEmpty, "seed \(seed) step \(step): \(problems.prefix(3))")
      if !problems.isEmpty { return }
      compared += 1
      #expect(counts.stackCount == model.stacks().stacks.count, "every stack out of the 30 s window is freed")
    }
    #expect(compared == 400 && counts.added == UInt64(model.added))
    #expect(expired > 20 && emptied > 100, "samples left the windows (\(expired), \(emptied))")
    #expect(
      counts.report(.init(window: 4, lcpu: nil, lines: false)).rows.count > 3, "the views are not empty")
  }

  @Test func aMissedSampleOrAWrongWindowIsCaught() {
    // Negative controls for the comparison itself: counts that missed one sample, and counts
    // asked for another window than the recount, both differ.
    var stream = Stream(seed: 9, lcpus: 2)
    var counts = ProfileCounts(windows: Self.windows)
    var missing = ProfileCounts(windows: Self.windows)
    var model = ProfileModel(windowSeconds: 30)
    var missedSeen = false
    var windowSeen = false
    for step in 0..<60 {
      let (samples, lost) = stream.batch(maxBatch: 10)
      model.add(samples: samples, lost: lost, tscPerMs: Self.perMs)
      counts.add(samples: samples, lost: lost, tscPerMs: Self.perMs, name: Self.name)
      let dropped = step == 20 ? Array(samples.dropFirst()) : samples
      missing.add(samples: dropped, lost: lost, tscPerMs: Self.perMs, name: Self.name)
      if !Self.differences(&missing, model, window: 4).isEmpty { missedSeen = true }
      let five = model.windowed(seconds: 5).report { Self.name($0, lines: false) }
      if counts.report(.init(window: 0, lcpu: nil, lines: false)) != five { windowSeen = true }
      #expect(Self.differences(&counts, model, window: 4).isEmpty)
    }
    #expect(missedSeen && windowSeen)
  }

  @Test func eachAddressIsNamedOnceAndEachStackKeptOnce() {
    var counts = ProfileCounts(windows: [1, 30])
    var asked: [UInt64: Int] = [:]
    let samples: [ProfileSample] = (0..<100).map { (k: Int) -> ProfileSample in
      let rip: UInt64 = k % 3 == 0 ? 0x300 : 0x400
      return ProfileSample(
        lcpu: UInt32(k % 2), position: UInt64(k), tsc: UInt64(k) * 1000, thread: 1, idle: false, rip: rip,
        frames: [0x201, 0x101])
    }
    #expect(counts.unnamed(in: samples).sorted() == [0x100, 0x200, 0x300, 0x400])
    counts.add(samples: samples, lost: [:], tscPerMs: Self.perMs) { address, lines in
      asked[address, default: 0] += 1
      return Self.name(address, lines: lines)
    }
    #expect(asked == [0x100: 2, 0x200: 2, 0x300: 2, 0x400: 2], "once by function, once by line")
    #expect(counts.stackCount == 2 && counts.unnamed(in: samples).isEmpty)
    let report = counts.report(.init(window: 1, lcpu: nil, lines: false))
    #expect(
      report.samples == 100 && report.rows.first == ProfileRow(name: "f4", selfCount: 66, totalCount: 66))
  }
}
