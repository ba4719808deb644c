import Foundation
import QEMULaunch
import Testing

/// The ncurses backend end to end in tmux (SIGTERM and crash restore, NO_COLOR, resize, bad
/// TERM, goldens): `Tests/DashboardTests/e2e/terminal-tmux.sh`, run as part of `swift test`.
@Suite(.serialized) struct TerminalScriptTests {
  @Test func terminalScriptPassesEveryCheck() throws {
    let script = SMPTopBinary.repositoryRoot + "/Tests/DashboardTests/e2e/terminal-tmux.sh"
    // The driver (the package's DashboardDemo) was built with this test bundle, beside smptop.
    let demo = URL(fileURLWithPath: try SMPTopBinary.path()).deletingLastPathComponent()
      .appendingPathComponent("DashboardDemo").path
    #expect(FileManager.default.isExecutableFile(atPath: demo), "DashboardDemo is built beside smptop")
    var environment = ProcessInfo.processInfo.environment
    environment["DEMO_BIN"] = demo
    let result = try runProcess(["bash", script], environment: environment, timeout: .seconds(900))
    let passes = result.stdout.split(separator: "\n").filter { $0.hasPrefix("PASS ") }
    let failures = result.stdout.split(separator: "\n").filter { $0.hasPrefix("FAIL ") }
    #expect(result.status == 0, "\(result.stdout.suffix(2000))\n\(result.stderr.suffix(1000))")
    #expect(failures.isEmpty, "\(failures)")
    #expect(passes.count >= 28, "only \(passes.count) checks ran:\n\(result.stdout.suffix(2000))")
    #expect(result.stdout.contains("terminal e2e: \(passes.count) passed, 0 failed"))
  }
}
