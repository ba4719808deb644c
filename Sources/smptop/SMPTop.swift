import ArgumentParser
import Foundation

/// The smptop command line.
@main struct SMPTop {
  static func main() {
    do {
      var command = try Root.parseAsRoot()
      try command.run()
    } catch let error as CLIError {
      FileHandle.standardError.write(Data("smptop: \(error.message)\n".utf8))
      exit(error.code.rawValue)
    } catch {
      Root.exit(withError: error)
    }
  }
}

/// The root command and its subcommands.
struct Root: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "smptop",
    abstract: "Live inspection of an SMP unikernel running in QEMU.",
    subcommands: [KernelCommand.self])
}
