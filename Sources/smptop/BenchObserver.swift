import Dashboard
import Foundation
import Inspector
import QEMULaunch

/// What observing costs the guest: its workload throughput under each sampling mode.
struct ObserverReport: Codable {
  /// One way of observing the guest.
  struct Mode: Codable, Sendable, Equatable {
    /// `none`, `live`, `stopped` or `dashboard`.
    var mode: String
    /// Samples per second (0 for none).
    var rateHz: Double
  }

  /// A slowdown in percent over the repeated windows.
  struct Spread: Codable {
    var median: Double
    var min: Double
    var max: Double
    /// One value per round, in round order.
    var samples: [Double]

    init(_ values: [Double]) {
      let s = values.sorted()
      median = s.isEmpty ? 0 : s[s.count / 2]
      min = s.first ?? 0
      max = s.last ?? 0
      samples = values
    }
  }

  /// One mode's result.
  struct Row: Codable {
    var mode: String
    var rateHz: Double
    /// Workload ops per second in each window (all lcpus).
    var opsPerSecond: [Double]
    /// Samples actually taken per second.
    var achievedHz: Double
    /// Percent of the same round's no-observer throughput lost; positive = slower.
    var slowdown: Spread
    /// Guest pause per stopped sample, µs median (0 for live modes).
    var pauseMedianMicroseconds: Double
  }

  var smp: Int
  var seconds: Double
  var windows: Int
  var workload: String?
  /// QEMU's `-icount shift` when the windows were measured in guest time (nil: host time).
  var icount: Int?
  /// The no-observer windows: their own spread, as percent off their median (the noise floor).
  var baselineNoise: Spread
  var rows: [Row]

  /// A table for people.
  func printText() {
    print(
      "smptop bench --observer: -smp \(smp), \(windows) rounds of \(String(format: "%.1f", seconds)) s windows per mode, interleaved"
        + (icount.map { ", -icount shift=\($0): ops per guest second" } ?? ", ops per host second")
    )
    print(
      "no-observer windows vary by \(String(format: "%.1f", baselineNoise.min))…\(String(format: "%.1f", baselineNoise.max)) % around their median (noise floor)"
    )
    print("mode        rate    ops/s (median)   slowdown % median [min … max]   samples/s   pause µs")
    for r in rows {
      let ops = r.opsPerSecond.sorted()
      let median = ops.isEmpty ? 0 : ops[ops.count / 2]
      print(
        r.mode.padding(toLength: 10, withPad: " ", startingAt: 0)
          + String(
            format: " %5.0f Hz  %14.0f   %7.2f [%7.2f … %7.2f]       %7.1f   %8.0f", r.rateHz, median,
            r.slowdown.median, r.slowdown.min, r.slowdown.max, r.achievedHz, r.pauseMedianMicroseconds))
    }
  }
}

extension BenchCommand {
  /// The observer modes' names, as `--modes` takes them.
  static let observerModes = ["none", "live", "stopped", "dashboard", "trace"]

  /// The dashboard's refresh rate when `smptop run` is given no `--interval` (1 s).
  static let dashboardDefaultHz = 1.0

