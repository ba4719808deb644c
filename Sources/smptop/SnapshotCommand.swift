import ArgumentParser
import Foundation
import Inspector

/// `smptop snapshot`: one snapshot of an attached QEMU, as a table or JSON.
struct SnapshotCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot",
    abstract: "Take one snapshot and print it as a table or as JSON.",
    discussion: """
      With --memory-file the snapshot is read live from the shared RAM file (zero pause, the \
      gdbstub is not touched). Otherwise, or with --stopped, the VM is stopped through the \
      gdbstub for the read (adding every vCPU's registers) and resumed if it was running.

      The JSON schema is documented in the README.
      """)

  @OptionGroup var target: TargetArguments

  @Flag(help: "Print JSON instead of a table.")
  var json = false

  @Flag(help: "Stop the VM through the gdbstub and include every vCPU's registers.")
  var stopped = false

  @Flag(help: "Include QMP's view of every virtio queue.")
  var virtio = false

  @Flag(help: "Leave out every thread's and vCPU's backtrace and the source locations.")
  var noBacktraces = false

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    var snap: Snapshot
    do {
      snap = try await Self.snapshotWithBacktraces(
        t, stopped: stopped, virtio: virtio ? true : nil, backtraces: !noBacktraces)
    } catch {
      await t.close()
      throw CLIError(error)
    }
    await t.close()
    try Output.print(snap, json: json, symbolize: t.symbolize)
  }
}

extension SnapshotCommand {
  /// A snapshot with every thread's and vCPU's backtrace. A stopped one keeps the VM stopped
  /// until the stacks are read too (else threads run between the record and the stack reads,
  /// and their frames come out marked untrusted), then resumes it if it was running.
  static func snapshotWithBacktraces(_ t: Target, stopped: Bool, virtio: Bool?, backtraces: Bool)
    async throws(TargetError) -> Snapshot
  {
    guard backtraces else { return try await t.snapshot(preferStopped: stopped, virtio: virtio) }
    let resume = stopped && t.wantsRunning
    if resume { try await t.pause() }
    var snap: Snapshot
    do { snap = try await t.snapshot(preferStopped: stopped, virtio: virtio) } catch {
      if resume { try? await t.resume() }
      throw error
    }
    await t.addBacktraces(to: &snap)
    if resume { try await t.resume() }
    return snap
  }
}

/// Writing snapshots to stdout.
enum Output {
  /// Prints a snapshot as a table or pretty JSON.
  static func print(
    _ snap: Snapshot, rates: SnapshotRates? = nil, json: Bool, symbolize: (UInt64) -> String?
  ) throws {
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      let data = try encoder.encode(snap)
      FileHandle.standardOutput.write(data + Data("\n".utf8))
    } else {
      Swift.print(SnapshotText.render(snap, rates: rates, symbolize: symbolize))
    }
  }
}
