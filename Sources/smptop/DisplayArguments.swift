import ArgumentParser
import Dashboard
import Foundation
import Inspector
import Terminal

/// How attach and run show the target: the dashboard, or batch text like `top -b`.
struct DisplayArguments: ParsableArguments {
  @Option(help: "Refresh interval in seconds.")
  var interval: Double = 1

  @Flag(help: "Print text snapshots instead of opening the dashboard (also when stdout is not a terminal).")
  var batch = false

  @Option(help: "Stop after this many refreshes (batch) or frames (dashboard).")
  var iterations: Int?

  @Flag(help: "Print JSON snapshots (batch output).")
  var json = false

  @Flag(help: "Monochrome dashboard (the NO_COLOR environment variable does the same).")
  var noColor = false

  func validate() throws {
    guard interval >= 0.05 else { throw ValidationError("--interval must be at least 0.05 s") }
  }

  /// Opens the dashboard when stdout is a terminal, else (or with --batch/--json) prints text.
  func show(_ target: Target, machine: String) async throws {
    if !batch && !json && isatty(STDOUT_FILENO) == 1 {
      let info = TargetInfo(
        qemuVersion: target.qmp.map { "\($0.greeting.version)" }, machine: machine,
        name: target.options.kernel.map { URL(fileURLWithPath: $0).lastPathComponent })
      if try await DashboardSession.run(
        target: target, info: info, interval: interval, color: noColor ? .never : .auto, frames: iterations)
      {
        return
      }
    }
    try await Watch.loop(target, interval: interval, iterations: iterations, json: json)
  }
}
