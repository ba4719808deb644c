/// One stack sample an lcpu took of itself in its timer interrupt (`struct smptop_prof_sample`).
public struct ProfileSample: Sendable, Equatable, Codable {
  /// The lcpu whose ring held it (the lcpu that was sampled).
  public var lcpu: UInt32
  /// Its position in that ring.
  public var position: UInt64
  /// Guest TSC when it was taken.
  public var tsc: UInt64
  /// The thread that was running, 0 = the lcpu's idle context.
  public var thread: UInt64
  /// Sampling periods it stands for (1, more when the interrupt came late and skipped deadlines).
  public var periods: UInt64
  /// The lcpu was idle (halted in its idle loop).
  public var idle: Bool
  /// The tick interrupted another interrupt handler.
  public var nested: Bool
  /// The frame chain went on past the frames kept.
  public var truncated: Bool
  /// The interrupted instruction.
  public var rip: UInt64
  /// Return addresses of the frame-pointer chain, innermost first.
  public var frames: [UInt64]
  /// No stack: deadlines that passed while the lcpu was in the state `idle` says, whose
  /// interrupt came late and found it in the other state (`SMPTOP_PROF_UNSEEN`).
  public var unseen: Bool

  /// The address an unseen busy sample's stack consists of: not canonical, so never code.
  public static let unseenAddress: UInt64 = .max
  /// What the profile calls the stack nobody saw (like perf's `[unknown]`).
  public static let unseenName = "[unseen]"

  /// Creates a sample.
  public init(
    lcpu: UInt32, position: UInt64, tsc: UInt64, thread: UInt64, periods: UInt64 = 1, idle: Bool,
    nested: Bool = false, truncated: Bool = false, rip: UInt64, frames: [UInt64], unseen: Bool = false
  ) {
    self.lcpu = lcpu
    self.position = position
    self.tsc = tsc
    self.thread = thread
    self.periods = periods
    self.idle = idle
    self.nested = nested
    self.truncated = truncated
    self.rip = rip
    self.frames = frames
    self.unseen = unseen
  }

  /// The code addresses to name, outermost first and the interrupted instruction last; a
  /// return address is moved back by one byte into its call instruction, so it names the
  /// calling function and line, not whatever follows the call. An unseen sample's stack is
  /// `unseenAddress` alone.
  public var stack: [UInt64] {
    if unseen { return [Self.unseenAddress] }
    var out: [UInt64] = []
    out.reserveCapacity(frames.count + 1)
    for f in frames.reversed() { out.append(f &- 1) }
    out.append(rip)
    return out
  }
}

/// One function (or source line) of a profile: how long it was running (self) and had
/// anywhere on the stack (total), in sampling periods (a sample counts for the periods it
/// stands for, normally 1).
public struct ProfileRow: Sendable, Equatable, Codable {
  /// Function or `File.swift:LINE` name.
  public var name: String
  /// Periods whose sample's interrupted instruction was in it.
  public var selfCount: Int
  /// Periods whose sample had it anywhere on the stack (once per sample, recursion or not).
  public var totalCount: Int

  /// Creates a row.
  public init(name: String, selfCount: Int, totalCount: Int) {
    self.name = name
    self.selfCount = selfCount
    self.totalCount = totalCount
  }
}

/// A profile summary over the samples of one lcpu or all of them; counts are sampling periods.
public struct ProfileReport: Sendable, Equatable {
  /// Samples in the window (idle ones included), each counted once.
  public var samples = 0
  /// Sampling periods those samples stand for: the time covered.
  public var periods = 0
  /// Of those periods, the ones whose sample found the lcpu idle.
  public var idle = 0
  /// Samples lost (overwritten before they were read), for the lcpus covered.
  public var lost: UInt64 = 0
  /// Non-idle functions, hottest self first (ties: hottest total, then name).
  public var rows: [ProfileRow] = []

  /// Periods in which the lcpu ran something.
  public var busy: Int { periods - idle }

