import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a command to completion and returns its exit status and combined output.
///
/// Uses posix_spawn and waitpid, like QEMU's own launch; Foundation's `Process` can miss a
/// child's exit for seconds (or for good) when no run loop turns, as in the test runner.
public func runCommand(
  _ arguments: [String], environment: [String: String]? = nil, timeout: Duration = .seconds(60)
) throws -> (status: Int32, output: String) {
  guard let name = arguments.first, let executable = QEMUInstance.findExecutable(name) else {
    throw QEMULaunchError(.executableNotFound, "\(arguments.first ?? "") not found in PATH")
  }
  let log = NSTemporaryDirectory() + "smptop-cmd-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
  defer { unlink(log) }
  let pid = try ChildProcess.spawn(
    executable, arguments: Array(arguments.dropFirst()), output: log, environment: environment)
  let deadline = ContinuousClock.now + timeout
  var status: Int32?
  while status == nil {
    status = ChildProcess.reap(pid)
    if status == nil {
      if ContinuousClock.now > deadline {
        kill(pid, SIGKILL)
        status = ChildProcess.wait(pid)
        break
      }
      usleep(1_000)
    }
  }
  let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
  return (status ?? -1, output)
}

/// What a finished command printed and how it ended.
public struct CommandResult: Sendable {
  /// Its exit status (128+S when killed by signal S; -1 when it could not be waited for).
  public var status: Int32
  /// What it wrote on stdout.
  public var stdout: String
  /// What it wrote on stderr.
  public var stderr: String
}

/// Runs a command to completion with stdout and stderr kept apart.
public func runProcess(
  _ arguments: [String], environment: [String: String]? = nil, timeout: Duration = .seconds(120)
) throws -> CommandResult {
  let process = try BackgroundProcess(arguments, environment: environment)
  defer { process.removeLogs() }
  let status =
    process.wait(timeout: timeout)
    ?? {
      process.signal(SIGKILL)
      return process.wait(timeout: .seconds(10)) ?? -1
    }()
  return CommandResult(status: status, stdout: process.stdout(), stderr: process.stderr())
}

/// A command running in the background, its stdout and stderr in files; it dies with this
/// process, also on SIGKILL.
public final class BackgroundProcess: Sendable {
  /// Its process id.
  public let pid: pid_t
  private let outputPath: String
  private let errorPath: String
  private let status = NIOLockedValueBox<Int32?>(nil)

  /// Starts `arguments` (the first word looked up in PATH) with stdin from /dev/null; with
  /// `mergeErrors` stderr goes into the stdout file, interleaved as a terminal would show it.
  public init(_ arguments: [String], environment: [String: String]? = nil, mergeErrors: Bool = false)
    throws
  {
    guard let name = arguments.first, let executable = QEMUInstance.findExecutable(name) else {
      throw QEMULaunchError(.executableNotFound, "\(arguments.first ?? "") not found in PATH")
    }
    let base = NSTemporaryDirectory() + "smptop-bg-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    outputPath = base + ".out"
    errorPath = base + ".err"
    pid = try ChildProcess.spawn(
      executable, arguments: Array(arguments.dropFirst()), output: outputPath,
      errors: mergeErrors ? nil : errorPath, environment: environment)
  }

  /// Its exit status once it has exited (reaping it), nil while it runs.
  public var exitStatus: Int32? {
    status.withLockedValue { status in
      if status == nil { status = ChildProcess.reap(pid) }
      return status
    }
  }

  /// Waits up to `timeout` for it to exit; nil if it is still running.
  public func wait(timeout: Duration) -> Int32? {
    let deadline = ContinuousClock.now + timeout
    while true {
      if let status = exitStatus { return status }
      if ContinuousClock.now >= deadline { return nil }
      usleep(2_000)
    }
  }

  /// Sends it a signal (if it has not been reaped yet).
  public func signal(_ signal: Int32) {
    if exitStatus == nil { kill(pid, signal) }
  }

  /// What it has written on stdout so far.
  public func stdout() -> String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

  /// What it has written on stderr so far.
  public func stderr() -> String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

  /// Deletes the output files.
  public func removeLogs() {
    unlink(outputPath)
    unlink(errorPath)
  }

  deinit {
    if exitStatus == nil {
      kill(pid, SIGKILL)
      _ = wait(timeout: .seconds(5))
    }
    removeLogs()
  }
}

