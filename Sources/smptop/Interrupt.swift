import Foundation
import Synchronization

/// Set by SIGINT/SIGTERM so long-running commands stop and clean up instead of dying mid-way.
let interruptRequested = Atomic<Bool>(false)

/// Routes SIGINT and SIGTERM to `interruptRequested`.
func installInterruptHandler() {
  signal(SIGINT) { _ in interruptRequested.store(true, ordering: .relaxed) }
  signal(SIGTERM) { _ in interruptRequested.store(true, ordering: .relaxed) }
}

/// Sleeps up to `seconds`, returning early (false) when an interrupt was requested.
func sleepUnlessInterrupted(_ seconds: Double) async -> Bool {
  let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
  while ContinuousClock.now < deadline {
    if interruptRequested.load(ordering: .relaxed) { return false }
    try? await Task.sleep(for: .milliseconds(min(50, max(1, Int(seconds * 1000)))))
  }
  return !interruptRequested.load(ordering: .relaxed)
}
