import Foundation
import Inspector
import QEMULaunch
import Testing

/// The threads view in the real smptop binary, in a real terminal (tmux), against the real
/// guest in real QEMU: every thread with where it is, as source lines, read live.
@Suite(.serialized) struct WhereDashboardTests {
  @Test func tShowsEveryThreadWithSourceLinesLiveAndEscapeCloses() async throws {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 4
    config.kernel = kernel
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    let smptop = try DashboardEndToEndTests.smptopBinary()
    let command =
      "LANG=C.UTF-8 \(smptop) attach --qmp \(qemu.qmpSocketPath ?? "")"
      + " --kernel \(kernel) --memory-file \(qemu.memoryFilePath ?? "") --interval 0.2; sleep 60"
    let tmux = try DashboardEndToEndTests.Tmux(command: command, width: 160, height: 60)
    _ = try await tmux.waitFor("the lcpus pane with 4 lcpus") { DashboardEndToEndTests.rows($0).count == 4 }
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
}
