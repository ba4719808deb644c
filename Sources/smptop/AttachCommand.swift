import ArgumentParser
import Inspector

/// `smptop attach`: inspect a QEMU someone else started.
struct AttachCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "attach",
    abstract: "Attach to a running QEMU through its gdbstub, QMP socket and shared RAM file.",
    discussion: """
      Connecting to QEMU's gdbstub stops the VM, so with --memory-file smptop reads live from \
      shared RAM and touches the gdbstub only for registers and stepping; it leaves the VM \
      running or paused as you left it when it exits.
      """)

  @OptionGroup var target: TargetArguments

  @OptionGroup var display: DisplayArguments

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    do {
      try await display.show(t, machine: target.machine)
    } catch {
      await t.close()
      throw error
    }
    await t.close()
  }
}
