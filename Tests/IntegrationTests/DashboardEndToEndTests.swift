import Foundation
import Inspector
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

    /// Polls the screen until `condition` holds, and still holds 50 ms later: the screen is
    /// that second capture. tmux can be captured while it applies a frame, and right after a
    /// pane switch such a capture shows the new pane's first lines over the old pane's rest.
    func waitFor(_ what: String, timeout: Duration = .seconds(30), _ condition: (String) -> Bool) async throws
      -> String
    {
      let deadline = ContinuousClock.now + timeout
      var last = ""
      while ContinuousClock.now < deadline {
        last = screen()
        if condition(last) {
          try await Task.sleep(for: .milliseconds(50))
          last = screen()
          if condition(last) { return last }
        }
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
      // The index carries the marker column when a record was changing while read ("1~").
      guard fields.count > 6, let index = Int(fields[0].trimmingCharacters(in: ["~"])), Int(fields[1]) != nil,
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
    let watched = try await WatchedQEMU.launch(config)
    defer { watched.shutdown() }
    let (qemu, monitor) = (watched.qemu, watched.monitor)
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
      // Pick an lcpu caught running code (BUSY): its RIP moves by one instruction, where a halted
      // lcpu would step into whatever interrupt wakes it (StepTests covers that).
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
      // The step's result (the new RIP as symbol+offset) replaces "stepping lcpu N..." on the
      // status line; it is not a problem. The RIP column shows source lines, which one
      // instruction may not change, so the row is compared only for the other lcpus.
      let result = try await tmux.waitFor("the step's result") { $0.contains("stepped lcpu \(busy.key) to ") }
      let after = Self.rows(result)
      #expect(after.count == 4)
      for (index, row) in after where index != busy.key {
        #expect(row.rip == before[index]?.rip, "lcpu \(index) must not move while lcpu \(busy.key) steps")
      }
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

  /// A number as the dashboard prints it: `9.8k`, `1.2M`, `84K` (binary for byte sizes,
  /// decimal for counts), `0B`, `-`; nil when the cell holds no number.
  static func number(_ cell: String, bytes: Bool = false) -> Double? {
    var text = cell
    if text.hasSuffix("B") { text.removeLast() }
    let scale: [Character: Double] =
      bytes ? ["K": 1024, "M": 1_048_576, "G": 1_073_741_824] : ["k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9]
    if let last = text.last, let factor = scale[last] {
      return Double(text.dropLast()).map { $0 * factor }
    }
    return Double(text)
  }

  /// The cell of a right-aligned column: the word in `row` that ends where `name` ends in
  /// `header` (columns are placed by character cell, so this follows the dashboard's layout).
  static func cell(_ name: String, header: String, row: String) -> String? {
    let head = Array(header)
    let line = Array(row)
    let word = Array(name)
    var end: Int?
    var i = 0
    while i + word.count <= head.count {
      let before = i == 0 || head[i - 1] == " " || head[i - 1] == "↑" || head[i - 1] == "↓"
      let after = i + word.count == head.count || head[i + word.count] == " "
      if before, after, Array(head[i..<i + word.count]) == word {
        end = i + word.count
        break
      }
      i += 1
    }
    guard let end, end <= line.count, end > 0, line[end - 1] != " " else { return nil }
    var start = end - 1
    while start > 0, line[start - 1] != " " { start -= 1 }
    return String(line[start..<end])
  }

  /// The first line of `screen` that contains every word in `words` (a pane's column header).
  static func header(_ screen: String, _ words: String...) -> String? {
    screen.split(separator: "\n").map(String.init).first { line in words.allSatisfy { line.contains($0) } }
  }

  /// Every pane of the dashboard checked against the live guest: the workload's locks with
  /// rates, allocator orders that add up, a timer row per lcpu, and virtio packets moving.
  @Test func everyPaneAgreesWithTheLiveGuest() async throws {
    let kernel = try GuestKernel.build()
    let port = UInt16(21_000 + Int(getpid() % 20_000))
    var config = QEMUConfiguration()
    config.smp = 4
    config.kernel = kernel
    config.extraArguments = [
      "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,id=nic0",
      "-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:\(port)-:7",
    ]
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    // The test's own reader: shared RAM only, so it never stops the VM or takes smptop's sockets.
    var options = TargetOptions()
    options.kernel = kernel
    options.memoryFile = qemu.memoryFilePath
    let guest = try await Target.open(options)
    let smptop = try Self.smptopBinary()
    let tmux = try Tmux(
      command:
        "LANG=C.UTF-8 \(smptop) attach --gdb \(qemu.gdbSocketPath ?? "") --qmp \(qemu.qmpSocketPath ?? "")"
        + " --kernel \(kernel) --memory-file \(qemu.memoryFilePath ?? "") --interval 0.2; sleep 60",
      width: 200, height: 50)
    _ = try await tmux.waitFor("the lcpus pane") { Self.rows($0).count == 4 }

    // 2 locks: every lock the workload takes is listed with a positive acquisition rate.
    let workLocks = try guest.liveSnapshot().locks.map(\.name).filter { $0.hasPrefix("work.") }
    try #require(workLocks.count >= 5, "the default workload's locks: \(workLocks)")
    try tmux.keys("2")
    let locks = try await tmux.waitFor("every work.* lock with a rate") { screen in
      guard let header = Self.header(screen, "NAME", "ACQ/s") else { return false }
      return workLocks.allSatisfy { name in
        screen.split(separator: "\n").contains { line in
          line.split(separator: " ").first.map(String.init) == name
            && (Self.cell("ACQ/s", header: header, row: String(line)).flatMap { Self.number($0) } ?? 0) > 0
        }
      }
    }
    #expect(locks.contains("threads"))

    // 3 alloc: each order's used and free bytes are its block counts times its block size,
    // the free column sums to the header's total, and the managed pages are the guest's own.
    try tmux.keys("3")
    let alloc = try await tmux.waitFor("the alloc pane") {
      Self.header($0, "ORDER", "BLOCK", "ALLOCS") != nil
    }
    let managed = try #require(try guest.liveSnapshot().allocator?.pagesManaged)
    #expect(alloc.contains("(\(managed) pages)"), "managed pages \(managed) not on the pane")
    let allocHeader = try #require(Self.header(alloc, "ORDER", "BLOCK", "ALLOCS"))
    var freeSum = 0.0
    var orders = 0
    for line in alloc.split(separator: "\n").map(String.init) {
      guard let match = line.firstMatch(of: /\[[^\]]*?(\d+)\/(\d+)\]/),
        let used = Double(match.1), let free = Double(match.2),
        let block = Self.cell("BLOCK", header: allocHeader, row: line).flatMap({
          Self.number($0, bytes: true)
        }),
        let freeBytes = Self.cell("FREE", header: allocHeader, row: line).flatMap({
          Self.number($0, bytes: true)
        }),
        let usedBytes = Self.cell("USED", header: allocHeader, row: line).flatMap({
          Self.number($0, bytes: true)
        })
      else { continue }
      orders += 1
      // The pane rounds to three significant digits.
      #expect(abs(freeBytes - free * block) <= 0.02 * free * block, "order row: \(line)")
      #expect(abs(usedBytes - used * block) <= 0.02 * used * block, "order row: \(line)")
      freeSum += freeBytes
    }
    #expect(orders == 11, "orders 0...10 on the pane:\n\(alloc)")
    let freeTotal = try #require(
      alloc.firstMatch(of: #/free ([0-9.]+[KMG]?B?) /#).flatMap { Self.number(String($0.1), bytes: true) })
    #expect(abs(freeSum - freeTotal) <= 0.03 * freeTotal, "orders' free \(freeSum) vs header \(freeTotal)")

    // 5 timers: one row per lcpu, its fired count between the guest's before and after.
    try tmux.keys("5")
    _ = try await tmux.waitFor("the timers pane") { Self.header($0, "PEND", "FIRED") != nil }
    let firedBefore = try guest.liveSnapshot().timerQueues.map(\.fired)
    // Two screen changes after that read: the second frame was sampled after the first was
    // drawn, so after the read.
    for _ in 0..<2 {
      let shown = tmux.screen()
      _ = try await tmux.waitFor("a new frame") { $0 != shown }
    }
    let timers = try await tmux.waitFor("a timer row per lcpu") { screen in
      guard let header = Self.header(screen, "PEND", "FIRED") else { return false }
      return Set(
        screen.split(separator: "\n").compactMap { line -> Int? in
          guard Self.cell("PEND", header: header, row: String(line)).flatMap({ Int($0) }) != nil else {
            return nil
          }
          return line.split(separator: " ").first.flatMap { Int($0) }
        }) == [0, 1, 2, 3]
    }
    let firedAfter = try guest.liveSnapshot().timerQueues.map(\.fired)
    let timerHeader = try #require(Self.header(timers, "PEND", "FIRED"))
    for line in timers.split(separator: "\n").map(String.init) {
      guard Self.cell("PEND", header: timerHeader, row: line).flatMap({ Int($0) }) != nil,
        let lcpu = line.split(separator: " ").first.flatMap({ Int($0) }), lcpu < 4,
        let fired = Self.cell("FIRED", header: timerHeader, row: line).flatMap({ Self.number($0) })
      else { continue }
      #expect(
        fired >= Double(firedBefore[lcpu]) * 0.95 && fired <= Double(firedAfter[lcpu]) * 1.05,
        "lcpu \(lcpu) fired \(fired), guest \(firedBefore[lcpu])…\(firedAfter[lcpu])")
    }

    // 4 virtio: UDP sent to the forwarded port comes back, and the rx and tx rows count it.
    try tmux.keys("4")
    let virtio = try await tmux.waitFor("the virtio rows") { Self.header($0, "QUEUE", "PACKETS") != nil }
    let virtioHeader = try #require(Self.header(virtio, "QUEUE", "PACKETS"))
    func packets(_ screen: String, _ role: String) -> Double? {
      screen.split(separator: "\n").map(String.init).first {
        $0.split(separator: " ").dropFirst().first == Substring(role)
      }
      .flatMap { Self.cell("PACKETS", header: virtioHeader, row: $0) }.flatMap { Self.number($0) }
    }
    let rxBefore = try #require(packets(virtio, "rx"))
    let txBefore = try #require(packets(virtio, "tx"))
    let echoed = try UDPEcho.exchange(port: port, count: 20)
    #expect(echoed > 0, "the guest echoed nothing")
    let moved = try await tmux.waitFor("rx and tx packets to move by \(echoed)") { screen in
      (packets(screen, "rx") ?? 0) >= rxBefore + Double(echoed)
        && (packets(screen, "tx") ?? 0) >= txBefore + Double(echoed)
    }
    #expect(moved.contains("link up"))

    try tmux.keys("q")
    await guest.close()
  }
}

/// A UDP client for the guest's echo service behind QEMU's user-networking forward.
enum UDPEcho {
  /// Sends `count` datagrams to 127.0.0.1:`port` one at a time and returns how many came back.
  static func exchange(port: UInt16, count: Int) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var echoed = 0
    for i in 0..<count {
      let payload = Array("smptop-echo-\(i)".utf8)
      _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      var buffer = [UInt8](repeating: 0, count: 256)
      let n = recv(fd, &buffer, buffer.count, 0)
      if n == payload.count, Array(buffer[0..<n]) == payload { echoed += 1 }
    }
    return echoed
  }
}
