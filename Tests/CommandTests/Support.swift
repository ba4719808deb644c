import Foundation
import QEMULaunch
import Testing

/// Why a command test could not go on, with what it saw.
struct CommandTestError: Error, CustomStringConvertible {
  /// What went wrong.
  var description: String
  /// Creates an error.
  init(_ description: String) { self.description = description }
}

/// The smptop binary as users run it, built by `swift build --build-tests` / `swift test`.
enum SMPTopBinary {
  /// The smptop executable next to the test bundle (`.build/<triple>/debug/smptop`).
  static func path() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = dir.appendingPathComponent("smptop").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    throw CommandTestError("smptop binary not found near \(CommandLine.arguments[0])")
  }

  /// Runs `smptop arguments…` to completion, stdout and stderr apart.
  static func run(
    _ arguments: [String], environment: [String: String]? = nil, timeout: Duration = .seconds(120)
  )
    throws -> CommandResult
  {
    try runProcess([try path()] + arguments, environment: environment, timeout: timeout)
  }

  /// The repository root (for README.md and the scripts).
  static var repositoryRoot: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().path
  }
}

/// A JSON value from the binary's output, navigated by key.
enum JSON {
  /// Parses one JSON document.
  static func parse(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
  }

  /// Splits a stream of pretty-printed top-level objects (each closed by a `}` line).
  static func objects(_ text: String) throws -> [[String: Any]] {
    var documents: [[String: Any]] = []
    var current: [Substring] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      current.append(line)
      if line == "}" {
        let object = try parse(current.joined(separator: "\n"))
        guard let dictionary = object as? [String: Any] else {
          throw CommandTestError("a top-level JSON value is not an object")
        }
        documents.append(dictionary)
        current = []
      }
    }
    return documents
  }

  /// The union of the keys of every object in `list` (optional keys show up where present).
  static func keys(of list: Any?) -> Set<String> {
    guard let list = list as? [[String: Any]] else { return [] }
    return list.reduce(into: Set<String>()) { $0.formUnion($1.keys) }
  }
}

/// The process ids whose parent is `pid` (from /proc), with their command names.
func children(of pid: pid_t) -> [(pid: pid_t, command: String)] {
  guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
  var result: [(pid_t, String)] = []
  for entry in entries {
    guard let child = pid_t(entry),
      let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8)
    else { continue }
    // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
    guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    if fields.count > 1, pid_t(fields[1]) == pid {
      result.append((child, String(stat[stat.index(after: open)..<close])))
    }
  }
  return result
}

/// Whether `pid` is a live process (a zombie counts as dead: it runs nothing any more).
func isAlive(_ pid: pid_t) -> Bool {
  guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
  return !status.contains("State:\tZ")
}

/// A QEMU started with the README's "attach to your own QEMU" command line, in a private
/// directory; it dies with the test process (it is spawned with a parent-death signal).
final class OwnQEMU {
  /// The private directory holding the sockets, the RAM file and the serial log.
  let directory: String
  /// The guest ELF.
  let kernel: String
  /// QEMU itself.
  let process: BackgroundProcess
  /// The gdbstub socket.
  var gdb: String { directory + "/guest-gdb.sock" }
  /// The QMP socket.
  var qmp: String { directory + "/guest-qmp.sock" }
  /// The shared RAM file.
  var ram: String { directory + "/guest-ram" }
  /// The target options every attaching command takes.
  var target: [String] { ["--gdb", gdb, "--qmp", qmp, "--kernel", kernel, "--memory-file", ram] }

  /// Boots the guest with `smp` lcpus, plus `extra` QEMU arguments, and waits until the
  /// guest's own ABI says it is running (read with `smptop snapshot --json`).
  init(smp: Int = 4, append: String? = nil, extra: [String] = []) async throws {
    kernel = try GuestKernel.build()
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    directory = base + "/smptop-cmdtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    // The README's command line, word for word except for the paths (and -serial, which goes to
    // QEMU's stdout file here, as it would to a terminal there).
    var arguments = [
      "qemu-system-x86_64", "-accel", "tcg", "-smp", String(smp), "-m", "128M", "-kernel", kernel,
      "-object", "memory-backend-file,id=ram0,size=128M,mem-path=\(directory)/guest-ram,share=on",
      "-machine", "pc,memory-backend=ram0",
      "-gdb", "unix:\(directory)/guest-gdb.sock,server=on,wait=off",
      "-qmp", "unix:\(directory)/guest-qmp.sock,server=on,wait=off",
      "-serial", "stdio", "-display", "none",
    ]
    if let append { arguments += ["-append", append] }
    process = try BackgroundProcess(arguments + extra)
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
      if let status = process.exitStatus {
        throw CommandTestError("QEMU exited (\(status)): \(process.stderr())")
      }
      if FileManager.default.fileExists(atPath: qmp), FileManager.default.fileExists(atPath: ram),
        let snapshot = try? snapshot(), (snapshot["guest"] as? [String: Any])?["bootStage"] as? Int == 2
      {
        return
      }
      try await Task.sleep(for: .milliseconds(200))
    }
    throw CommandTestError("the guest did not reach RUNNING; serial:\n\(process.stdout().suffix(800))")
  }

  /// One `smptop snapshot --json` of this QEMU, parsed.
  func snapshot(_ flags: [String] = []) throws -> [String: Any] {
    let result = try SMPTopBinary.run(["snapshot", "--json"] + flags + target)
    guard result.status == 0, let object = try JSON.parse(result.stdout) as? [String: Any] else {
      throw CommandTestError("snapshot failed (\(result.status)): \(result.stderr)")
    }
    return object
  }

  deinit {
    process.signal(SIGKILL)
    _ = process.wait(timeout: .seconds(10))
    try? FileManager.default.removeItem(atPath: directory)
  }
}
