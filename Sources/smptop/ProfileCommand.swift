import ArgumentParser
import Foundation
import Inspector

/// `smptop profile`: drains the guest's per-lcpu stack-sample rings for a while and writes
/// folded stacks (flamegraph.pl, inferno, speedscope) or a JSON summary.
struct ProfileCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "profile",
    abstract: "Record where every lcpu spends its time (stack samples) as folded stacks.",
    discussion: """
      A guest with the inspection ABI samples itself: booted with prof_hz=N (100..10000 \
      samples per second per lcpu), each lcpu records the interrupted instruction and its \
      frame-pointer chain in its own timer interrupt. This command drains those rings live from \
      the shared RAM file (--memory-file is required; the guest is never stopped) for --seconds \
      and writes folded stacks, one `outer;...;inner count` line per distinct stack (idle \
      samples are the stack `idle`), merged or with --per-lcpu prefixed `lcpuN;`. Counts are \
      sampling periods: a sample the guest took late (its vCPU was not run) counts for every \
      period it skipped, so the counts follow time; they add up to the periods of the samples \
      drained. --json writes samples, periods, loss, per-lcpu totals and the hottest functions \
      instead.

      A guest without the ABI (Linux, say, with --symbols System.map or --kernel vmlinux) is \
      sampled by pausing it through the gdbstub (--gdb is required): --rate times a second \
      (at most 100) the VM is stopped, every vCPU's RIP and its frame-pointer chain (bounded, \
      validated reads of the stack above RBP) are read, and the VM is resumed. Halted vCPUs \
      are `idle`; addresses without a symbol are hex, under a `[unknown]` frame when no \
      symbols were given. Standard error says how often and how long the VM was paused; \
      --json says "method": "gdbstub-pause" (the rings: "guest-rings"). A VM paused before \
      the command starts is sampled once and left paused.
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "How long to record, in seconds.")
  var seconds: Double = 5

  @Option(help: "Output file ('-' = standard output).")
  var out: String

  @Flag(help: "Prefix every stack with its lcpu (lcpuN;...) instead of merging the lcpus.")
  var perLcpu = false

  @Flag(help: "Name frames by source line (DWARF) instead of by function.")
  var lines = false

  @Flag(
    help: "Write a JSON summary (samples, lost, per-lcpu totals, top functions) instead of folded stacks.")
  var json = false

  @Option(help: "Functions listed in the JSON summary.")
  var top: Int = 20

  @Option(
    help:
      "Drains of the rings per second; for a guest without the ABI, pausing samples per second (at most 100)."
  )
  var rate: Double = 10

  @Option(help: "Return addresses kept per pausing sample of a guest without the ABI (0 = RIP only).")
  var frames: Int = 16

  func validate() throws {
    guard seconds > 0, seconds <= 3600 else { throw ValidationError("0 < --seconds ≤ 3600") }
    guard rate >= 1, rate <= 1000 else { throw ValidationError("1 ≤ --rate ≤ 1000") }
    guard top >= 1, top <= 10_000 else { throw ValidationError("1 ≤ --top ≤ 10000") }
    guard frames >= 0, frames <= 64 else { throw ValidationError("0 ≤ --frames ≤ 64") }
  }

  func run() async throws {
    try await target.withOpenTarget { t in
      if t.speaksABI { try await record(t) } else { try await recordPausing(t) }
    }
  }

  /// The highest rate at which a guest without the ABI is sampled by pausing it.
  static let maximumPausingRate: Double = 100

  /// The message for a guest that takes no samples.
  static let bootHint =
    "the guest takes no stack samples: boot it with prof_hz=N (100..10000 per second), e.g. smptop run --append prof_hz=1000"

  /// Drains, then writes the file.
  func record(_ t: Target) async throws {
    guard let root = t.rootAddress else {
      throw CLIError("this guest has no inspection ABI, so it has no profile rings", code: .abi)
    }
    guard let memory = t.sharedMemory else {
      throw CLIError("smptop profile reads the guest's rings live: give --memory-file PATH", code: .usage)
    }
    var drain = ProfileDrain(rootAddress: root)
    let first = drain.drain(memory)
    if let problem = first.problems.first { throw CLIError(problem.description, code: .abi) }
    guard first.present, first.hz != 0 else { throw CLIError(Self.bootHint, code: .guest) }
    let handle = try openOutput()
    defer { if out != "-" { try? handle.close() } }
    installInterruptHandler()
    var model = ProfileModel()
    var problems = Set<String>()
    func take(_ batch: ProfileBatch) {
      model.add(batch, tscPerMs: drain.tscPerMs)
      problems.formUnion(batch.problems.map(\.description))
    }
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    var next = start
    while ContinuousClock.now < end {
      next += .milliseconds(Int(1000 / rate))
      if ContinuousClock.now < next {
        let left = next - ContinuousClock.now
        let wait = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
        if !(await sleepUnlessInterrupted(wait)) { break }
      } else if interruptRequested.load(ordering: .relaxed) {
        break
      }
      take(drain.drain(memory))
    }
    take(drain.drain(memory))
    let elapsed = ContinuousClock.now - start
    let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let name = lines ? t.makeLineNamer() : t.makeFunctionNamer()
    let text: String
    if json {
      text = Self.summary(
        model, method: .guestRings, hz: first.hz, seconds: elapsedSeconds, top: top, name: name)
    } else {
      text = model.folded(perLCPU: perLcpu, name: name).map { $0 + "\n" }.joined()
    }
    try write(text, to: handle, problems: problems)
    FileHandle.standardError.write(
      Data(
        "smptop: profiled \(model.count()) samples (\(model.periods()) periods) at \(first.hz) Hz per lcpu over \(String(format: "%.1f", elapsedSeconds)) s, lost \(model.lostCount())\n"
          .utf8))
  }

  /// The `--json` summary: one object with the totals, each lcpu's, and the hottest functions.
  static func summary(
    _ model: ProfileModel, method: Method, hz: UInt64, seconds: Double, top: Int,
    pauses: PauseStatistics? = nil,
    name: (UInt64) -> String
  ) -> String {
    struct Function: Encodable {
      var name: String
      var self_periods: Int
      var total_periods: Int
    }
    struct LCPU: Encodable {
      var lcpu: UInt32
      var samples: Int
      var periods: Int
      var idle: Int
      var lost: UInt64
      var top: [Function]
    }
    struct Pauses: Encodable {
      var count: Int
      var median_us: Double
      var p90_us: Double
      var max_us: Double
    }
    struct Summary: Encodable {
      var method: String
      var pauses: Pauses?
      var hz: UInt64
      var seconds: Double
      var samples: Int
      var periods: Int
      var idle: Int
      var lost: UInt64
      var lcpus: [LCPU]
      var top: [Function]
    }
    func functions(_ r: ProfileReport) -> [Function] {
      r.rows.prefix(top).map {
        Function(name: $0.name, self_periods: $0.selfCount, total_periods: $0.totalCount)
      }
    }
    let all = model.report(name: name)
    let lcpus = Set(model.lcpus).union(model.lost.keys).sorted().map { l in
      let r = model.report(lcpu: l, name: name)
      return LCPU(
        lcpu: l, samples: r.samples, periods: r.periods, idle: r.idle, lost: r.lost, top: functions(r))
    }
    let summary = Summary(
      method: method.rawValue,
      pauses: pauses.map {
        Pauses(
          count: $0.count, median_us: $0.medianMicroseconds, p90_us: $0.p90Microseconds,
          max_us: $0.maxMicroseconds)
      },
      hz: hz, seconds: (seconds * 1000).rounded() / 1000, samples: all.samples, periods: all.periods,
      idle: all.idle, lost: all.lost,
      lcpus: lcpus, top: functions(all))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let data = try? encoder.encode(summary) else { return "{}\n" }
    return String(decoding: data, as: UTF8.self) + "\n"
  }
}

extension ProfileCommand {
  /// How the samples were taken, as the JSON summary's `method` says it.
  enum Method: String {
    /// The guest's own per-lcpu rings, drained live (the VM never stops).
    case guestRings = "guest-rings"
    /// Every vCPU's registers read through the gdbstub while the VM was stopped for it.
    case gdbstubPause = "gdbstub-pause"
  }

  /// How often and how long a pausing profile stopped the VM.
  struct PauseStatistics: Equatable {
    /// Rounds that stopped the VM.
    var count: Int
    /// Median pause, µs (0 without pauses).
    var medianMicroseconds: Double
    /// 90th percentile (nearest rank), µs.
    var p90Microseconds: Double
    /// Longest pause, µs.
    var maxMicroseconds: Double

    /// The statistics of `pauses` (nanoseconds each).
    init(_ pauses: [UInt64]) {
      let sorted = pauses.sorted()
      count = sorted.count
      func rank(_ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let i = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return (Double(sorted[i]) / 100).rounded() / 10
      }
      medianMicroseconds = rank(0.5)
      p90Microseconds = rank(0.9)
      maxMicroseconds = rank(1)
    }

    /// The stderr line that says the profile paused the VM.
    var line: String {
      "generic guest: sampled by pausing the VM \(count) times (median pause \(Self.text(medianMicroseconds)) µs, "
        + "p90 \(Self.text(p90Microseconds)) µs)"
    }

    static func text(_ us: Double) -> String {
      us >= 100 ? String(Int(us.rounded())) : String(format: "%.1f", us)
    }
  }

  /// The output file (created or truncated), or standard output for `-`.
  func openOutput() throws -> FileHandle {
    if out == "-" { return .standardOutput }
    return try openOutputFile(out)
  }

  /// Writes the profile, then each problem seen on standard error.
  func write(_ text: String, to handle: FileHandle, problems: Set<String>) throws {
    do { try handle.write(contentsOf: Data(text.utf8)) } catch {
      throw CLIError("cannot write \(out): \(error)", code: .usage)
    }
    for p in problems.sorted() {
      FileHandle.standardError.write(Data("smptop: \(p)\n".utf8))
    }
  }

  /// Samples a guest without the ABI by pausing it `--rate` times a second for `--seconds`,
  /// then writes the same outputs as the rings. A VM that is paused when it starts is sampled
  /// once and left paused; one paused by someone else meanwhile ends the sampling (and stays
  /// paused). The VM is resumed after every round, also when a read fails.
  func recordPausing(_ t: Target) async throws {
    guard target.gdb != nil else {
      throw CLIError(
        "this guest has no inspection ABI: smptop profile samples it by pausing it through the gdbstub; give --gdb ADDR",
        code: .usage)
    }
    guard rate <= Self.maximumPausingRate else {
      throw CLIError(
        "a guest without the ABI is sampled by pausing it: --rate is at most \(Int(Self.maximumPausingRate)) per second",
        code: .usage)
    }
    let handle = try openOutput()
    defer { if out != "-" { try? handle.close() } }
    installInterruptHandler()
    let sampling = PauseSampling(maxFrames: frames)
    var model = ProfileModel()
    var problems = Set<String>()
    var notes: [String] = []
    var pauses: [UInt64] = []
    var rounds: UInt64 = 0
    func sample() async throws {
      let r: PauseRound
      do { r = try await t.samplePaused(round: rounds, sampling: sampling) } catch { throw CLIError(error) }
      rounds += 1
      if r.paused { pauses.append(r.pauseNanoseconds) }
      model.add(samples: r.samples, lost: [:], tscPerMs: 1_000_000)
      problems.formUnion(r.problems)
    }
    let start = ContinuousClock.now
    let pausedAtStart = await t.isStoppedByOthers()
    var pausedByOthers = false
    if pausedAtStart {
      try await sample()
      notes.append("the VM was paused: sampled it once and left it paused")
    } else {
      let end = start + .milliseconds(Int(seconds * 1000))
      let period = Duration.nanoseconds(Int64(1e9 / rate))
      var next = start
      while ContinuousClock.now < end {
        if rounds > 0, await t.isStoppedByOthers() {
          notes.append(
            "the VM was paused by someone else after \(rounds) rounds: stopped sampling, left it paused")
          pausedByOthers = true
          break
        }
        try await sample()
        next += period
        if ContinuousClock.now < next {
          let left = next - ContinuousClock.now
          let wait = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
          if !(await sleepUnlessInterrupted(wait)) { break }
        } else if interruptRequested.load(ordering: .relaxed) {
          break
        }
      }
    }
    let elapsed = ContinuousClock.now - start
    let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let function = lines ? t.makeLineNamer() : t.makeFunctionNamer()
    // Without any symbols every frame is an address: one `[unknown]` module frame holds them.
    let unknownModule = t.symbols == nil
    let statistics = PauseStatistics(pauses)
    let text: String
    if json {
      text = Self.summary(
        model, method: .gdbstubPause, hz: UInt64(rate.rounded()), seconds: elapsedSeconds, top: top,
        pauses: statistics, name: function)
    } else {
      text = Self.pausingFolded(model, perLCPU: perLcpu, unknownModule: unknownModule, name: function)
        .map { $0 + "\n" }.joined()
    }
    try write(text, to: handle, problems: problems)
    for note in notes { FileHandle.standardError.write(Data("smptop: \(note)\n".utf8)) }
    FileHandle.standardError.write(
      Data(
        ("smptop: profiled \(model.count()) samples (\(model.periods()) periods) at \(Self.rateText(rate)) Hz per vCPU "
          + "over \(String(format: "%.1f", elapsedSeconds)) s, lost 0\n").utf8))
    FileHandle.standardError.write(
      Data(
        "smptop: \(statistics.line)\(Self.attachNote(pausedAtStart: pausedAtStart, pausedByOthers: pausedByOthers))\n"
          .utf8))
  }

  /// The pauses besides the rounds: QEMU 7.2 stops the VM when the gdbstub is attached and
  /// again, for a moment, when the detach packet arrives (any byte to its stub does); neither
  /// happens to a VM that was stopped already, and a VM left paused is not detached from.
  static func attachNote(pausedAtStart: Bool, pausedByOthers: Bool) -> String {
    if pausedAtStart { return "" }
    return pausedByOthers
      ? ", and once to attach the gdbstub" : ", and once each to attach and detach the gdbstub"
  }

  /// Folded stacks of a pausing profile: the model's, with the frame `[unknown]` after the
  /// lcpu prefix of every non-idle stack when the target has no symbols at all.
  static func pausingFolded(
    _ model: ProfileModel, perLCPU: Bool, unknownModule: Bool, name: (UInt64) -> String
  ) -> [String] {
    let lines = model.folded(perLCPU: perLCPU, name: name)
    guard unknownModule else { return lines }
    return lines.map { line in
      var frames = line.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
      let at = perLCPU ? 1 : 0
      guard at < frames.count, !frames[at].hasPrefix("idle ") else { return line }
      frames.insert("[unknown]", at: at)
      return frames.joined(separator: ";")
    }
  }

  /// A rate for the summary line: whole numbers without decimals.
  static func rateText(_ rate: Double) -> String {
    rate == rate.rounded() ? String(Int(rate)) : String(format: "%.1f", rate)
  }
}
