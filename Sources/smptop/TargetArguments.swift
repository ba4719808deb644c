import ArgumentParser
import Inspector

/// Where to find the QEMU to inspect: shared by attach, snapshot, locks and step.
struct TargetArguments: ParsableArguments {
  @Option(help: "QEMU's gdbstub: host:port, unix:/path or a socket path (QEMU -gdb).")
  var gdb: String?

  @Option(help: "QEMU's QMP socket: host:port, unix:/path or a socket path (QEMU -qmp).")
  var qmp: String?

  @Option(help: "The guest kernel ELF (symbols; the inspection ABI root when it has one).")
  var kernel: String?

  @Option(name: .customLong("symbols"), help: "A Linux System.map, for a guest without the ABI.")
  var systemMap: String?

  @Option(
    name: .customLong("memory-file"),
    help: "The file behind QEMU's memory-backend-file,share=on: live reads with zero pause.")
  var memoryFile: String?

  @Option(help: "The machine type (pc or q35): where RAM above 4 GiB sits in the memory file.")
  var machine: String = "pc"

  func validate() throws {
    if kernel != nil && systemMap != nil {
      throw ValidationError("give --kernel ELF or --symbols MAP, not both")
    }
    if gdb == nil && memoryFile == nil {
      throw ValidationError("give --gdb ADDR and/or --memory-file PATH (and --qmp ADDR for run state)")
    }
  }

  /// The options for `Target.open`.
  var options: TargetOptions {
    var o = TargetOptions()
    o.gdb = gdb
    o.qmp = qmp
    o.kernel = kernel
    o.systemMap = systemMap
    o.memoryFile = memoryFile
    o.machine = machine
    return o
  }
}

extension CLIError {
  /// The command-line form of a target error, with its exit code.
  init(_ error: TargetError) {
    let code: Code =
      switch error.code {
      case .connect: .connect
      case .symbols: .symbols
      case .abi: .abi
      case .memory: .memory
      case .gdbRequired: .usage
      case .guestState: .guest
      }
    self.init(error.message, code: code)
  }
}

extension TargetArguments {
  /// Opens the target, runs `body` with it and closes it, also when `body` throws.
  func withOpenTarget(_ body: (Target) async throws -> Void) async throws {
    let t: Target
    do { t = try await Target.open(options) } catch { throw CLIError(error) }
    do { try await body(t) } catch {
      await t.close()
      throw error
    }
    await t.close()
  }
}
