import ArgumentParser
import Inspector

/// `smptop attach`: inspect a QEMU someone else started.
struct AttachCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "attach",
    abstract: "Attach to a running QEMU through its gdbstub, QMP socket and shared RAM file.",
    discussion: """
      Connecting to QEMU's gdbstub stops the VM, so with --memory-file smptop reads live from
      shared RAM and touches the gdbstub only for registers and stepping; it leaves the VM
      running or paused as you left it when it exits.
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "Refresh interval in seconds.")
  var interval: Double = 1

  @Option(help: "Stop after this many refreshes (batch output).")
  var iterations: Int?

  @Flag(help: "Print JSON snapshots (batch output).")
  var json = false

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    do {
      try await Watch.loop(t, interval: interval, iterations: iterations, json: json)
    } catch {
      await t.close()
      throw error
    }
    await t.close()
  }
}
