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
    try await target.withOpenTarget { try await record($0) }
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
    let output: TraceOutput
    do {
      output = try TraceOutput(
        path: out, jsonLines: jsonLines, tscPerMs: drain.tscPerMs,
        names: t.traceNames(snapshot: try? t.liveSnapshot()))
    } catch {
      if restore {
        try? TraceControl.write(previous, memoryFile: file, machine: target.machine, rootAddress: root)
      }
      throw error
    }
    var events = 0
    var kinds: [String: Int] = [:]
    var problems = Set<String>()
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    var named = start
    // Draining comes first: the rings hold a fraction of a second of trace=all, and writing the
    // file can be slower than the guest produces. Drained events wait in `spool` (sorted by TSC
    // within each drain; in memory up to a bound, then in an unlinked temporary file) and are
    // written in slices between drains, so memory stays bounded however long the run.
    let spool = TraceSpool()
    func take(_ batch: TraceBatch) throws {
      events += batch.events.count
      for e in batch.events { kinds[e.kind.name, default: 0] += 1 }
      problems.formUnion(batch.problems.map(\.description))
      do {
        try spool.push(
          batch.events.sorted { ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position) })
      } catch {
        throw CLIError(error.description, code: .usage)
      }
    }
    /// Writes spooled slices until `deadline`.
    func writeBacklog(until deadline: ContinuousClock.Instant?) throws {
      while spool.count > 0 {
        if let deadline, ContinuousClock.now >= deadline { break }
        do { try output.append(try spool.pop(512)) } catch let error as TraceSpoolError {
          throw CLIError(error.description, code: .usage)
        }
      }
    }
    do {
      var next = start
      while ContinuousClock.now < end {
        next += .milliseconds(Int(1000 / rate))
        try writeBacklog(until: next)
        if ContinuousClock.now < next {
          let left = next - ContinuousClock.now
          let wait = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
          if !(await sleepUnlessInterrupted(wait)) { break }
        } else if interruptRequested.load(ordering: .relaxed) {
          break
        }
        try take(drain.drain(memory))
        // Threads and dynamic locks that appear later get their names from a snapshot each second.
        if ContinuousClock.now - named > .seconds(1), let snap = try? t.liveSnapshot() {
          output.names.add(snap)
          named = .now
        }
      }
      try take(drain.drain(memory))
    } catch {
      if restore {
        try? TraceControl.write(previous, memoryFile: file, machine: target.machine, rootAddress: root)
      }
      throw error
    }
    let elapsed = ContinuousClock.now - start
    if restore {
      try? TraceControl.write(previous, memoryFile: file, machine: target.machine, rootAddress: root)
    }
    try writeBacklog(until: nil)
    for p in problems.sorted() {
      FileHandle.standardError.write(Data("smptop: \(p)\n".utf8))
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    // The number of events of each kind: every acquisition is one hold span, every contend-begin
    // one wait span, every interrupt entry one irq span, every other event one instant.
    var other = ["events": "\(events)", "seconds": String(format: "%.3f", seconds)]
    for (kind, n) in kinds { other["events_" + kind] = "\(n)" }
    try output.finish(lost: drain.totalLost, otherData: other)
    let behind =
      spool.spilledPeak > 0
      ? "; the writer fell behind by up to \(spool.spilledPeak + spool.memoryLimit) events (the excess waited on disk)"
      : ""
    FileHandle.standardError.write(
      Data(
        "smptop: traced \(events) events (\(Int(Double(events) / max(seconds, 0.001)))/s), lost \(drain.totalLost)\(behind)\n"
          .utf8))
  }
}

/// Streams trace events to a file as a Chrome trace or JSON lines, batch by batch (memory stays
/// bounded however long the run): `smptop trace` and `smptop replay --trace`.
final class TraceOutput {
  /// Names for locks, threads and sites (may grow between batches).
  var names: TraceNames {
    didSet { chrome?.names = names }
  }
  let handle: FileHandle
  let closeHandle: Bool
  let path: String
  let jsonLines: Bool
  let tscPerMs: UInt64
  let chrome: ChromeTraceWriter?
  /// The TSC of `us` 0 in JSON lines: the first batch's earliest event.
  var base: UInt64?

  /// Opens `path` (`-` = standard output), truncating it.
  init(path: String, jsonLines: Bool, tscPerMs: UInt64, names: TraceNames) throws {
    if path == "-" {
      handle = .standardOutput
      closeHandle = false
    } else {
      handle = try openOutputFile(path)
      closeHandle = true
    }
    self.path = path
    self.jsonLines = jsonLines
    self.tscPerMs = tscPerMs
    self.names = names
    let handle = self.handle
    chrome =
      jsonLines
      ? nil
      : ChromeTraceWriter(tscPerMs: tscPerMs, names: names) { data in try handle.write(contentsOf: data) }
  }

  deinit { if closeHandle { try? handle.close() } }

  /// Writes one drain's events.
  func append(_ events: [TraceEvent]) throws {
    do {
      if let chrome {
        try chrome.append(events)
      } else if !events.isEmpty {
        if base == nil { base = events.map(\.tsc).min() }
        try handle.write(
          contentsOf: Data(TraceExport.jsonLineBytes(events, tscPerMs: tscPerMs, names: names, base: base)))
      }
    } catch {
      throw CLIError("cannot write \(path): \(error)", code: .usage)
    }
  }

  /// Writes what is still open and the end of the file.
  func finish(lost: UInt64, otherData: [String: String]) throws {
    do { try chrome?.finish(lost: lost, otherData: otherData) } catch {
      throw CLIError("cannot write \(path): \(error)", code: .usage)
    }
  }
}
