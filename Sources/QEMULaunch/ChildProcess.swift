import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Spawns and reaps child processes with posix_spawn and waitpid, so exit is noticed at once
/// (Foundation's `Process` learns of it late when no run loop is turning).
enum ChildProcess {
  /// Starts `executable` with stdin from /dev/null and stdout+stderr appended to `output`.
  static func spawn(_ executable: String, arguments: [String], output: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)

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
    let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
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
