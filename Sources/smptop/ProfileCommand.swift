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
      The guest samples itself: booted with prof_hz=N (100..10000 samples per second per \
      lcpu), each lcpu records the interrupted instruction and its frame-pointer chain in its \
      own timer interrupt. This command drains those rings live from the shared RAM file \
      (--memory-file is required; the guest is never stopped) for --seconds and writes folded \
      stacks, one `outer;...;inner count` line per distinct stack (idle samples are the stack \
      `idle`), merged or with --per-lcpu prefixed `lcpuN;`. Counts are sampling periods: a \
      sample the guest took late (its vCPU was not run) counts for every period it skipped, so \
      the counts follow time; they add up to the periods of the samples drained. --json writes \
      samples, periods, loss, per-lcpu totals and the hottest functions instead.
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

  @Option(help: "Drains per second.")
  var rate: Double = 10

  func validate() throws {
    guard seconds > 0, seconds <= 3600 else { throw ValidationError("0 < --seconds ≤ 3600") }
    guard rate >= 1, rate <= 1000 else { throw ValidationError("1 ≤ --rate ≤ 1000") }
    guard top >= 1, top <= 10_000 else { throw ValidationError("1 ≤ --top ≤ 10000") }
    guard target.memoryFile != nil else {
      throw ValidationError("smptop profile reads the rings live: give --memory-file PATH")
    }
  }

  func run() async throws {
    try await target.withOpenTarget { try await record($0) }
  }

  /// The message for a guest that takes no samples.
  static let bootHint =
    "the guest takes no stack samples: boot it with prof_hz=N (100..10000 per second), e.g. smptop run --append prof_hz=1000"

  /// Drains, then writes the file.
  func record(_ t: Target) async throws {
    guard let memory = t.sharedMemory, let root = t.rootAddress else {
      throw CLIError("this guest has no inspection ABI, so it has no profile rings", code: .abi)
    }
    var drain = ProfileDrain(rootAddress: root)
    let first = drain.drain(memory)
    if let problem = first.problems.first { throw CLIError(problem.description, code: .abi) }
    guard first.present, first.hz != 0 else { throw CLIError(Self.bootHint, code: .guest) }
    let handle: FileHandle
    if out == "-" {
      handle = .standardOutput
    } else {
      guard FileManager.default.createFile(atPath: out, contents: nil),
        let h = FileHandle(forWritingAtPath: out)
      else { throw CLIError("cannot write \(out)", code: .usage) }
      handle = h
    }
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
      text = Self.summary(model, hz: first.hz, seconds: elapsedSeconds, top: top, name: name)
    } else {
      text = model.folded(perLCPU: perLcpu, name: name).map { $0 + "\n" }.joined()
    }
    do { try handle.write(contentsOf: Data(text.utf8)) } catch {
      throw CLIError("cannot write \(out): \(error)", code: .usage)
    }
    for p in problems.sorted() {
      FileHandle.standardError.write(Data("smptop: \(p)\n".utf8))
    }
    FileHandle.standardError.write(
      Data(
        "smptop: profiled \(model.count()) samples (\(model.periods()) periods) at \(first.hz) Hz per lcpu over \(String(format: "%.1f", elapsedSeconds)) s, lost \(model.lostCount())\n"
          .utf8))
  }

  /// The `--json` summary: one object with the totals, each lcpu's, and the hottest functions.
  static func summary(
    _ model: ProfileModel, hz: UInt64, seconds: Double, top: Int, name: (UInt64) -> String
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
    struct Summary: Encodable {
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
      hz: hz, seconds: (seconds * 1000).rounded() / 1000, samples: all.samples, periods: all.periods,
      idle: all.idle, lost: all.lost,
      lcpus: lcpus, top: functions(all))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let data = try? encoder.encode(summary) else { return "{}\n" }
    return String(decoding: data, as: UTF8.self) + "\n"
  }
}