  /// `count` periods as a percentage of every period in the window (0 when there are none).
  public func percent(_ count: Int) -> Double { periods == 0 ? 0 : Double(count) * 100 / Double(periods) }
}

/// Stack samples over a sliding window of the last N seconds, per lcpu, and what they add up
/// to: per-function self and total counts, folded stacks (`outer;...;inner count`). Names come
/// from a caller's symbolizer (function names or source lines); idle samples are kept apart.
/// Every count is in sampling periods: a sample whose interrupt came late stands for the
/// deadlines it skipped, so the counts follow time when a vCPU was not run for a while (under
/// TCG on a loaded host, counting each sample once under-counted busy time by up to 20 points
/// against the lcpu records; weighted, within 6: README, Profile).
public struct ProfileModel: Sendable {
  /// Seconds of samples kept (nil = all of them).
  public var windowSeconds: Double?
  /// The guest's TSC rate (counts per millisecond), for the window.
  public var tscPerMs: UInt64 = 0
  /// Samples in the window, per lcpu, oldest first.
  public private(set) var samples: [UInt32: [ProfileSample]] = [:]
  /// Samples lost so far, per lcpu (not windowed: loss is rare and worth seeing).
  public private(set) var lost: [UInt32: UInt64] = [:]
  /// Samples ever added.
  public private(set) var added: UInt64 = 0

  /// Creates an empty model keeping `windowSeconds` of samples (nil = everything).
  public init(windowSeconds: Double? = nil) {
    self.windowSeconds = windowSeconds
  }

  /// Adds samples and loss (per lcpu) and drops what fell out of the window.
  public mutating func add(samples new: [ProfileSample], lost newLost: [UInt32: UInt64], tscPerMs: UInt64) {
    if tscPerMs != 0 { self.tscPerMs = tscPerMs }
    for s in new { samples[s.lcpu, default: []].append(s) }
    for (lcpu, n) in newLost { lost[lcpu, default: 0] &+= n }
    added &+= UInt64(new.count)
    prune()
  }

  /// A copy keeping only the last `seconds` of samples (measured back from the newest sample
  /// of any lcpu); loss counts stay.
  public func windowed(seconds: Double) -> ProfileModel {
    var m = self
    m.windowSeconds = seconds
    m.prune()
    return m
  }

  /// Drops samples older than the window, measured back from the newest sample of any lcpu.
  mutating func prune() {
    guard let seconds = windowSeconds, tscPerMs != 0 else { return }
    guard let newest = samples.values.compactMap({ $0.last?.tsc }).max() else { return }
    let span = UInt64(seconds * 1000) &* tscPerMs
    let cutoff = newest > span ? newest - span : 0
    for (lcpu, list) in samples {
      guard let first = list.first, first.tsc < cutoff else { continue }
      let keep = list.firstIndex { $0.tsc >= cutoff } ?? list.count
      samples[lcpu] = Array(list[keep...])
    }
  }

  /// The lcpus with samples, ascending.
  public var lcpus: [UInt32] { samples.keys.filter { !(samples[$0]?.isEmpty ?? true) }.sorted() }

  /// Samples in the window for `lcpu` (nil = every lcpu).
  public func count(lcpu: UInt32? = nil) -> Int {
    if let lcpu { return samples[lcpu]?.count ?? 0 }
    return samples.values.reduce(0) { $0 + $1.count }
  }

  /// Samples lost for `lcpu` (nil = every lcpu).
  public func lostCount(lcpu: UInt32? = nil) -> UInt64 {
    if let lcpu { return lost[lcpu] ?? 0 }
    return lost.values.reduce(0, &+)
  }

  /// Sampling periods in the window for `lcpu` (nil = every lcpu).
  public func periods(lcpu: UInt32? = nil) -> Int {
    var n = 0
    for (l, list) in samples where lcpu == nil || lcpu == l { n += list.reduce(0) { $0 + Int($1.periods) } }
    return n
  }