/// Spawns and reaps child processes with posix_spawn and waitpid, so exit is noticed at once
/// (Foundation's `Process` learns of it late when no run loop is turning).
///
/// Every child dies with smptop, also when smptop is killed with SIGKILL: it is started under
/// util-linux `setpriv --pdeathsig KILL`, which asks the kernel to kill it when its parent
/// goes. The kernel means the parent *thread*, so all spawning happens on one thread that
/// lives as long as the process (`SpawnerThread`), never on a pool thread that may exit.
enum ChildProcess {
  /// The parent-death wrapper, when util-linux `setpriv` is installed.
  static let deathSignalWrapper: String? = QEMUInstance.findExecutable("setpriv")

  /// Starts `executable` with stdin from /dev/null and stdout+stderr appended to `output`;
  /// the child is killed when this process exits, however it exits.
  static func spawn(
    _ executable: String, arguments: [String], output: String, errors: String? = nil,
    environment: [String: String]? = nil
  ) throws -> pid_t {
    var program = executable
    var argumentList = arguments
    if let wrapper = deathSignalWrapper {
      program = wrapper
      argumentList = ["--pdeathsig", "KILL", "--", executable] + arguments
    }
    let request = SpawnRequest(
      executable: program, arguments: argumentList, output: output, errors: errors,
      environment: environment)
    return try SpawnerThread.shared.perform { try spawnNow(request) }.get()
  }

  /// Starts the process now, on the calling thread (which becomes its parent for pdeathsig).
  private static func spawnNow(_ request: SpawnRequest) throws -> pid_t {
    let executable = request.executable
    let arguments = request.arguments
    let output = request.output
    let environment = request.environment
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    if let errors = request.errors {
      posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    } else {
      posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Reset signal dispositions the parent may have changed (a TUI ignores SIGINT, say).
    var defaults = sigset_t()
    sigfillset(&defaults)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    // Its own process group: a Ctrl-C in smptop's terminal is smptop's to handle, and smptop
    // then shuts QEMU down itself.
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc: Int32
    if let environment {
      let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
      defer { envp.forEach { free($0) } }
      rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    } else {
      rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    }
    guard rc == 0 else {
      throw QEMULaunchError(.spawnFailed, "could not start \(executable): \(String(cString: strerror(rc)))")
    }
    return pid
  }

  /// Blocks until `pid` exits and returns its status (128+S for a signal).
  static func wait(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
      if errno != EINTR { return -1 }
    }
    return decode(status)
  }

  /// Returns the exit status if `pid` has exited (reaping it), nil while it runs.
  /// A process killed by signal S reports 128+S, as a shell would.
  static func reap(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    let rc = waitpid(pid, &status, WNOHANG)
    if rc == 0 { return nil }
    if rc < 0 { return -1 }  // not our child any more: treat as gone
    return decode(status)
  }

  private static func decode(_ status: Int32) -> Int32 {
    let low = status & 0x7f
    if low == 0 { return (status >> 8) & 0xff }
    return 128 + low
  }
}

/// What to start: the program, its arguments, where its output goes and its environment.
struct SpawnRequest: Sendable {
  /// The program's path.
  var executable: String
  /// Its arguments (without argv[0]).
  var arguments: [String]
  /// The file its stdout (and stderr, unless `errors` is given) is appended to.
  var output: String
  /// The file its stderr is appended to, when kept apart from stdout.
  var errors: String?
  /// Its environment, or nil to inherit this process's.
  var environment: [String: String]?
}

/// One thread that lives as long as the process and runs every spawn, so a child's
/// parent-death signal fires when the process ends and not when some worker thread retires.
final class SpawnerThread: Sendable {
  /// The process-wide spawner, started on first use.
  static let shared = SpawnerThread()

  /// A job and the slot its result goes into.
  private struct Job: Sendable {
    var work: @Sendable () -> Void
  }

  private let jobs = NIOLockedValueBox<[Job]>([])
  private let ready = DispatchSemaphore(value: 0)

  private init() {
    let thread = Thread { [self] in
      while true {
        ready.wait()
        guard let job = jobs.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
        job.work()
      }
    }
    thread.name = "smptop-spawner"
    thread.start()
  }

  /// Runs `work` on the spawner thread and returns its result once it is done.
  func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) -> Result<T, any Error> {
    let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    jobs.withLockedValue {
      $0.append(
        Job {
          let r = Result { try work() }
          result.withLockedValue { $0 = r }
          done.signal()
        })
    }
    ready.signal()
    done.wait()
    return result.withLockedValue { $0 } ?? .failure(QEMULaunchError(.spawnFailed, "the spawner thread lost a job"))
  }
}
