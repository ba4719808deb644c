import Foundation
import Transport

#if canImport(Glibc)
  import Glibc
#endif

/// How TCG runs a guest's vCPUs.
public enum TCGThreads: String, Sendable, Equatable, CaseIterable {
  /// One host thread per vCPU (MTTCG, QEMU's default for x86_64 guests on x86_64 hosts): vCPUs
  /// really run at the same time, and stopping the VM waits for every thread to leave its
  /// translated code.
  case multi
  /// One host thread runs every vCPU in turn: stopping the VM waits for that one thread, which
  /// is much quicker with many vCPUs on few host cores; vCPUs interleave instead of overlapping.
  case single

  /// The `-accel` value.
  public var accelerator: String { "tcg,thread=\(rawValue)" }
}

/// How to launch QEMU for smptop: the machine, the guest, and which control sockets to open.
public struct QEMUConfiguration: Sendable, Equatable {
  /// Number of lcpus (`-smp`).
  public var smp: Int = 4
  /// How TCG runs the vCPUs (`-accel tcg,thread=…`); nil leaves it to QEMU (multi-threaded,
  /// or single under `-icount`, which cannot be combined with multi).
  public var tcgThreads: TCGThreads?
  /// Guest RAM in MiB (`-m`).
  public var memoryMiB: Int = 128
  /// Machine type: `pc` or `q35`.
  public var machine: String = "pc"
  /// Path of an ELF to boot with `-kernel`; nil boots nothing (firmware only).
  public var kernel: String?
  /// Kernel command line (`-append`).
  public var append: String?
  /// Start with the vCPUs stopped (`-S`).
  public var startPaused: Bool = false
  /// Open the gdbstub on a unix socket.
  public var gdb: Bool = true
  /// Open QMP on a unix socket.
  public var qmp: Bool = true
  /// Open a second, independent QMP socket (`qmp2.sock`), e.g. for a test's own view.
  public var secondQMP: Bool = false
  /// Back guest RAM with a shared file so smptop can read it live.
  public var sharedMemory: Bool = true
  /// Add `isa-debug-exit` so the guest can power off with an exit code.
  public var debugExit: Bool = true
  /// Further arguments appended verbatim.
  public var extraArguments: [String] = []
  /// The QEMU executable (a name looked up in PATH, or a path).
  public var executable: String = "qemu-system-x86_64"
  /// A command QEMU is run under, e.g. `["ip", "netns", "exec", "NS"]` (the first word is
  /// looked up in PATH, QEMU's own path is appended).
  public var launchPrefix: [String] = []

  /// A configuration with the defaults above.
  public init() {}