  /// Boots one guest and measures its workload throughput per observer mode in interleaved windows.
  func observe(smp n: Int, elf: String) async throws -> ObserverReport {
    var config = QEMUConfiguration()
    config.smp = n
    config.kernel = elf
    let words = [append, workload.map { "workload=\($0)" }].compactMap { $0 }
    if !words.isEmpty { config.append = words.joined(separator: " ") }
    if let icount { config.extraArguments += ["-icount", "shift=\(icount),sleep=off"] }
    let qemu: QEMUInstance
    do { qemu = try QEMUInstance.launch(config) } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .qemu)
    }
    defer { qemu.shutdown() }
    let target: Target
    do { target = try await Target.open(TargetOptions(qemu)) } catch { throw CLIError(error) }
    do {
      let deadline = ContinuousClock.now + .seconds(60)
      while ContinuousClock.now < deadline {
        if let s = try? target.liveSnapshot(), s.guest?.isRunning == true, s.workload != nil { break }
        try await Task.sleep(for: .milliseconds(20))
      }
      guard try target.liveSnapshot().workload != nil else {
        throw CLIError("the guest publishes no workload record: nothing to measure", code: .usage)
      }
      // Connect the gdbstub now, so that no window pays for attaching.
      _ = try await target.stoppedSnapshot()
      // Let the workload settle after boot before the first window.
      try await Task.sleep(for: .seconds(1))

      var modes: [ObserverReport.Mode] = [
        .init(mode: "none", rateHz: 0), .init(mode: "live", rateHz: 10), .init(mode: "live", rateHz: 100),
        .init(mode: "stopped", rateHz: 1), .init(mode: "stopped", rateHz: 10),
        .init(mode: "dashboard", rateHz: Self.dashboardDefaultHz),
      ]
      // Tracing: the guest boots with every trace point compiled in but off (the `none` windows);
      // a `trace` window switches every class on and drains the rings as the dashboard does.
      if trace { modes.append(.init(mode: "trace", rateHz: 10)) }
      // `--modes` keeps the named ones, and always the baseline.
      if !self.modes.isEmpty {
        modes = modes.filter { $0.mode == "none" || self.modes.contains($0.mode) }
      }
      var ops: [[Double]] = Array(repeating: [], count: modes.count)
      var taken: [Int] = Array(repeating: 0, count: modes.count)
      var pauses: [[Double]] = Array(repeating: [], count: modes.count)
      let symbolize = Target.symbolizer(target.symbols)
      for round in 0..<windows {
        // Rotate the order each round so no mode always follows the same one.
        for k in 0..<modes.count {
          let i = (k + round) % modes.count
          let (rate, count, pause) = try await window(
            modes[i], target: target, symbolize: symbolize)
          ops[i].append(rate)
          taken[i] += count
          pauses[i] += pause
        }
      }
      guard let noneIndex = modes.firstIndex(where: { $0.mode == "none" }) else {
        throw CLIError("no baseline mode", code: .usage)
      }
      let baseline = ops[noneIndex]
      let baselineMedian = ObserverReport.Spread(baseline).median
      let noise = ObserverReport.Spread(baseline.map { 100 * ($0 / max(baselineMedian, 1) - 1) })
      let rows = modes.indices.map { i -> ObserverReport.Row in
        let slowdown = zip(ops[i], baseline).map { 100 * (1 - $0 / max($1, 1)) }
        let p = pauses[i].sorted()
        return ObserverReport.Row(
          mode: modes[i].mode, rateHz: modes[i].rateHz, opsPerSecond: ops[i],
          achievedHz: Double(taken[i]) / (seconds * Double(windows)),
          slowdown: ObserverReport.Spread(slowdown), pauseMedianMicroseconds: p.isEmpty ? 0 : p[p.count / 2])
      }
      await target.close()
      return ObserverReport(
        smp: n, seconds: seconds, windows: windows, workload: workload, icount: icount, baselineNoise: noise,
        rows: rows)
    } catch let error as TargetError {
      await target.close()
      throw CLIError(error)
    }
  }

  /// Total workload ops (all lcpus) and the guest's clock, from one live read.
  private func totalOps(_ target: Target) throws(TargetError) -> (ops: Double, clock: GuestClock) {
    let s = try target.liveSnapshot()
    return (Double(s.workload?.ops.reduce(0, &+) ?? 0), GuestClock(s))
  }

  /// One window: samples in `mode` for `seconds` and returns the guest's ops/s, the samples
  /// taken and the pause of each stopped sample (µs).
  private func window(
    _ mode: ObserverReport.Mode, target: Target, symbolize: @escaping Symbolizer
  ) async throws -> (Double, Int, [Double]) {
    let clock = ContinuousClock()
    let startOps = try totalOps(target)
    let start = clock.now
    let end = start + .nanoseconds(Int64(seconds * 1e9))
    var count = 0
    var pauses: [Double] = []
    var previous: Snapshot?
    var state = DashboardState()
    state.pane = .lcpus
    var drain: TraceDrain?
    var traced = 0
    var traceLost: UInt64 = 0
    if mode.mode == "trace" {
      guard let file = target.options.memoryFile, let root = target.rootAddress,
        let memory = target.sharedMemory
      else { throw CLIError("tracing needs the shared RAM file and the inspection ABI", code: .usage) }
      var d = TraceDrain(rootAddress: root)
      _ = d.drain(memory)
      drain = d
      do {
        try TraceControl.write(.all, memoryFile: file, machine: target.options.machine, rootAddress: root)
      } catch {
        throw CLIError(error.description, code: .memory)
      }
    }
    defer {
      if mode.mode == "trace", let file = target.options.memoryFile, let root = target.rootAddress {
        try? TraceControl.write([], memoryFile: file, machine: target.options.machine, rootAddress: root)
      }
    }
    if mode.rateHz <= 0 {
      try await Task.sleep(until: end, clock: clock)
    } else {
      let period = Duration.nanoseconds(Int64(1e9 / mode.rateHz))
      var next = start
      while next < end {
        switch mode.mode {
        case "live":
          _ = try target.liveSnapshot()
        case "trace":
          if var d = drain, let memory = target.sharedMemory {
            let batch = d.drain(memory)
            drain = d
            traced += batch.events.count
            traceLost &+= batch.totalLost
          }
        case "stopped":
          let s = try await target.stoppedSnapshot()
          pauses.append(Double(s.pauseNanoseconds) / 1e3)
        default:
          // The dashboard's refresh, headless: run state, snapshot, rates and a 200x50 frame.
          _ = await target.runState()
          let snap = try await target.snapshot()
          let rates = previous.flatMap { SnapshotRates(from: $0, to: snap) }
          let data = DashboardData(snapshot: snap, rates: rates, generation: UInt64(count + 1))
          _ = renderFrame(state: state, data: data, symbolize: symbolize, width: 200, height: 50)
          previous = snap
        }
        count += 1
        next += period
        if next < end { try await Task.sleep(until: next, clock: clock) }
      }
      if clock.now < end { try await Task.sleep(until: end, clock: clock) }
    }
    let endOps = try totalOps(target)
    let elapsed = clock.now - start
    var secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    if icount != nil {
      // Guest time: under -icount it advances with the instructions executed, whatever the host's load.
      guard endOps.clock.now > startOps.clock.now,
        let guest = endOps.clock.seconds(endOps.clock.now - startOps.clock.now)
      else { throw CLIError("the guest's clock did not advance during a window", code: .qemu) }
      secondsElapsed = guest
    }
    if mode.mode == "trace" {
      FileHandle.standardError.write(
        Data(
          "smptop: trace window: \(traced) events (\(Int(Double(traced) / max(secondsElapsed, 1e-9)))/s), lost \(traceLost)\n"
            .utf8))
    }
    return ((endOps.ops - startOps.ops) / max(secondsElapsed, 1e-9), count, pauses)
  }
}