  /// Distinct non-idle stacks (outermost address first) with their periods, and the idle
  /// periods, for `lcpu` (nil = every lcpu).
  public func stacks(lcpu: UInt32? = nil) -> (stacks: [[UInt64]: Int], idle: Int) {
    // Grouped by the samples' own frame arrays first (shared, not copied), so only each
    // distinct stack is built.
    struct Key: Hashable {
      var frames: [UInt64]
      var rip: UInt64
    }
    var grouped: [Key: (sample: ProfileSample, periods: Int)] = [:]
    var idle = 0
    for (l, list) in samples where lcpu == nil || lcpu == l {
      for s in list {
        if s.idle {
          idle += Int(s.periods)
        } else {
          grouped[Key(frames: s.frames, rip: s.rip), default: (s, 0)].periods += Int(s.periods)
        }
      }
    }
    var out: [[UInt64]: Int] = [:]
    for (_, g) in grouped { out[g.sample.stack, default: 0] += g.periods }
    return (out, idle)
  }

  /// The hottest functions of `lcpu` (nil = every lcpu), each address named by `name`
  /// (a function or a source line; addresses with the same name add up).
  public func report(lcpu: UInt32? = nil, name: (UInt64) -> String) -> ProfileReport {
    var report = ProfileReport()
    let (stacks, idle) = stacks(lcpu: lcpu)
    report.idle = idle
    report.periods = idle + stacks.values.reduce(0, +)
    report.samples = count(lcpu: lcpu)
    report.lost = lostCount(lcpu: lcpu)
    var selfCounts: [String: Int] = [:]
    var totals: [String: Int] = [:]
    var names: [UInt64: String] = [:]
    func named(_ a: UInt64) -> String {
      if let n = names[a] { return n }
      let n = name(a)
      names[a] = n
      return n
    }
    for (stack, n) in stacks {
      guard let leaf = stack.last else { continue }
      selfCounts[named(leaf), default: 0] += n
      var seen = Set<String>()
      for a in stack where seen.insert(named(a)).inserted { totals[named(a), default: 0] += n }
    }
    report.rows = totals.map {
      ProfileRow(name: $0.key, selfCount: selfCounts[$0.key] ?? 0, totalCount: $0.value)
    }
    .sorted { ($1.selfCount, $1.totalCount, $0.name) < ($0.selfCount, $0.totalCount, $1.name) }
    return report
  }

  /// Folded stacks (`lcpuN;outer;...;inner count` with `perLCPU`, else merged), one line per
  /// distinct named stack, sorted; idle samples are the stack `idle`. The counts are sampling
  /// periods and add up to `periods()`. Names lose any `;` (the frame separator) and line breaks.
  public func folded(perLCPU: Bool, name: (UInt64) -> String) -> [String] {
    var lines: [String: Int] = [:]
    var names: [UInt64: String] = [:]
    func named(_ a: UInt64) -> String {
      if let n = names[a] { return n }
      let n = Self.frameName(name(a))
      names[a] = n
      return n
    }
    let groups: [UInt32?] = perLCPU ? lcpus.map { Optional($0) } : [nil]
    for group in groups {
      let prefix = group.map { "lcpu\($0);" } ?? ""
      let (stacks, idle) = stacks(lcpu: group)
      if idle > 0 { lines[prefix + "idle", default: 0] += idle }
      for (stack, n) in stacks {
        lines[prefix + stack.map(named).joined(separator: ";"), default: 0] += n
      }
    }
    return lines.map { "\($0.key) \($0.value)" }.sorted()
  }

  /// A name made safe for a folded-stack frame.
  static func frameName(_ name: String) -> String {
    var out = ""
    for c in name {
      switch c {
      case ";": out.append(":")
      case "\n", "\r": out.append(" ")
      default: out.append(c)
      }
    }
    return out.isEmpty ? "?" : out
  }
}
