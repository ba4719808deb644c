import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Builds the bundled Embedded Swift guest and finds its ELF.
///
/// The guest is a SwiftPM cross build (`--triple x86_64-unknown-none-elf` with
/// `Resources/toolset.json`) into its own scratch directory, `.build-guest`, so it never
/// touches or locks the host build. SwiftPM's own up-to-date check makes a no-change build
/// cost about half a second; within one process the result is also remembered.
public enum GuestKernel {
  /// The ELF of the guest if one was already built in this process.
  nonisolated(unsafe) private static var cached: String?
  private static let lock = NSLock()

  /// The root of the smptop source tree: `SMPTOP_SOURCE_ROOT`, else the tree this file was
  /// compiled from.
  public static func sourceRoot() throws -> String {
    if let root = ProcessInfo.processInfo.environment["SMPTOP_SOURCE_ROOT"], !root.isEmpty {
      return root
    }
    let root = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    guard FileManager.default.fileExists(atPath: root + "/Resources/toolset.json") else {
      throw QEMULaunchError(
        .sourceTreeNotFound,
        "the smptop source tree (with Resources/toolset.json) is not at \(root); set SMPTOP_SOURCE_ROOT "
          + "or pass --kernel")
    }
    return root
  }

  /// The command that builds the guest, as arguments to `swift`.
  public static func buildArguments(root: String) -> [String] {
    [
      "build", "-c", "release", "--package-path", root, "--scratch-path", root + "/.build-guest",
      "--triple", "x86_64-unknown-none-elf", "--toolset", root + "/Resources/toolset.json",
      "--product", "Kernel",
    ]
  }

  /// Where the guest ELF lands after a build.
  public static func elfPath(root: String) -> String {
    root + "/.build-guest/x86_64-unknown-none-elf/release/Kernel"
  }

  /// Builds the guest if needed and returns the path of its ELF.
  ///
  /// `SMPTOP_KERNEL` names a prebuilt ELF and skips the build.
  public static func build() throws -> String {
    if let prebuilt = ProcessInfo.processInfo.environment["SMPTOP_KERNEL"], !prebuilt.isEmpty {
      return prebuilt
    }
    lock.lock()
    defer { lock.unlock() }
    if let cached { return cached }
    let root = try sourceRoot()
    guard let swift = QEMUInstance.findExecutable("swift") else {
      throw QEMULaunchError(.executableNotFound, "`swift` is not in PATH; the guest is built with SwiftPM")
    }
    try? FileManager.default.createDirectory(
      atPath: root + "/.build-guest", withIntermediateDirectories: true)
    let logPath = root + "/.build-guest/build.log"
    try? FileManager.default.removeItem(atPath: logPath)
    let pid = try ChildProcess.spawn(swift, arguments: buildArguments(root: root), output: logPath)
    let status = ChildProcess.wait(pid)
    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    let elf = elfPath(root: root)
    guard status == 0, FileManager.default.fileExists(atPath: elf) else {
      let firstError =
        text.split(separator: "\n").first { $0.contains("error:") }.map { ": \($0)" } ?? ""
      throw QEMULaunchError(
        .buildFailed,
        "guest build failed (swift exited with status \(status); full log in \(logPath))\(firstError)")
    }
    cached = elf
    return elf
  }
}
