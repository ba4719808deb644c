import Foundation
import Inspector

/// Prints a snapshot with rates every `interval` seconds until Ctrl-C or the VM goes away
/// (attach and run fall back to this without a terminal, like `top -b`).
enum Watch {
  static func loop(_ target: Target, interval: Double, iterations: Int?, json: Bool) async throws {
    installInterruptHandler()
    var previous: Snapshot?
    var count = 0
    while iterations.map({ count < $0 }) ?? true {
      let snap: Snapshot
      do { snap = try await target.snapshot() } catch {
        throw CLIError(error)
      }
      let rates = previous.flatMap { SnapshotRates(from: $0, to: snap) }
      try Output.print(snap, rates: rates, json: json, symbolize: target.symbolize)
      if !json { print("") }
      previous = snap
      count += 1
      if iterations.map({ count >= $0 }) ?? false { break }
      guard await sleepUnlessInterrupted(interval) else { break }
      if let qmp = target.qmp, !qmp.isConnected {
        throw CLIError("QEMU went away (QMP connection closed)", code: .qemu)
      }
    }
  }
}
