import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The signal (SIGINT, SIGTERM, SIGHUP) that asked the dashboard to stop, 0 when none did.
let stopSignal = Atomic<Int32>(0)

/// The terminal modes from before curses started, for the crash handler (written before handlers exist).
nonisolated(unsafe) private var savedModes = termios()
nonisolated(unsafe) private var haveSavedModes = false
/// The handlers that were there before ours, indexed by signal number, so crashes still reach them.
nonisolated(unsafe) private var previousActions: Array<sigaction> = Array(repeating: sigaction(), count: 65)

/// Resets SGR attributes, shows the cursor and leaves the alternate screen, in one write.
private let resetSequence: [UInt8] = Array("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l\r\n".utf8)

/// Signals that stop the dashboard cleanly (the loop notices within one tick).
private let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
/// Signals after which the process dies: restore the terminal first, then let the old handler run.
private let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]

/// Only async-signal-safe calls: tcsetattr and write.
private func restoreTerminalModes() {
  guard haveSavedModes else { return }
  _ = tcsetattr(0, TCSANOW, &savedModes)
  resetSequence.withUnsafeBufferPointer { b in _ = write(1, b.baseAddress, b.count) }
}

/// Saves the terminal modes and installs the stop and crash handlers. Call before curses starts.
func installSignalHandlers() {
  if tcgetattr(0, &savedModes) == 0 { haveSavedModes = true }
  stopSignal.store(0, ordering: .relaxed)
  for sig in stopSignals + crashSignals {
    var action: sigaction = .init()
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    if stopSignals.contains(sig) {
      action.__sigaction_handler.sa_handler = { sig in stopSignal.store(sig, ordering: .relaxed) }
    } else {
      action.sa_flags = Int32(truncatingIfNeeded: SA_RESETHAND)  // 0x80000000: the sign bit
      action.__sigaction_handler.sa_handler = { sig in
        restoreTerminalModes()
        // Put the previous handler (the Swift runtime's backtracer, or the default) back and re-raise.
        if sig >= 0 && Int(sig) < previousActions.count { sigaction(sig, &previousActions[Int(sig)], nil) }
        raise(sig)
      }
    }
    sigaction(sig, &action, &previousActions[Int(sig)])
  }
}

/// Puts the previous handlers back and forgets the saved modes. Call after curses ended.
func removeSignalHandlers() {
  for sig in stopSignals + crashSignals {
    sigaction(sig, &previousActions[Int(sig)], nil)
  }
  haveSavedModes = false
}