  /// The QEMU argument list for this configuration, with sockets and files in `directory`.
  public func arguments(in directory: String) -> [String] {
    var args = ["-accel", tcgThreads?.accelerator ?? "tcg", "-smp", String(smp), "-m", "\(memoryMiB)M"]
    var machineArg = machine
    if sharedMemory {
      machineArg += ",memory-backend=ram0"
      args += [
        "-object",
        "memory-backend-file,id=ram0,size=\(memoryMiB)M,mem-path=\(directory)/ram,share=on",
      ]
    }
    args += ["-machine", machineArg]
    args += ["-display", "none", "-nodefaults", "-no-user-config", "-no-reboot"]
    args += ["-serial", "file:\(directory)/serial.log"]
    if debugExit { args += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"] }
    if gdb { args += ["-gdb", "unix:\(directory)/gdb.sock,server=on,wait=off"] }
    if qmp { args += ["-qmp", "unix:\(directory)/qmp.sock,server=on,wait=off"] }
    if secondQMP { args += ["-qmp", "unix:\(directory)/qmp2.sock,server=on,wait=off"] }
    if let kernel { args += ["-kernel", kernel] }
    if let append, kernel != nil { args += ["-append", append] }
    if startPaused { args.append("-S") }
    return args + extraArguments
  }
}

/// Why launching or talking to a QEMU process failed, with what a user can act on.
public struct QEMULaunchError: Error, CustomStringConvertible, Sendable {
  /// The kind of failure.
  public enum Code: Sendable, Equatable {
    case executableNotFound
    case runtimeDirectory
    case spawnFailed
    case exitedEarly(status: Int32)
    case socketTimeout
    case buildFailed
    case sourceTreeNotFound
  }
  /// The kind of failure.
  public var code: Code
  /// A sentence that says what happened and what to do.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

/// A running QEMU whose gdbstub, QMP socket, serial log and shared RAM live in a private
/// 0700 directory that is removed when the instance is shut down.
public final class QEMUInstance: @unchecked Sendable {
  /// The configuration it was launched with.
  public let configuration: QEMUConfiguration
  /// The private runtime directory (mode 0700).
  public let runtimeDirectory: String
  /// The gdbstub's unix socket, when enabled.
  public var gdbSocketPath: String? { configuration.gdb ? runtimeDirectory + "/gdb.sock" : nil }
  /// The QMP unix socket, when enabled.
  public var qmpSocketPath: String? { configuration.qmp ? runtimeDirectory + "/qmp.sock" : nil }
  /// The second QMP socket, when enabled.
  public var secondQMPSocketPath: String? { configuration.secondQMP ? runtimeDirectory + "/qmp2.sock" : nil }
  /// The file that backs guest RAM, when shared memory is enabled.
  public var memoryFilePath: String? { configuration.sharedMemory ? runtimeDirectory + "/ram" : nil }
  /// Where the guest's serial console is written.
  public var serialLogPath: String { runtimeDirectory + "/serial.log" }
  /// QEMU's own stdout and stderr.
  public var qemuLogPath: String { runtimeDirectory + "/qemu.log" }
  /// The QEMU process id.
  public let pid: pid_t

  private let lock = NSLock()
  private var removed = false
  private var status: Int32?

  private init(configuration: QEMUConfiguration, runtimeDirectory: String, pid: pid_t) {
    self.configuration = configuration
    self.runtimeDirectory = runtimeDirectory
    self.pid = pid
  }

  /// Starts QEMU and returns once its control sockets accept connections.
  public static func launch(_ configuration: QEMUConfiguration, socketTimeout: Duration = .seconds(10))
    throws -> QEMUInstance
  {
    guard let executable = findExecutable(configuration.executable) else {
      throw QEMULaunchError(
        .executableNotFound,
        "\(configuration.executable) not found in PATH; install it with Resources/install-deps.sh "
          + "(Debian package qemu-system-x86)")
    }
    let directory = try makeRuntimeDirectory()
    let pid: pid_t
    do {
      if let wrapper = configuration.launchPrefix.first {
        guard let wrapperPath = findExecutable(wrapper) else {
          throw QEMULaunchError(.executableNotFound, "\(wrapper) not found in PATH")
        }
        pid = try ChildProcess.spawn(
          wrapperPath,
          arguments: Array(configuration.launchPrefix.dropFirst()) + [executable]
            + configuration.arguments(in: directory), output: directory + "/qemu.log")
      } else {
        pid = try ChildProcess.spawn(
          executable, arguments: configuration.arguments(in: directory), output: directory + "/qemu.log")
      }
    } catch {
      try? FileManager.default.removeItem(atPath: directory)
      throw error
    }
    let instance = QEMUInstance(configuration: configuration, runtimeDirectory: directory, pid: pid)
    do {
      try instance.waitForSockets(timeout: socketTimeout)
    } catch {
      instance.shutdown()
      throw error
    }
    return instance
  }

  /// Whether the QEMU process is still running.
  public var isRunning: Bool { exitStatus == nil }

  /// QEMU's exit status once it has exited (debug-exit code N gives 2N+1; a signal S gives 128+S).
  public var exitStatus: Int32? {
    lock.lock()
    defer { lock.unlock() }
    if status == nil { status = ChildProcess.reap(pid) }
    return status
  }

  /// Everything the guest printed on its serial console so far.
  public func serialOutput() -> String {
    (try? String(contentsOfFile: serialLogPath, encoding: .utf8)) ?? ""
  }

  /// What QEMU itself printed (errors, warnings).
  public func qemuOutput() -> String {
    (try? String(contentsOfFile: qemuLogPath, encoding: .utf8)) ?? ""
  }

