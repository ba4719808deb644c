import Foundation
import QEMULaunch
import QMP
import Testing

/// The real smptop binary in a real terminal (tmux) against the real guest in real QEMU.
@Suite(.serialized) struct DashboardEndToEndTests {
  /// A private tmux server running one command.
  final class Tmux {
    let socket = "smptop-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init(command: String, width: Int = 120, height: Int = 32) throws {
      try run(["new-session", "-d", "-s", "e2e", "-x", String(width), "-y", String(height), command])
    }

    deinit { _ = try? run(["kill-server"]) }

    @discardableResult
    func run(_ args: [String]) throws -> String {
      try runCommand(["tmux", "-f", "/dev/null", "-L", socket] + args, timeout: .seconds(10)).output
    }

    func screen() -> String { (try? run(["capture-pane", "-p", "-t", "e2e"])) ?? "" }

    func keys(_ keys: String...) throws { try run(["send-keys", "-t", "e2e"] + keys) }

    /// Polls the screen until `condition` holds.
    func waitFor(_ what: String, timeout: Duration = .seconds(30), _ condition: (String) -> Bool) async throws
      -> String
    {
      let deadline = ContinuousClock.now + timeout
      var last = ""
      while ContinuousClock.now < deadline {
        last = screen()
        if condition(last) { return last }
        try await Task.sleep(for: .milliseconds(100))
      }
      throw HarnessError("timed out waiting for \(what); screen:\n\(last)")
    }
  }

  /// The smptop binary `swift test` built next to the test bundle.
  static func smptopBinary() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = dir.appendingPathComponent("smptop").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    throw HarnessError("smptop binary not found near \(CommandLine.arguments[0])")
  }

  /// The lcpu rows of the lcpus pane: index → (state, RIP column).
  static func rows(_ screen: String) -> [Int: (state: String, rip: String)] {
    var result: [Int: (String, String)] = [:]
    for line in screen.split(separator: "\n") {
      let fields = line.split(separator: " ", omittingEmptySubsequences: true)
      guard fields.count > 6, let index = Int(fields[0]), Int(fields[1]) != nil,
        ["IDLE", "BUSY", "HALTED", "INIT", "OFFLINE"].contains(String(fields[2]))
      else { continue }
      result[index] = (String(fields[2]), String(fields[fields.count - 1]))
    }
    return result
  }

  @Test func liveNumbersPauseStepAndQuitRestoringTheTerminal() async throws {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 4
    config.kernel = kernel
    config.secondQMP = true
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    // A second QMP monitor: the test's own view of the run state, independent of smptop.
    let monitor = try await QMPClient.connect(to: try #require(qemu.secondQMPSocketPath))
    defer { monitor.close() }
    let smptop = try Self.smptopBinary()
    let command =
      "LANG=C.UTF-8 \(smptop) attach --gdb \(qemu.gdbSocketPath ?? "") --qmp \(qemu.qmpSocketPath ?? "")"
      + " --kernel \(kernel) --memory-file \(qemu.memoryFilePath ?? "") --interval 0.2"
      + "; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; sleep 60"
    let tmux = try Tmux(command: command)

    // Live numbers that change: the uptime and the due-in column move between frames.
    let first = try await tmux.waitFor("the lcpus pane with 4 lcpus") { Self.rows($0).count == 4 }
    #expect(first.contains("live shared RAM"))
    let second = try await tmux.waitFor("the numbers to change", timeout: .seconds(10)) {
      Self.rows($0).count == 4 && $0 != first
    }
    #expect(Self.rows(second).values.allSatisfy { ["IDLE", "BUSY"].contains($0.state) })

    // space pauses: smptop's own header and QEMU (through the sockets smptop is not using) agree.
    var paused = ""
    var stepped = false
    for _ in 0..<20 where !stepped {
      try tmux.keys("Space")
      paused = try await tmux.waitFor("the paused header") {
        $0.contains("│ paused │") || $0.contains("│ stopped (gdbstub) │")
      }
      #expect(paused.contains("gdbstub, VM stopped") || paused.contains("paused"))
      let status = try await monitor.queryStatus()
      #expect(!status.running, "QMP must say the VM is stopped, not \(status.status)")
      // Pick an lcpu caught running code (BUSY): halted ones cannot be stepped.
      let rows = try await tmux.waitFor("stopped rows") {
        $0.contains("RIP (stopped)") && Self.rows($0).count == 4
      }
      guard let busy = Self.rows(rows).first(where: { $0.value.state == "BUSY" }) else {
        try tmux.keys("Space")  // resume and try again
        _ = try await tmux.waitFor("running again") { $0.contains("│ running │") }
        continue
      }
      try tmux.keys("Home")
      for _ in 0..<busy.key { try tmux.keys("Down") }
      try await Task.sleep(for: .milliseconds(300))
      let before = Self.rows(tmux.screen())
      try tmux.keys("s")
      let after = try await tmux.waitFor("lcpu \(busy.key)'s RIP to move") {
        let now = Self.rows($0)
        return now.count == 4 && now[busy.key]?.rip != before[busy.key]?.rip
      }
      for (index, row) in Self.rows(after) where index != busy.key {
        #expect(row.rip == before[index]?.rip, "lcpu \(index) must not move while lcpu \(busy.key) steps")
      }
      // The step's result replaces "stepping lcpu N..." on the status line; it is not a problem.
      let result = try await tmux.waitFor("the step's result") { $0.contains("stepped lcpu \(busy.key) to ") }
      #expect(!result.contains("stepping lcpu"))
      #expect(!result.contains("problem: stepped"))
      stepped = true
    }
    #expect(stepped, "never caught an lcpu running code to step")

    // q quits with status 0 and the terminal back in cooked mode (icanon, echo).
    try tmux.keys("q")
    // EXIT= is printed first, the stty modes on the next line: wait for both.
    let end = try await tmux.waitFor("smptop to exit and stty to report") {
      $0.contains("EXIT=") && $0.contains("canon")
    }
    #expect(end.contains("EXIT=0"))
    #expect(end.contains("icanon") && !end.contains("-icanon"))
    #expect(end.contains("echo") && !end.contains("-echo"))
    // smptop left the VM as the user left it: stopped after the step, QEMU still alive.
    #expect(qemu.isRunning)
    #expect(try await monitor.queryStatus().running == false)
  }
}
