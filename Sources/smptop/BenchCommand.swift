import ArgumentParser
import Dashboard
import Foundation
import Inspector
import QEMULaunch

/// `smptop bench`: snapshot cost per source, guest pause, and gdb doing the same work.
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure snapshot latency per source, guest pause, and gdb's cost for the same work.",
    discussion: """
      Boots the bundled guest for each --smp value and measures, in one run:

      - live: a snapshot of the whole model from the shared RAM file (zero pause).

      - stopped: the gdbstub stops the VM, reads every register of every vCPU plus the model \
      in one pipelined burst, and resumes it (pause = stop to resume).

      - gdb: gdb 13's Python API reading the same registers and memory over the same gdbstub \
      at a stopped VM (Resources/bench/gdb_baseline.py), against smptop's stopped snapshot of \
      a paused VM (the same work).

      It also reports smptop's peak resident memory. Build with -c release for numbers worth \
      quoting.
      """)

  @Option(parsing: .upToNextOption, help: "lcpu counts to measure (e.g. --smp 1 4 16 64).")
  var smp: [Int] = [4]

  @Option(help: "Rounds per measurement.")
  var rounds = 200

  @Flag(help: "Skip the gdb baseline.")
  var noGDB = false

  @Flag(help: "Print JSON.")
  var json = false

  @Flag(help: "Also measure rendering a full 200x50 frame of 64 lcpus and 256 locks.")
  var render = false

  func validate() throws {
    guard smp.allSatisfy({ (1...64).contains($0) }) else {
      throw ValidationError("--smp values must be 1...64")
    }
    guard rounds >= 5 else { throw ValidationError("--rounds must be at least 5") }
  }

  struct Stats: Codable {
    var median: Double
    var p90: Double
    var p99: Double
    var min: Double

    init(_ samples: [Double]) {
      let s = samples.sorted()
      func q(_ p: Double) -> Double { s.isEmpty ? 0 : s[Swift.min(s.count - 1, Int(Double(s.count) * p))] }
      median = q(0.5)
      p90 = q(0.9)
      p99 = q(0.99)
      min = s.first ?? 0
    }

    var text: String { String(format: "%9.1f %9.1f %9.1f", median, p90, p99) }
  }

  struct Row: Codable {
    var smp: Int
    var liveMicroseconds: Stats
    var stoppedMicroseconds: Stats
    var pauseMicroseconds: Stats
    var stoppedPausedMicroseconds: Stats
    var gdbMicroseconds: Stats?
    var gdbRegisters: Int?
    var bytesPerSnapshot: Int
    var renderMicroseconds: [String: Double]?
    /// Every thread's (and vCPU's) backtrace on top of a live snapshot, frame walks only.
    var backtraceMicroseconds: Stats?
    /// Threads walked per snapshot.
    var backtraceThreads: Int?
    /// The same with source locations, the first time (the symbolizer reads the DWARF).
    var locatedColdMicroseconds: Double?
    /// With source locations, cached.
    var locatedWarmMicroseconds: Stats?
  }

  func run() async throws {
    let elf: String
    do { elf = try GuestKernel.build() } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .build)
    }
    var rows: [Row] = []
    for n in smp {
      rows.append(try await measure(smp: n, elf: elf))
    }
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    let rssMiB = Double(usage.ru_maxrss) / 1024
    if json {
      struct Report: Codable {
        var rows: [Row]
        var peakRSSMiB: Double
      }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      FileHandle.standardOutput.write(
        try encoder.encode(Report(rows: rows, peakRSSMiB: rssMiB)) + Data("\n".utf8))
      return
    }
    print("smptop bench: \(rounds) rounds each, µs (median / p90 / p99), QEMU TCG")
    for r in rows {
      print("")
      print("-smp \(r.smp): model = \(r.bytesPerSnapshot) bytes")
      print("  live snapshot (shared RAM)            \(r.liveMicroseconds.text)   pause 0")
      if let b = r.backtraceMicroseconds {
        print("  + every thread's backtrace (\(r.backtraceThreads ?? 0) thr)  \(b.text)   pause 0")
      }
      if let cold = r.locatedColdMicroseconds, let warm = r.locatedWarmMicroseconds {
        print(
          "  + source lines, cached                \(warm.text)   (first ask \(String(format: "%.0f", cold)) µs)"
        )
      }
      print("  stopped snapshot (gdbstub), total     \(r.stoppedMicroseconds.text)")
      print("    guest pause (stop → resume)         \(r.pauseMicroseconds.text)")
      print("  stopped snapshot of a paused VM       \(r.stoppedPausedMicroseconds.text)")
      if let g = r.gdbMicroseconds {
        let ratio = g.median / max(r.stoppedPausedMicroseconds.median, 0.001)
        print("  gdb Python API, same work            \(g.text)   (\(String(format: "%.1f", ratio))x smptop)")
      }
      for (pane, us) in (r.renderMicroseconds ?? [:]).sorted(by: { $0.key < $1.key }) {
        print("  render 200x50, 64 lcpus + 256 locks, \(pane) pane: \(String(format: "%.0f", us)) µs/frame")
      }
    }
    print("")
    print(String(format: "peak resident memory: %.1f MiB", rssMiB))
  }

  private func measure(smp n: Int, elf: String) async throws -> Row {
    var config = QEMUConfiguration()
    config.smp = n
    config.kernel = elf
    let qemu: QEMUInstance
    do { qemu = try QEMUInstance.launch(config) } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .qemu)
    }
    defer { qemu.shutdown() }
    let target: Target
    do { target = try await Target.open(TargetOptions(qemu)) } catch { throw CLIError(error) }

    // Wait for the guest to publish every lcpu.
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
      if let s = try? target.liveSnapshot(), s.guest?.isRunning == true { break }
      try await Task.sleep(for: .milliseconds(20))
    }
    do {
      // Live: the engine's own cost per snapshot (warm).
      var live: [Double] = []
      for _ in 0..<rounds {
        let s = try target.liveSnapshot()
        live.append(Double(s.costNanoseconds) / 1e3)
      }
      // Every thread's backtrace on top of a live snapshot (frame walks only; source lines
      // are cached lookups, measured apart: cold = first ask of the symbolizer, warm = cached).
      var backtraces: [Double] = []
      var threadCount = 0
      for _ in 0..<rounds {
        var s = try target.liveSnapshot()
        let start = monotonicNanoseconds()
        target.addBacktraces(to: &s, locate: false)
        backtraces.append(Double(monotonicNanoseconds() - start) / 1e3)
        threadCount = s.threads.count
      }
      var locateCold: Double?
      var locateWarm: [Double] = []
      if (try? target.sourceLocator()) != nil {
        for round in 0..<min(rounds, 50) {
          var s = try target.liveSnapshot()
          let start = monotonicNanoseconds()
          target.addBacktraces(to: &s, locate: true)
          let us = Double(monotonicNanoseconds() - start) / 1e3
          if round == 0 { locateCold = us } else { locateWarm.append(us) }
        }
      }
      // Stopped, VM running: stop, read registers + model in one burst, resume.
      var stopped: [Double] = []
      var pause: [Double] = []
      for _ in 0..<rounds {
        let s = try await target.stoppedSnapshot()
        stopped.append(Double(s.costNanoseconds) / 1e3)
        pause.append(Double(s.pauseNanoseconds) / 1e3)
      }
      // Stopped, VM paused: exactly the work gdb does below.
      try await target.pause()
      var pausedWork: [Double] = []
      for _ in 0..<rounds {
        let s = try await target.stoppedSnapshot()
        pausedWork.append(Double(s.costNanoseconds) / 1e3)
      }
      let ranges = target.modelRanges
      let bytes = ranges.reduce(0) { $0 + $1.count }
      var renderTimes: [String: Double]?
      if render {
        try await target.resume()
        let a = try target.liveSnapshot()
        try await Task.sleep(for: .milliseconds(500))
        let b = try target.liveSnapshot()
        try await target.pause()
        renderTimes = Self.renderBenchmark(a, b, symbolize: Target.symbolizer(target.symbols))
      }
      await target.close()  // leaves the VM paused: gdb gets a stopped VM

      var gdbStats: Stats?
      var gdbRegisters: Int?
      if !noGDB, let socket = qemu.gdbSocketPath {
        let result = try runGDBBaseline(socket: socket, ranges: ranges)
        gdbStats = Stats(result.samples)
        gdbRegisters = result.registers
      }
      return Row(
        smp: n, liveMicroseconds: Stats(live), stoppedMicroseconds: Stats(stopped),
        pauseMicroseconds: Stats(pause),
        stoppedPausedMicroseconds: Stats(pausedWork), gdbMicroseconds: gdbStats, gdbRegisters: gdbRegisters,
        bytesPerSnapshot: bytes, renderMicroseconds: renderTimes, backtraceMicroseconds: Stats(backtraces),
        backtraceThreads: threadCount, locatedColdMicroseconds: locateCold,
        locatedWarmMicroseconds: locateWarm.isEmpty ? nil : Stats(locateWarm))
    } catch let error as TargetError {
      await target.close()
      throw CLIError(error)
    }
  }

  /// Renders the lcpus and locks panes of two real snapshots widened to 64 lcpus and 256 locks
  /// (the guest's own records, repeated with distinct indices, names and addresses).
  static func renderBenchmark(_ a: Snapshot, _ b: Snapshot, symbolize: @escaping Symbolizer) -> [String:
    Double]
  {
    func widen(_ s: Snapshot) -> Snapshot {
      var w = s
      guard !s.lcpus.isEmpty else { return w }
      w.lcpus = (0..<64).map { i in
        var r = s.lcpus[i % s.lcpus.count]
        r.index = UInt32(i)
        r.apicID = UInt32(i)
        return r
      }
      if !s.locks.isEmpty {
        w.locks = (0..<256).map { i in
          var l = s.locks[i % s.locks.count]
          l.name = "\(l.name).\(i)"
          l.address &+= UInt64(i) << 32
          return l
        }
      }
      return w
    }
    let (old, new) = (widen(a), widen(b))
    let data = DashboardData(snapshot: new, rates: SnapshotRates(from: old, to: new), generation: 1)
    var result: [String: Double] = [:]
    for pane in [Pane.lcpus, .locks] {
      var state = DashboardState()
      state.pane = pane
      result["\(pane)"] = benchmarkRender(state: state, data: data, symbolize: symbolize).microsecondsPerFrame
    }
    return result
  }

  /// Runs gdb with the baseline script and returns its per-round microseconds.
  private func runGDBBaseline(socket: String, ranges: [MemoryRange]) throws -> (
    samples: [Double], registers: Int
  ) {
    let root = try GuestKernel.sourceRoot()
    let script = root + "/Resources/bench/gdb_baseline.py"
    var env = ProcessInfo.processInfo.environment
    env["SMPTOP_GDB"] = socket
    env["SMPTOP_RANGES"] = "[" + ranges.map { "[\($0.address),\($0.count)]" }.joined(separator: ",") + "]"
    env["SMPTOP_ROUNDS"] = String(rounds)
    let run: (status: Int32, output: String)
    do {
      run = try runCommand(
        ["gdb", "-nx", "-batch", "-ex", "source \(script)"], environment: env, timeout: .seconds(600))
    } catch {
      throw CLIError("cannot run gdb for the baseline (install it, or pass --no-gdb): \(error)", code: .usage)
    }
    struct Result: Decodable {
      var samples_us: [Double]
      var registers: Int
    }
    let line = run.output.split(separator: "\n").last { $0.hasPrefix("{") }
    guard let line, let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8)) else {
      throw CLIError(
        "the gdb baseline printed no result (gdb exit \(run.status)): \(run.output.suffix(300))", code: .usage
      )
    }
    return (result.samples_us, result.registers)
  }
}
