import Foundation
import Inspector
import QEMULaunch
import Testing

/// The threads view in the real smptop binary, in a real terminal (tmux), against the real
/// guest in real QEMU: every thread with where it is, as source lines, read live.
@Suite(.serialized) struct WhereDashboardTests {
  /// A 4-lcpu guest and `smptop attach` to it in a 160x60 tmux, showing the lcpus pane.
  static func attached() async throws -> (QEMUInstance, DashboardEndToEndTests.Tmux) {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 4
    config.kernel = kernel
    let qemu = try QEMUInstance.launch(config)
    do {
      let smptop = try DashboardEndToEndTests.smptopBinary()
      let command =
        "LANG=C.UTF-8 \(smptop) attach --qmp \(qemu.qmpSocketPath ?? "")"
        + " --kernel \(kernel) --memory-file \(qemu.memoryFilePath ?? "") --interval 0.2; sleep 60"
      let tmux = try DashboardEndToEndTests.Tmux(command: command, width: 160, height: 60)
      _ = try await tmux.waitFor("the lcpus pane with 4 lcpus") { DashboardEndToEndTests.rows($0).count == 4 }
      return (qemu, tmux)
    } catch {
      qemu.shutdown()
      throw error
    }
  }

  @Test func tShowsEveryThreadWithSourceLinesLiveAndEscapeCloses() async throws {
    let (qemu, tmux) = try await Self.attached()
    defer { qemu.shutdown() }
    try tmux.keys("T")
    // Threads of every lcpu, each with a source line (a `.swift:LINE in` frame) under it.
    let screen = try await tmux.waitFor("the threads view with source lines") {
      $0.contains("THREADS") && $0.contains("LCPU 0") && $0.contains(".swift:") && $0.contains(" in ")
    }
    #expect(screen.contains("checker") || screen.contains("spin.0"), "thread names are listed")
    #expect(screen.contains("at "), "each thread's innermost frame reads `at File.swift:LINE in function`")
    // Still live: the VM was not paused for it.
    #expect(!screen.contains("paused"))
    // It scrolls like the detail view: the last lcpu's threads are at the end.
    try tmux.keys("End")
    let end = try await tmux.waitFor("the last lcpu's threads") { $0.contains("LCPU 3") }
    #expect(end.contains(".swift:"))
    try tmux.keys("Escape")
    _ = try await tmux.waitFor("the lcpus pane again") {
      !$0.contains("THREADS  where") && DashboardEndToEndTests.rows($0).count == 4
    }
    try tmux.keys("q")
  }

  @Test func enterOnALockShowsWhereItsWaitersWaitAndEscapeGoesBack() async throws {
    let (qemu, tmux) = try await Self.attached()
    defer { qemu.shutdown() }
    // The locks pane, filtered down to the contended mutex, and Enter on its row.
    try tmux.keys("2")
    _ = try await tmux.waitFor("the locks pane") { $0.contains("CONT/s") && $0.contains("work.mutex") }
    try tmux.keys("/")
    try tmux.keys("work.mutex")
    try tmux.keys("Enter")
    _ = try await tmux.waitFor("only work.mutex") { $0.contains("work.mutex") && !$0.contains("work.rmutex") }
    try tmux.keys("Enter")
    // The lock view, refreshed live: sooner or later a waiter, placed on a workload line.
    let lock = try await tmux.waitFor("a waiter of work.mutex with its place", timeout: .seconds(45)) {
      $0.contains("LOCK work.mutex") && $0.contains("waits at Workload.swift:")
    }
    #expect(lock.contains("HOLDER") && lock.contains("WAITERS"))
    #expect(lock.contains("Mutex.swift:"), "a waiter's backtrace passes through Mutex.lock")
    try tmux.keys("Escape")
    _ = try await tmux.waitFor("the locks pane again") {
      !$0.contains("LOCK work.mutex") && $0.contains("CONT/s")
    }
    // The threads view: Enter opens the selected thread, Esc goes back to the list.
    try tmux.keys("T")
    _ = try await tmux.waitFor("the threads view") { $0.contains("THREADS  where") && $0.contains(".swift:") }
    try tmux.keys("Down")
    try tmux.keys("Enter")
    let thread = try await tmux.waitFor("a thread view") {
      $0.contains("THREAD ") && $0.contains("BACKTRACE")
    }
    #expect(thread.contains("(Esc goes back)"))
    try tmux.keys("Escape")
    _ = try await tmux.waitFor("the threads view again") { $0.contains("THREADS  where") }
    // The timers pane says where the next timers' owners wait (the sampler reads backtraces
    // for it). Esc closes the threads view, Esc again drops the filter.
    try tmux.keys("Escape")
    _ = try await tmux.waitFor("the lcpus pane") { !$0.contains("THREADS  where") }
    try tmux.keys("Escape")
    _ = try await tmux.waitFor("no filter") { !$0.contains("filter: work.mutex") }
    try tmux.keys("5")
    let timers = try await tmux.waitFor("timer owners placed") {
      $0.contains("NEXT TIMER'S OWNER WAITS AT") && $0.contains("Workload.swift:")
    }
    #expect(timers.contains("PEND"))
    try tmux.keys("q")
  }
}
