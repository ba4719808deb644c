import ArgumentParser
import Foundation
import Inspector

/// `smptop record`: capture the guest's model at an interval into a file for later replay.
struct RecordCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "record",
    abstract: "Record the guest's inspection records (from shared RAM, no pause) into a file.",
    discussion: """
      Each frame holds the raw bytes of the ABI root, every table and every dynamic lock, read \
      live from the shared RAM file, and the events the guest's trace rings gave since the \
      previous frame (drained at 10 Hz between frames; what the guest traces is its trace= \
      setting, or --enable for the run). Replay it with `smptop replay FILE --kernel ELF`; \
      `--trace OUT` exports the recorded trace.
      """)

  @OptionGroup var target: TargetArguments

  @Option(name: .customLong("out"), help: "The recording file to write (appended to if it exists).")
  var output: String

  @Option(help: "Seconds between frames.")
  var interval: Double = 1

  @Option(help: "Frames to record (default: until Ctrl-C).")
  var count: Int?

  @Flag(inversion: .prefixedNo, help: "Store the trace rings' events with the frames.")
  var trace = true

  @Option(
    help:
      "Trace classes to switch on while recording: all, or a comma list of locks,irq,sched,timer,virtio,alloc."
  )
  var enable: String?

  func validate() throws {
    guard target.memoryFile != nil, target.kernel != nil else {
      throw ValidationError("recording needs --memory-file PATH and --kernel ELF")
    }
    guard interval > 0 else { throw ValidationError("--interval must be > 0") }
    if let e = enable, TraceClasses(parsing: e) == nil {
      throw ValidationError("--enable takes all, off or a comma list of locks,irq,sched,timer,virtio,alloc")
    }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    installInterruptHandler()
    var frames = 0
    var events = 0
    var lost: UInt64 = 0
    // The trace rings, drained from the first frame on (what they held before is not recorded).
    var drain = trace ? t.rootAddress.map { TraceDrain(rootAddress: $0) } : nil
    var restore: TraceClasses?
    if var d = drain, let memory = t.sharedMemory {
      let first = d.drain(memory)
      drain = d
      if let e = enable, let classes = TraceClasses(parsing: e), let file = target.memoryFile,
        let root = t.rootAddress
      {
        do {
          try TraceControl.write(classes, memoryFile: file, machine: target.machine, rootAddress: root)
        } catch {
          await t.close()
          throw CLIError(error.description, code: .memory)
        }
        restore = first.enabled
      }
    }
    var pending = RecordedTrace()
    var warnedFormat = false
    /// Drains the rings into the next frame's trace.
    func drainOnce() {
      guard var d = drain, let memory = t.sharedMemory else { return }
      let batch = d.drain(memory)
      drain = d
      pending.add(batch, tscPerMs: d.tscPerMs)
    }
    do {
      while count.map({ frames < $0 }) ?? true {
        drainOnce()
        let frame = try t.captureFrame(trace: drain == nil ? nil : pending)
        do {
          if !(try RecordedMemory.append([frame], to: output)) && drain != nil && !warnedFormat {
            warnedFormat = true
            FileHandle.standardError.write(
              Data("smptop: \(output) is a format-1 recording: the trace is not stored\n".utf8))
          }
        } catch {
          throw CLIError(error.description, code: .memory)
        }
        events += pending.events.count
        lost &+= pending.totalLost
        pending = RecordedTrace()
        frames += 1
        if count.map({ frames >= $0 }) ?? false { break }
        // Between frames the rings are drained at 10 Hz so they do not overrun.
        let end = ContinuousClock.now + .milliseconds(Int(interval * 1000))
        var interrupted = false
        while ContinuousClock.now < end {
          let left = end - ContinuousClock.now
          let step = min(0.1, Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
          guard await sleepUnlessInterrupted(max(step, 0.001)) else {
            interrupted = true
            break
          }
          if drain != nil && ContinuousClock.now < end { drainOnce() }
        }
        if interrupted { break }
      }
    } catch let error as TargetError {
      restoreTracing(restore, t)
      await t.close()
      throw CLIError(error)
    } catch {
      restoreTracing(restore, t)
      await t.close()
      throw error
    }
    restoreTracing(restore, t)
    await t.close()
    let traced = drain == nil ? "" : ", \(events) trace events, lost \(lost)"
    FileHandle.standardError.write(Data("smptop: recorded \(frames) frames to \(output)\(traced)\n".utf8))
  }

  /// Puts the control word back as it was before `--enable`.
  func restoreTracing(_ previous: TraceClasses?, _ t: Target) {
    guard let previous, let file = target.memoryFile, let root = t.rootAddress else { return }
    try? TraceControl.write(previous, memoryFile: file, machine: target.machine, rootAddress: root)
  }
}

/// `smptop replay`: show a recording with the same displays as a live target.
struct ReplayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Replay a recording made by `smptop record` (dashboard, text or JSON).",
    discussion: """
      The dashboard's timeline pane (key 6) shows the recorded trace up to the frame shown. \
      --trace OUT writes the recorded trace as `smptop trace` does (Chrome trace, or \
      --json-lines) instead of showing the frames.
      """)

  @Argument(help: "The recording file.")
  var recording: String

  @Option(help: "The kernel ELF the recording was made from (symbols and the ABI root).")
  var kernel: String

  @Option(help: "Write the recorded trace to this file ('-' = standard output) instead of showing frames.")
  var trace: String?

  @Flag(help: "With --trace: one JSON object per event and line instead of a Chrome trace.")
  var jsonLines = false

  @OptionGroup var display: DisplayArguments

  func run() async throws {
    var options = TargetOptions()
    options.kernel = kernel
    options.recording = recording
    let t: Target
    do { t = try await Target.open(options) } catch { throw CLIError(error) }
    if let out = trace {
      do { try export(t, to: out) } catch {
        await t.close()
        throw error
      }
      await t.close()
      return
    }
    let frames = t.recording?.frames.count ?? 0
    var display = display
    if display.iterations == nil { display.iterations = frames }
    try await display.show(t, machine: "recording")
    await t.close()
  }

  /// Writes the recording's trace; names come from every frame's locks and threads.
  func export(_ t: Target, to out: String) throws {
    guard let recording = t.recording, let trace = recording.trace else {
      let why =
        t.recording?.formatVersion == 1
        ? "a format-1 recording, made before recordings carried the trace" : "recorded with --no-trace"
      throw CLIError("\(recording) has no trace (\(why))", code: .usage)
    }
    var names = t.traceNames(snapshot: nil)
    for _ in recording.frames {
      if let snap = try? t.liveSnapshot() { names.add(snap) }
    }
    let output = try TraceOutput(path: out, jsonLines: jsonLines, tscPerMs: trace.tscPerMs, names: names)
    for case let frameTrace? in recording.frames.map(\.trace) { try output.append(frameTrace.events) }
    try output.finish(
      lost: trace.totalLost, otherData: ["events": "\(trace.events.count)", "recording": self.recording])
    FileHandle.standardError.write(
      Data("smptop: exported \(trace.events.count) recorded events, lost \(trace.totalLost)\n".utf8))
  }
}
