import Foundation
import Testing

/// `smptop --help` and `--version` as a user sees them: the built binary, run at several widths.
@Suite struct CommandLineHelpTests {
  static let commands = [
    "", "run", "attach", "snapshot", "locks", "step", "record", "replay", "bench", "kernel",
  ]

  /// The smptop binary `swift build --build-tests` put next to the test bundle.
  static func binary() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = dir.appendingPathComponent("smptop").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    throw HelpTestError(message: "smptop binary not found near \(CommandLine.arguments[0])")
  }

  /// Runs a program and returns its standard output and exit status.
  static func run(
    _ path: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil
  ) throws -> (output: String, status: Int32) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (String(decoding: data, as: UTF8.self), process.terminationStatus)
  }

  /// The prose of a help text: the overview and discussion, above the USAGE line.
  static func prose(_ help: String) -> [String] {
    Array(help.components(separatedBy: "\n").prefix { !$0.hasPrefix("USAGE:") })
  }

  @Test(arguments: commands, [60, 80, 120]) func sentencesBreakOnlyWhereTheLineIsFull(
    command: String, columns: Int
  ) throws {
    let args = command.isEmpty ? ["--help"] : [command, "--help"]
    let (help, status) = try Self.run(Self.binary(), args, environment: ["COLUMNS": "\(columns)"])
    #expect(status == 0)
    let lines = Self.prose(help)
    #expect(lines.first?.hasPrefix("OVERVIEW: ") == true)
    // Two prose lines in a row: the second's first word would have fitted on the first, so the break
    // came from the source text, not from wrapping (argument-parser leaves the last column free).
    // Indented lines (examples) keep their own breaks.
    for (a, b) in zip(lines, lines.dropFirst()) {
      guard !a.isEmpty, !b.isEmpty, a.first != " ", b.first != " " else { continue }
      let word = b.prefix { $0 != " " }
      #expect(
        a.count + 1 + word.count >= columns,
        "smptop \(command) --help at \(columns) columns breaks early:\n\(a)\n\(b)")
    }
    for line in lines where line.first == " " {
      #expect(line.count <= min(columns, 76), "an example line that wraps: \(line)")
    }
  }

  @Test func versionNamesTheReleaseAndTheCheckoutItWasBuiltFrom() throws {
    let smptop = try Self.binary()
    let (text, status) = try Self.run(smptop, ["--version"])
    #expect(status == 0)
    let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(line.hasPrefix("smptop 0."), "\(line)")
    // The build records `git describe` of the package it was built from; its commit is this checkout's.
    let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().path
    let git = try Self.run(
      "/usr/bin/env", ["git", "--no-optional-locks", "-C", package, "describe", "--always"])
    if git.status == 0 {
      let describe = git.output.trimmingCharacters(in: .whitespacesAndNewlines)
      #expect(line.contains("(git \(describe)"), "built from this checkout: \(line) vs \(describe)")
    } else {
      #expect(line.hasSuffix("(not built from a git checkout)"))
    }
    #expect(try Self.run(smptop, ["run", "--version"]).output == text, "subcommands answer the same")
  }
}

/// A failure to find or run the binary under test.
struct HelpTestError: Error, CustomStringConvertible {
  /// What went wrong.
  var message: String
  var description: String { message }
}
