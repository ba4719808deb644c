import ArgumentParser
import Foundation
import Inspector

/// `smptop trace`: drains the guest's per-lcpu trace rings for a while and writes a Chrome
/// trace (Perfetto UI, chrome://tracing) or JSON lines.
struct TraceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trace",
    abstract: "Record the guest's event trace (locks, IRQs, switches, timers) to a Chrome trace file.",
    discussion: """
      Drains the per-lcpu trace rings live from the shared RAM file (--memory-file is required; \
      the guest is never stopped) for --seconds, then writes Chrome Trace Event JSON that \
      Perfetto UI and chrome://tracing open: a process per lcpu with irq, events and lock lanes, \
      flow arrows from a release to the waiter's acquisition, and the guest threads as named \
      tracks. --json-lines writes one event per line instead. The guest traces what its command \
      line says (trace=all, trace=locks,irq,...); --enable switches classes on for the run and \
      restores the previous setting afterwards (the one write smptop makes to guest memory).
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "How long to record, in seconds.")
  var seconds: Double = 5

  @Option(help: "Output file ('-' = standard output).")
  var out: String

  @Flag(help: "Write one JSON object per event and line instead of a Chrome trace.")
  var jsonLines = false

  @Option(help: "Drains per second.")
  var rate: Double = 10

  @Option(
    help:
      "Trace classes to switch on while recording: all, or a comma list of locks,irq,sched,timer,virtio,alloc."
  )
  var enable: String?

  func validate() throws {
    guard seconds > 0, seconds <= 3600 else { throw ValidationError("0 < --seconds ≤ 3600") }
    guard rate >= 1, rate <= 1000 else { throw ValidationError("1 ≤ --rate ≤ 1000") }
    if let e = enable, TraceClasses(parsing: e) == nil {
      throw ValidationError("--enable takes all, off or a comma list of locks,irq,sched,timer,virtio,alloc")
    }
    guard target.memoryFile != nil else {
      throw ValidationError("smptop trace reads the rings live: give --memory-file PATH")
    }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    do { try await record(t) } catch {
      await t.close()
      throw error
    }
    await t.close()
  }

  /// Drains, then writes the file.
  func record(_ t: Target) async throws {
    guard let memory = t.sharedMemory, let root = t.rootAddress, let file = target.memoryFile else {
      throw CLIError("this guest has no inspection ABI, so it has no trace rings", code: .abi)
    }
    var drain = TraceDrain(rootAddress: root)
    let first = drain.drain(memory)
    if let problem = first.problems.first { throw CLIError(problem.description, code: .abi) }
    guard !drain.positions.isEmpty else {
      throw CLIError("the guest publishes no trace rings (an older guest, or still booting)", code: .abi)
    }
    let previous = first.enabled
    var restore = false
    if let e = enable, let classes = TraceClasses(parsing: e) {
      do {
        try TraceControl.write(classes, memoryFile: file, machine: target.machine, rootAddress: root)
      } catch {
        throw CLIError(error.description, code: .memory)
      }
      restore = true
    } else if previous.isEmpty {
      throw CLIError(
        "the guest traces nothing: boot it with trace=all (or trace=locks,irq,...) or pass --enable all",
        code: .guest)
    }
    installInterruptHandler()
    var events: [TraceEvent] = []
    var problems: [TraceProblem] = []
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < end {
      if !(await sleepUnlessInterrupted(1 / rate)) { break }
      let batch = drain.drain(memory)
      events += batch.events
      problems += batch.problems
    }
    let batch = drain.drain(memory)
    events += batch.events
    problems += batch.problems
    let elapsed = ContinuousClock.now - start
    if restore {
      try? TraceControl.write(previous, memoryFile: file, machine: target.machine, rootAddress: root)
    }
    let names =
      (try? t.liveSnapshot()).map { TraceNames(snapshot: $0, site: Target.symbolizer(t.symbols)) }
      ?? TraceNames()
    for p in Set(problems.map(\.description)).sorted() {
      FileHandle.standardError.write(Data("smptop: \(p)\n".utf8))
    }
    let data: Data
    if jsonLines {
      data = Data(TraceExport.jsonLines(events, tscPerMs: drain.tscPerMs, names: names).utf8)
    } else {
      let model = TraceModel(events: events)
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
      let chrome = TraceExport.chrome(
        model, tscPerMs: drain.tscPerMs, names: names, lost: drain.totalLost,
        otherData: ["events": "\(events.count)", "seconds": String(format: "%.3f", seconds)])
      data = try TraceExport.encode(chrome)
    }
    if out == "-" {
      FileHandle.standardOutput.write(data)
    } else {
      guard FileManager.default.createFile(atPath: out, contents: data) else {
        throw CLIError("cannot write \(out)", code: .usage)
      }
    }
    let perSecond =
      Double(events.count)
      / max(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 0.001)
    FileHandle.standardError.write(
      Data("smptop: traced \(events.count) events (\(Int(perSecond))/s), lost \(drain.totalLost)\n".utf8))
  }
}
