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
      fail(error.message, code: error.code.rawValue)
    } catch {
      let code = Root.exitCode(for: error)
      // --help and --version are not failures: ArgumentParser prints them as it always does.
      if code == .success { Root.exit(withError: error) }
      let message = Root.message(for: error)
      if code == .validationFailure {
        fail("\(message) (see smptop help)", code: CLIError.Code.usage.rawValue)
      }
      fail(message, code: code.rawValue)
    }
  }

  /// Prints one error line on stderr and exits with `code`.
  ///
  /// Everything already printed on stdout is flushed first, so the error line never lands in
  /// the middle of a buffered stdout line when both go to the same place.
  static func fail(_ message: String, code: Int32) -> Never {
    fflush(nil)  // every output stream, stdout included
    let line = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
      .filter { !$0.isEmpty }.joined(separator: "; ")
    FileHandle.standardError.write(Data("smptop: \(line)\n".utf8))
    exit(code)
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
      RecordCommand.self, ReplayCommand.self, BenchCommand.self, ServeCommand.self,
      KernelCommand.self, ISRCheckCommand.self, TraceCommand.self, ProfileCommand.self,
    ])
}

/// smptop's own version; no release has been made from this tree yet.
let smptopVersion = "0.1.0"

/// What `smptop --version` prints: the version, and the git checkout it was built from when known.
let versionText =
  "smptop \(smptopVersion) " + (gitDescribe.map { "(git \($0))" } ?? "(not built from a git checkout)")
