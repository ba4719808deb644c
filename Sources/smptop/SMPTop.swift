import ArgumentParser
import Foundation

/// The smptop command line.
@main struct SMPTop {
  static func main() async {
    do {
      var command = try Root.parseAsRoot()
      if var command = command as? any AsyncParsableCommand {
        try await command.run()
      } else {
        try command.run()
      }
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
    version: versionText,
    subcommands: [
      RunCommand.self, AttachCommand.self, SnapshotCommand.self, LocksCommand.self, StepCommand.self,
      RecordCommand.self, ReplayCommand.self, BenchCommand.self,
      KernelCommand.self, ISRCheckCommand.self,
    ])
}

/// smptop's own version; no release has been made from this tree yet.
let smptopVersion = "0.1.0"

/// What `smptop --version` prints: the version, and the git checkout it was built from when known.
let versionText =
  "smptop \(smptopVersion) " + (gitDescribe.map { "(git \($0))" } ?? "(not built from a git checkout)")
