import ArgumentParser
import Dashboard
import Foundation
import GDBRemote
import Inspector
import QEMULaunch

/// `smptop bench`: snapshot cost per source against its floor, guest pause, gdb doing the same
/// work, and (with `--observer`) what observing costs the guest's workload.
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract:
      "Measure snapshot latency per source, guest pause, gdb's cost for the same work, and the observer effect.",
    discussion: """
      Boots the bundled guest for each --smp value and measures, in one run:

      - live: a snapshot of the whole model from the shared RAM file (zero pause), beside the \
      floor: a raw copy of the same byte ranges from the same mapping.

      - stopped, registers only (the default with a RAM file): the gdbstub stops the VM, every \
      vCPU's registers are read in one pipelined write that also resumes it, and the model is \
      read from shared RAM while the VM is stopped. Pause = stop reply to resume, split into \
      stopping the vCPUs, reading the model and reading the registers.

      - stopped through gdbstub memory (targets without a RAM file): registers and the model \
      in one pipelined burst.

      - register reads: the choices QEMU 7.2's stub offers (g or p, pipelined or not, all \
      vCPUs or only those the ABI says are busy), at a paused VM, with the raw pipelined \
      packets as the floor of the stopped path.

      - gdb: gdb 13's Python API reading the same registers and memory over the same gdbstub \
      at a stopped VM (Resources/bench/gdb_baseline.py), against smptop's stopped snapshots of \
      a paused VM.

      With --observer it instead boots one guest and measures its workload throughput (the \
      guest's own ops counters) in interleaved windows: no observer, live sampling at 10 and \
      100 Hz, stopped sampling at 1 and 10 Hz, and the dashboard's refresh at its default rate \
      (headless). Slowdown is relative to the no-observer window of the same round. --modes \
      picks some of them (the no-observer windows always run).

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

  @Option(help: "Guest workload scenario (the guest's workload= option), e.g. scale.")
  var workload: String?

  @Option(help: "More words for the guest's command line (e.g. \"prof_hz=1000\").")
  var append: String?

  @Flag(help: "Measure the observer effect on the guest's workload instead (first --smp value).")
  var observer = false

  @Option(help: "Observer: windows per mode.")
  var windows = 3

  @Option(help: "Observer: seconds per window.")
  var seconds = 2.0

  @Option(
    help: ArgumentHelp(
      "Observer: run the guest under QEMU's -icount shift=N and measure ops per guest second.",
      discussion:
        "Guest time then advances with the instructions executed, so the host's load drops out: what is left is what the guest executes for its observer (trace points, for one). Host-side readers cost the guest nothing in this clock."
    ))
  var icount: Int?

  @Flag(help: "Observer: also windows with every trace class on, drained at 10 Hz (`trace` mode).")
  var trace = false

  @Option(
    parsing: .upToNextOption,
    help: ArgumentHelp(
      "Observer: measure only these modes (none, live, stopped, dashboard, trace; default: all).",
      discussion:
        "The no-observer windows (none) are always measured: every slowdown is relative to them. `--modes none` alone measures the guest's own throughput, e.g. to compare guest builds with --kernel."
    ))
  var modes: [String] = []

  @Option(
    help: ArgumentHelp(
      "Boot this guest ELF instead of building the bundled one.",
      discussion:
        "For comparing guest builds, e.g. the guest without trace points (built with -Xswiftc -DSMPTOP_NO_TRACE; README, \"When\")."
    ))
  var kernel: String?

  @Option(
    help: ArgumentHelp(
      "Measure only the live path, against this shared RAM file (no boot).",
      discussion:
        "The file behind a running QEMU's memory-backend-file,share=on (or a copy of one); --kernel names the ELF QEMU runs. Prints the live snapshot, its floor and the engine's reads."
    ))
  var memoryFile: String?

  @Option(help: "With --memory-file: the machine type (pc or q35).")
  var machine = "pc"

  @Option(
    help: ArgumentHelp(
      "How TCG runs the booted guest's vCPUs: multi (a host thread each) or single (one thread, in turn); QEMU's default if not given.",
      discussion:
        "Stopping a VM waits for every vCPU thread to leave its translated code; with many vCPUs on few host cores, single stops far sooner."
    ))
  var tcgThreads: TCGThreads?

  func validate() throws {
    if memoryFile != nil && kernel == nil {
      throw ValidationError("--memory-file needs --kernel: the ELF QEMU runs (where smptop_root is)")
    }
    guard smp.allSatisfy({ (1...64).contains($0) }) else {
      throw ValidationError("--smp values must be 1...64")
    }
    guard rounds >= 5 else { throw ValidationError("--rounds must be at least 5") }
    guard windows >= 1 else { throw ValidationError("--windows must be at least 1") }
    guard seconds >= 0.2 && seconds <= 600 else { throw ValidationError("--seconds must be 0.2...600") }
    for mode in modes where !Self.observerModes.contains(mode) {
      throw ValidationError(
        "--modes: unknown mode \(mode) (one of \(Self.observerModes.joined(separator: ", ")))")
    }
    if modes.contains("trace") && !trace {
      throw ValidationError("--modes trace needs --trace")
    }
    if let kernel {
      guard FileManager.default.isReadableFile(atPath: kernel) else {
        throw ValidationError("--kernel \(kernel): no readable file there")
      }
    }
    if let workload {
      guard !workload.isEmpty, workload.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
        throw ValidationError("--workload must be a scenario name (letters, digits, -)")
      }
    }
  }

  /// Median, 90th and 99th percentile and minimum of a set of samples.
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

    /// Median, p90 and p99, aligned.
    var text: String { String(format: "%9.1f %9.1f %9.1f", median, p90, p99) }
  }

  /// One stopped-snapshot path measured with the VM running: total, pause and its parts.
  struct StoppedStats: Codable {
    /// Whole call, µs.
    var total: Stats
    /// Stop reply to resume, µs.
    var pause: Stats
    /// Interrupt to stop reply (stopping every vCPU), µs.
    var stop: Stats
    /// Reading the model while stopped, µs.
    var model: Stats
    /// Reading the registers and resuming, µs.
    var registers: Stats
  }

  /// One register-read choice at a paused VM.
  struct Choice: Codable {
    /// What was sent.
    var name: String
    /// Packets per round.
    var packets: Int
    /// µs median.
    var median: Double
    /// µs p90.
    var p90: Double
  }

  /// Everything measured at one lcpu count.
  struct Row: Codable {
    var smp: Int
    var bytesPerSnapshot: Int
    var locks: Int
    var busyLCPUs: Int
    var liveMicroseconds: Stats
    var liveFloorMicroseconds: Stats
    var liveFloorRatio: Double
    /// Of the live snapshot, the engine's read of guest memory (sequence words, the ranges,
    /// the words again: the window the records come from), µs; the rest is decoding.
    var liveReadMicroseconds: Stats
    /// That read against the floor.
    var liveReadFloorRatio: Double
    /// The default stopped snapshot (registers only): total, pause, and at a paused VM, µs.
    var stoppedMicroseconds: Stats
    var pauseMicroseconds: Stats
    var stoppedPausedMicroseconds: Stats
    var stoppedRegistersOnly: StoppedStats
    var stoppedGDBMemory: StoppedStats
    var pausedRegistersOnlyMicroseconds: Stats
    var pausedGDBMemoryMicroseconds: Stats
    var registersFloorMicroseconds: Stats
    var registersFloorRatio: Double
    var registerChoices: [Choice]
    var gdbMicroseconds: Stats?
    var gdbRegisters: Int?
    var gdbRatioRegistersOnly: Double?
    var gdbRatioGDBMemory: Double?
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
    if let memoryFile, let kernel {
      try await measureLive(memoryFile: memoryFile, kernel: kernel)
      return
    }
    let elf: String
    if let kernel {
      elf = kernel
    } else {
      do { elf = try GuestKernel.build() } catch let error as QEMULaunchError {
        throw CLIError(error.message, code: .build)
      }
    }
    if observer {
      let report = try await observe(smp: smp.first ?? 4, elf: elf)
      if json {
        try printJSON(report)
      } else {
        report.printText()
      }
      return
    }
    var rows: [Row] = []
    for n in smp {
      rows.append(try await measure(smp: n, elf: elf))
    }
    if json {
      /// The whole run.
      struct Report: Codable {
        var rows: [Row]
        var peakRSSMiB: Double
      }
      try printJSON(Report(rows: rows, peakRSSMiB: peakRSSMiB()))
      return
    }
    print("smptop bench: \(rounds) rounds each, µs (median / p90 / p99), QEMU TCG")
    for r in rows {
      print("")
      print("-smp \(r.smp): model = \(r.bytesPerSnapshot) bytes, \(r.locks) locks, \(r.busyLCPUs) lcpus busy")
      printLive(
        snapshot: r.liveMicroseconds, floor: r.liveFloorMicroseconds, read: r.liveReadMicroseconds,
        floorRatio: r.liveFloorRatio, readRatio: r.liveReadFloorRatio)
      if let b = r.backtraceMicroseconds {
        print("  + every thread's backtrace (\(r.backtraceThreads ?? 0) thr)  \(b.text)   pause 0")
      }
      if let cold = r.locatedColdMicroseconds, let warm = r.locatedWarmMicroseconds {
        print(
          "  + source lines, cached                \(warm.text)   (first ask \(String(format: "%.0f", cold)) µs)"
        )
      }
      for (name, s) in [
        ("stopped, registers only", r.stoppedRegistersOnly), ("stopped, gdbstub memory", r.stoppedGDBMemory),
      ] {
        print("  \(name), total   \(s.total.text)")
        print("    guest pause (stop reply → resume)     \(s.pause.text)")
        print("      stopping the vCPUs (before pause)   \(s.stop.text)")
        print("      model read while stopped          \(s.model.text)")
        print("      registers + resume                \(s.registers.text)")
      }
      print("  stopped snapshot of a paused VM, registers only  \(r.pausedRegistersOnlyMicroseconds.text)")
      print("  stopped snapshot of a paused VM, gdbstub memory  \(r.pausedGDBMemoryMicroseconds.text)")
      print(
        "    floor: raw pipelined Hg+g packets alone          \(r.registersFloorMicroseconds.text)   (registers only = \(String(format: "%.1f", r.registersFloorRatio))x floor)"
      )
      print("  register reads at a paused VM (median / p90 µs, packets):")
      for c in r.registerChoices {
        print(
          "    \(c.name.padding(toLength: 52, withPad: " ", startingAt: 0)) \(String(format: "%8.1f %8.1f", c.median, c.p90))  \(c.packets)"
        )
      }
      if let g = r.gdbMicroseconds {
        print(
          "  gdb Python API, same work              \(g.text)   (\(String(format: "%.1f", r.gdbRatioRegistersOnly ?? 0))x registers only, \(String(format: "%.1f", r.gdbRatioGDBMemory ?? 0))x gdbstub memory)"
        )
      }
      for (pane, us) in (r.renderMicroseconds ?? [:]).sorted(by: { $0.key < $1.key }) {
        print(
          "  render 200x50, 64 lcpus + \(max(256, r.locks)) locks, \(pane) pane: \(String(format: "%.0f", us)) µs/frame"
        )
      }
    }
    print("")
    print(String(format: "peak resident memory: %.1f MiB", peakRSSMiB()))
  }

  /// smptop's peak resident memory so far.
  private func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
  }

  /// Writes `value` as pretty JSON on stdout.
  private func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
  }

  /// Boots a guest with `n` lcpus and opens it, waiting until it publishes every lcpu.
  private func boot(smp n: Int, elf: String) async throws -> (QEMUInstance, Target) {
    var config = QEMUConfiguration()
    config.smp = n
    config.kernel = elf
    config.tcgThreads = tcgThreads
    if let append { config.append = [config.append, append].compactMap { $0 }.joined(separator: " ") }
    if let workload {
      config.append = [config.append, "workload=\(workload)"].compactMap { $0 }.joined(separator: " ")
    }
    let qemu: QEMUInstance
    do { qemu = try QEMUInstance.launch(config) } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .qemu)
    }
    let target: Target
    do { target = try await Target.open(TargetOptions(qemu)) } catch {
      qemu.shutdown()
      throw CLIError(error)
    }
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
      if let s = try? target.liveSnapshot(), s.guest?.isRunning == true, s.workload != nil { break }
      try await Task.sleep(for: .milliseconds(20))
    }
    // A scenario may go on creating locks after boot: wait until their number holds still.
    var locks = -1
    while ContinuousClock.now < deadline {
      let now = (try? target.liveSnapshot())?.locks.count ?? 0
      if now == locks { break }
      locks = now
      try await Task.sleep(for: .milliseconds(500))
    }
    return (qemu, target)
  }

  private func measure(smp n: Int, elf: String) async throws -> Row {
    let (qemu, target) = try await boot(smp: n, elf: elf)
    defer { qemu.shutdown() }
    do {
      // Live: the engine's own cost per snapshot (warm), and the raw copy of the same ranges.
      let liveRun = try liveStats(target: target)
      let snap = try target.liveSnapshot()
      // Every thread's backtrace on top of a live snapshot (frame walks only; source lines
      // are cached lookups, measured apart: cold = first ask of the symbolizer, warm = cached).
      var backtraces: [Double] = []
      var threadCount = 0
      for _ in 0..<rounds {
        var s = try target.liveSnapshot()
        let start = monotonicNanoseconds()
        await target.addBacktraces(to: &s, locate: false)
        backtraces.append(Double(monotonicNanoseconds() - start) / 1e3)
        threadCount = s.threads.count
      }
      var locateCold: Double?
      var locateWarm: [Double] = []
      if (try? target.sourceLocator()) != nil {
        for round in 0..<min(rounds, 50) {
          var s = try target.liveSnapshot()
          let start = monotonicNanoseconds()
          await target.addBacktraces(to: &s, locate: true)
          let us = Double(monotonicNanoseconds() - start) / 1e3
          if round == 0 { locateCold = us } else { locateWarm.append(us) }
        }
      }
      // Stopped, VM running, both model sources.
      let registersOnly = try await stoppedRounds(target, model: .sharedRAM)
      let gdbMemory = try await stoppedRounds(target, model: .gdbstub)
      // Stopped, VM paused: exactly the work gdb does below.
      try await target.pause()
      var pausedShared: [Double] = []
      var pausedGDB: [Double] = []
      var pausedSnapshot = try await target.stoppedSnapshot(model: .sharedRAM)
      for _ in 0..<rounds {
        pausedSnapshot = try await target.stoppedSnapshot(model: .sharedRAM)
        pausedShared.append(Double(pausedSnapshot.costNanoseconds) / 1e3)
        let s = try await target.stoppedSnapshot(model: .gdbstub)
        pausedGDB.append(Double(s.costNanoseconds) / 1e3)
      }
      let busy = Set(pausedSnapshot.lcpus.filter { $0.state != .idle }.map { Int($0.apicID) })
      var choices: [Choice] = []
      var registersFloor = Stats([])
      if let gdb = target.gdb {
        let threads = target.vcpuThreads
        let busyThreads = threads.filter { busy.contains($0.vcpuIndex ?? -1) }
        do {
          let measured = try await gdb.perform { connection throws(GDBRemoteError) in
            try GDBRemoteBenchmark.registerChoices(
              on: connection, threads: threads, busy: busyThreads, iterations: rounds)
          }
          choices = measured.map {
            Choice(
              name: $0.measurement.name, packets: $0.packets, median: microseconds($0.measurement.median),
              p90: microseconds($0.measurement.p90))
          }
          // The first choice is the raw pipelined packets: the floor of the stopped path.
          if let first = measured.first {
            registersFloor = Stats(first.samples.map(microseconds))
          }
        } catch {
          throw CLIError("register benchmark failed: \(error)", code: .usage)
        }
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
      let pausedSharedStats = Stats(pausedShared)
      let pausedGDBStats = Stats(pausedGDB)
      return Row(
        smp: n, bytesPerSnapshot: bytes, locks: snap.locks.count, busyLCPUs: busy.count,
        liveMicroseconds: liveRun.snapshot, liveFloorMicroseconds: liveRun.floor,
        liveFloorRatio: liveRun.snapshot.median / max(liveRun.floor.median, 0.001),
        liveReadMicroseconds: liveRun.read,
        liveReadFloorRatio: liveRun.read.median / max(liveRun.floor.median, 0.001),
        stoppedMicroseconds: registersOnly.total, pauseMicroseconds: registersOnly.pause,
        stoppedPausedMicroseconds: pausedSharedStats,
        stoppedRegistersOnly: registersOnly, stoppedGDBMemory: gdbMemory,
        pausedRegistersOnlyMicroseconds: pausedSharedStats, pausedGDBMemoryMicroseconds: pausedGDBStats,
        registersFloorMicroseconds: registersFloor,
        registersFloorRatio: pausedSharedStats.median / max(registersFloor.median, 0.001),
        registerChoices: choices, gdbMicroseconds: gdbStats, gdbRegisters: gdbRegisters,
        gdbRatioRegistersOnly: gdbStats.map { $0.median / max(pausedSharedStats.median, 0.001) },
        gdbRatioGDBMemory: gdbStats.map { $0.median / max(pausedGDBStats.median, 0.001) },
        renderMicroseconds: renderTimes, backtraceMicroseconds: Stats(backtraces),
        backtraceThreads: threadCount, locatedColdMicroseconds: locateCold,
        locatedWarmMicroseconds: locateWarm.isEmpty ? nil : Stats(locateWarm))
    } catch let error as TargetError {
      await target.close()
      throw CLIError(error)
    }
  }

  /// `rounds` stopped snapshots of the running VM through `model`, with the pause's parts.
  private func stoppedRounds(_ target: Target, model: Target.StoppedModelSource) async throws(TargetError)
    -> StoppedStats
  {
    var total: [Double] = []
    var pause: [Double] = []
    var stop: [Double] = []
    var read: [Double] = []
    var registers: [Double] = []
    _ = try await target.stoppedSnapshot(model: model)  // connects on first use
    for _ in 0..<rounds {
      let s = try await target.stoppedSnapshot(model: model)
      total.append(Double(s.costNanoseconds) / 1e3)
      pause.append(Double(s.pauseNanoseconds) / 1e3)
      if let t = target.lastStopTiming {
        stop.append(Double(t.stop) / 1e3)
        read.append(Double(t.model) / 1e3)
        registers.append(Double(t.registers) / 1e3)
      }
      // Let the guest run between snapshots, as a sampler would.
      try? await Task.sleep(for: .milliseconds(2))
    }
    return StoppedStats(
      total: Stats(total), pause: Stats(pause), stop: Stats(stop), model: Stats(read),
      registers: Stats(registers))
  }

  /// The raw copy of the model's byte ranges from the mapping, per round, µs.
  /// The live path only, against a RAM file of a guest started elsewhere (or a copy of one).
  private func measureLive(memoryFile: String, kernel: String) async throws {
    var options = TargetOptions()
    options.memoryFile = memoryFile
    options.kernel = kernel
    options.machine = machine
    let target: Target
    do { target = try await Target.open(options) } catch { throw CLIError(error) }
    let live = try liveStats(target: target)
    let report = LiveReport(
      memoryFile: memoryFile, bytesPerSnapshot: target.modelRanges.map(\.count).reduce(0, +),
      lcpus: live.lcpus, locks: live.locks, threads: live.threads, liveMicroseconds: live.snapshot,
      liveFloorMicroseconds: live.floor, liveFloorRatio: live.snapshot.median / max(live.floor.median, 0.001),
      liveReadMicroseconds: live.read, liveReadFloorRatio: live.read.median / max(live.floor.median, 0.001),
      peakRSSMiB: peakRSSMiB())
    if json {
      try printJSON(report)
      return
    }
    print("smptop bench: live path, \(rounds) rounds, µs (median / p90 / p99), \(memoryFile)")
    print(
      "model = \(report.bytesPerSnapshot) bytes, \(report.lcpus) lcpus, \(report.locks) locks, \(report.threads) threads"
    )
    printLive(
      snapshot: report.liveMicroseconds, floor: report.liveFloorMicroseconds,
      read: report.liveReadMicroseconds,
      floorRatio: report.liveFloorRatio, readRatio: report.liveReadFloorRatio)
    print(String(format: "peak resident memory: %.1f MiB", peakRSSMiB()))
  }

  /// Prints the live snapshot, its floor and its read of guest memory.
  private func printLive(snapshot: Stats, floor: Stats, read: Stats, floorRatio: Double, readRatio: Double) {
    print("  live snapshot (shared RAM)              \(snapshot.text)   pause 0")
    print(
      "    floor: raw copy of the same ranges    \(floor.text)   (live = \(String(format: "%.1f", floorRatio))x floor)"
    )
    print(
      "    of which the read of guest memory     \(read.text)   (= \(String(format: "%.1f", readRatio))x floor; the rest decodes)"
    )
  }

  /// What `--memory-file` measures.
  struct LiveReport: Codable {
    var memoryFile: String
    var bytesPerSnapshot: Int
    var lcpus: Int
    var locks: Int
    var threads: Int
    var liveMicroseconds: Stats
    var liveFloorMicroseconds: Stats
    var liveFloorRatio: Double
    var liveReadMicroseconds: Stats
    var liveReadFloorRatio: Double
    var peakRSSMiB: Double
  }

  /// The live snapshot's cost (warm), the part of it that reads guest memory, and the floor.
  private func liveStats(target: Target) throws -> (
    snapshot: Stats, read: Stats, floor: Stats, lcpus: Int, locks: Int, threads: Int
  ) {
    var live: [Double] = []
    var read: [Double] = []
    var snap = try target.liveSnapshot()
    for _ in 0..<rounds {
      snap = try target.liveSnapshot()
      live.append(Double(snap.costNanoseconds) / 1e3)
      read.append(Double(snap.readNanoseconds) / 1e3)
    }
    let floor = liveFloor(target: target, rounds: rounds)
    return (Stats(live), Stats(read), floor, snap.lcpus.count, snap.locks.count, snap.threads.count)
  }

  private func liveFloor(target: Target, rounds: Int) -> Stats {
    guard let shared = target.sharedMemory else { return Stats([]) }
    // Every range lands at its own place, packed, as a snapshot's bytes must.
    let ranges = target.modelRanges
    let size = ranges.map(\.count).reduce(0, +)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 64)
    defer { buffer.deallocate() }
    var samples: [Double] = []
    for _ in 0..<rounds {
      let start = monotonicNanoseconds()
      var at = 0
      for r in ranges {
        _ = shared.copy(r.address, count: r.count, into: buffer + at)
        at += r.count
      }
      samples.append(Double(monotonicNanoseconds() - start) / 1e3)
    }
    return Stats(samples)
  }

  private func microseconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) * 1e6 + Double(atto) / 1e12
  }

  /// Renders the lcpus and locks panes of two real snapshots widened to 64 lcpus and at least
  /// 256 locks (the guest's own records, repeated with distinct indices, names and addresses).
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
        w.locks = (0..<max(256, s.locks.count)).map { i in
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
  private func runGDBBaseline(socket: String, ranges: [Inspector.MemoryRange]) throws -> (
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

extension TCGThreads: ExpressibleByArgument {}
