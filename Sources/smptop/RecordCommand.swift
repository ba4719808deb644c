import ArgumentParser
import Foundation
import Inspector

/// `smptop record`: capture the guest's model at an interval into a file for later replay.
struct RecordCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "record",
    abstract: "Record the guest's inspection records (from shared RAM, no pause) into a file.",
    discussion: """
      Each frame holds the raw bytes of the ABI root, every table and every dynamic lock, read \
      live from the shared RAM file. Replay it with `smptop replay FILE --kernel ELF`.
      """)

  @OptionGroup var target: TargetArguments

  @Option(name: .customLong("out"), help: "The recording file to write (appended to if it exists).")
  var output: String

  @Option(help: "Seconds between frames.")
  var interval: Double = 1

  @Option(help: "Frames to record (default: until Ctrl-C).")
  var count: Int?

  func validate() throws {
    guard target.memoryFile != nil, target.kernel != nil else {
      throw ValidationError("recording needs --memory-file PATH and --kernel ELF")
    }
    guard interval > 0 else { throw ValidationError("--interval must be > 0") }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    installInterruptHandler()
    var frames = 0
    do {
      while count.map({ frames < $0 }) ?? true {
        let frame = try t.captureFrame()
        do { try RecordedMemory.append([frame], to: output) } catch {
          throw CLIError(error.description, code: .memory)
        }
        frames += 1
        if count.map({ frames >= $0 }) ?? false { break }
        guard await sleepUnlessInterrupted(interval) else { break }
      }
    } catch let error as TargetError {
      await t.close()
      throw CLIError(error)
    }
    await t.close()
    FileHandle.standardError.write(Data("smptop: recorded \(frames) frames to \(output)\n".utf8))
  }
}

/// `smptop replay`: show a recording with the same displays as a live target.
struct ReplayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Replay a recording made by `smptop record` (dashboard, text or JSON).")

  @Argument(help: "The recording file.")
  var recording: String

  @Option(help: "The kernel ELF the recording was made from (symbols and the ABI root).")
  var kernel: String

  @OptionGroup var display: DisplayArguments

  func run() async throws {
    var options = TargetOptions()
    options.kernel = kernel
    options.recording = recording
    let t: Target
    do { t = try await Target.open(options) } catch { throw CLIError(error) }
    let frames = t.recording?.frames.count ?? 0
    var display = display
    if display.iterations == nil { display.iterations = frames }
    try await display.show(t, machine: "recording")
    await t.close()
  }
}