  /// Waits until the serial console contains `text`; throws on timeout or QEMU exit.
  public func waitForSerial(contains text: String, timeout: Duration) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if serialOutput().contains(text) { return }
      if let status = exitStatus {
        if serialOutput().contains(text) { return }
        throw QEMULaunchError(
          .exitedEarly(status: status),
          "QEMU exited (status \(status)) before the guest printed \"\(text)\"; "
            + "serial: \(serialOutput().suffix(400)) qemu: \(qemuOutput().suffix(400))")
      }
      usleep(20_000)
    }
    throw QEMULaunchError(
      .socketTimeout,
      "the guest did not print \"\(text)\" within \(timeout); serial tail: "
        + String(serialOutput().suffix(400)))
  }

  /// Waits for QEMU to exit and returns its status, or nil if it is still running at the timeout.
  @discardableResult
  public func waitForExit(timeout: Duration) -> Int32? {
    let deadline = ContinuousClock.now + timeout
    while true {
      if let status = exitStatus { return status }
      if ContinuousClock.now >= deadline { return nil }
      usleep(2_000)
    }
  }

  /// Kills QEMU at once with SIGKILL (simulates a QEMU that dies mid-session).
  public func kill() {
    if isRunning { Glibc.kill(pid, SIGKILL) }
    _ = waitForExit(timeout: .seconds(5))
  }

  /// Stops QEMU (SIGTERM, then SIGKILL after a grace period) and removes the runtime directory.
  public func shutdown() {
    if isRunning {
      Glibc.kill(pid, SIGTERM)
      if waitForExit(timeout: .seconds(3)) == nil { kill() }
    }
    removeDirectory()
  }

  deinit { shutdown() }

  private func waitForSockets(timeout: Duration) throws {
    let paths = [gdbSocketPath, qmpSocketPath, secondQMPSocketPath].compactMap { $0 }
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if let status = exitStatus {
        throw QEMULaunchError(
          .exitedEarly(status: status),
          "QEMU exited at start (status \(status)): "
            + qemuOutput().trimmingCharacters(in: .whitespacesAndNewlines))
      }
      if paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
        // The file appears at bind(), a moment before listen(). QMP's greeting proves QEMU
        // is serving its sockets (all are set up before its main loop); the gdbstub is never
        // probed, because connecting to it stops the VM.
        guard let qmp = qmpSocketPath ?? secondQMPSocketPath else { return }
        if Self.greets(qmp) { return }
      }
      usleep(5_000)
    }
    throw QEMULaunchError(.socketTimeout, "QEMU did not open its sockets within \(timeout)")
  }

  /// Whether a QMP unix socket accepts a connection and sends its greeting.
  static func greets(_ path: String) -> Bool {
    let deadline = ContinuousClock.now + .seconds(2)
    guard let socket = try? StreamSocket.connect(to: .unix(path: path), deadline: deadline) else {
      return false
    }
    defer { socket.close() }
    guard case .data = try? socket.read(until: deadline) else { return false }
    return true
  }

  private func removeDirectory() {
    lock.lock()
    defer { lock.unlock() }
    if removed { return }
    removed = true
    try? FileManager.default.removeItem(atPath: runtimeDirectory)
  }

  /// Creates a private 0700 directory for sockets and RAM, on tmpfs when there is one.
  static func makeRuntimeDirectory() throws -> String {
    var bases: [String] = []
    if let xdg = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { bases.append(xdg) }
    bases += ["/dev/shm", NSTemporaryDirectory(), "/tmp"]
    for base in bases where access(base, W_OK) == 0 {
      var template = Array((base.hasSuffix("/") ? base : base + "/").utf8CString.dropLast())
      template += Array("smptop-XXXXXX".utf8CString)
      let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
        guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
        return String(cString: base)
      }
      if let made {
        chmod(made, 0o700)
        return made
      }
    }
    throw QEMULaunchError(.runtimeDirectory, "could not create a private runtime directory in \(bases)")
  }

  /// Finds an executable by name in PATH, or checks a given path.
  public static func findExecutable(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
      let candidate = "\(dir)/\(name)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }
}
