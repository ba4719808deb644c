import Foundation
import QEMULaunch
import QMP
import Testing

/// `smptop profile` against guests without the inspection ABI: sampled by pausing the VM
/// through the gdbstub, said so on standard error and in the JSON, and the VM left running.
/// QEMU's own view comes from a second QMP monitor smptop does not use.
@Suite(.serialized) struct PausingProfileCommandTests {
  /// A firmware-only VM (no kernel: any x86_64 guest without the ABI looks like this) with a
  /// second QMP monitor, and that monitor.
  static func firmwareVM(smp: Int = 4) async throws -> (QEMUInstance, QMPClient) {
    var config = QEMUConfiguration()
    config.smp = smp
    config.memoryMiB = 64
    config.secondQMP = true
    let qemu = try QEMUInstance.launch(config)
    do {
      let monitor = try await QMPClient.connect(to: try #require(qemu.secondQMPSocketPath))
      return (qemu, monitor)
    } catch {
      qemu.shutdown()
      throw error
    }
  }

  /// The target options of a launched QEMU for a guest without the ABI (gdbstub and QMP only).
  static func genericTarget(_ qemu: QEMUInstance) -> [String] {
    ["--gdb", qemu.gdbSocketPath ?? "", "--qmp", qemu.qmpSocketPath ?? ""]
  }

  /// The pause count, median and p90 of the summary line
  /// (`generic guest: sampled by pausing the VM N times (median pause X µs, p90 Y µs)`).
  static func pauses(_ stderr: String) -> (count: Int, median: Double, p90: Double)? {
    guard let range = stderr.range(of: "generic guest: sampled by pausing the VM ") else { return nil }
    let words = stderr[range.upperBound...].split(whereSeparator: { " (),\n".contains($0) })
    guard words.count > 6, let count = Int(words[0]), words[1] == "times", words[2] == "median",
      words[3] == "pause", let median = Double(words[4]), words[6] == "p90", let p90 = Double(words[7])
    else { return nil }
    return (count, median, p90)
  }

  /// How many QMP events called `name` the monitor has queued.
  static func count(_ name: String, in monitor: QMPClient) -> Int {
    monitor.drainEvents().filter { $0.name == name }.count
  }

  @Test func aFirmwareOnlyGuestIsSampledByPausingAndLeftRunning() async throws {
    let (qemu, monitor) = try await Self.firmwareVM(smp: 4)
    defer {
      monitor.close()
      qemu.shutdown()
    }
    let dir = NSTemporaryDirectory() + "smptop-pausing-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let out = dir + "/generic.folded"
    _ = monitor.drainEvents()
    let run = try SMPTopBinary.run(
      ["profile"] + Self.genericTarget(qemu) + ["--seconds", "1", "--rate", "20", "--out", out, "--per-lcpu"])
    #expect(run.status == 0, "\(run.stderr)")
    let text = try String(contentsOfFile: out, encoding: .utf8)
    let stacks = try #require(ProfileCommandTests.parseFolded(text), "every line is `frames count`:\n\(text)")
    let (samples, periods, lost) = try #require(ProfileCommandTests.reported(run.stderr), "\(run.stderr)")
    let pauses = try #require(Self.pauses(run.stderr), "the summary says pausing:\n\(run.stderr)")
    #expect(run.stderr.contains("and once each to attach and detach the gdbstub"), "\(run.stderr)")
    // Every round stopped the running VM once and sampled all four vCPUs.
    #expect(pauses.count >= 5, "20 Hz for a second: \(pauses.count) rounds")
    #expect(samples == pauses.count * 4, "\(samples) samples in \(pauses.count) rounds of 4 vCPUs")
    #expect(periods == samples && lost == 0)
    #expect(stacks.reduce(0) { $0 + $1.count } == samples, "the counts add up to the samples")
    #expect(pauses.median > 0 && pauses.median <= pauses.p90)
    // One stack per vCPU prefix; without symbols every non-idle address sits under [unknown].
    #expect(Set(stacks.map(\.frames[0])) == ["lcpu0", "lcpu1", "lcpu2", "lcpu3"], "\(text)")
    for s in stacks where s.frames[1] != "idle" {
      #expect(s.frames[1] == "[unknown]" && s.frames.dropFirst(2).allSatisfy { $0.hasPrefix("0x") }, "\(s)")
    }
    // QEMU itself (the second monitor): one STOP per round, one for the attach and one for the
    // detach (QEMU 7.2 stops the VM for any byte its stub receives), and running now.
    let stops = Self.count("STOP", in: monitor)
    #expect(
      stops == pauses.count + 2,
      "QMP saw \(stops) STOP events for \(pauses.count) rounds, the attach and the detach")
    let status = try await monitor.queryStatus()
    #expect(status.running, "QMP says \(status.status) after the command")

    // --json: the method, the pauses, and totals that agree with the rounds.
    let json = try SMPTopBinary.run(
      ["profile"] + Self.genericTarget(qemu) + ["--seconds", "0.5", "--rate", "10", "--out", "-", "--json"])
    #expect(json.status == 0, "\(json.stderr)")
    let object = try #require(try JSON.parse(json.stdout) as? [String: Any], "\(json.stdout)")
    #expect(object["method"] as? String == "gdbstub-pause")
    let summary = try #require(object["pauses"] as? [String: Any])
    let rounds = try #require(summary["count"] as? Int)
    #expect(rounds >= 2 && object["samples"] as? Int == rounds * 4, "\(json.stdout)")
    #expect(Self.pauses(json.stderr)?.count == rounds, "\(json.stderr)")
    #expect((object["lcpus"] as? [[String: Any]])?.count == 4)
    #expect(try await monitor.queryStatus().running)
  }

  /// Starts `smptop profile` sampling `qemu` by pausing (50 Hz, for up to a minute) and returns
  /// once `monitor` has seen `rounds` of its pauses (QMP STOP events).
  static func sampling(_ qemu: QEMUInstance, _ monitor: QMPClient, rounds: Int) async throws
    -> BackgroundProcess
  {
    let smptop = try BackgroundProcess(
      [try SMPTopBinary.path(), "profile"] + genericTarget(qemu) + [
        "--seconds", "60", "--rate", "50", "--out", "-",
      ])
    var stops = 0
    let deadline = ContinuousClock.now + .seconds(30)
    while stops < rounds && ContinuousClock.now < deadline {
      if let event = try await monitor.nextEvent(timeout: .seconds(1)), event.name == "STOP" { stops += 1 }
    }
    guard stops >= rounds else {
      smptop.signal(SIGKILL)
      throw CommandTestError("smptop never paused the VM \(rounds) times: \(smptop.stderr())")
    }
    return smptop
  }

  @Test func aVMPausedBeforehandIsSampledOnceAndStaysPaused() async throws {
    let (qemu, monitor) = try await Self.firmwareVM(smp: 2)
    defer {
      monitor.close()
      qemu.shutdown()
    }
    try await monitor.stop()
    _ = monitor.drainEvents()
    let run = try SMPTopBinary.run(
      ["profile"] + Self.genericTarget(qemu) + ["--seconds", "1", "--out", "-", "--per-lcpu"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("the VM was paused: sampled it once and left it paused"), "\(run.stderr)")
    #expect(Self.pauses(run.stderr)?.count == 0, "\(run.stderr)")
    let stacks = try #require(ProfileCommandTests.parseFolded(run.stdout))
    #expect(stacks.reduce(0) { $0 + $1.count } == 2, "one sample per vCPU:\n\(run.stdout)")
    let status = try await monitor.queryStatus()
    #expect(!status.running, "QMP says \(status.status): the user's pause must stay")
    #expect(Self.count("RESUME", in: monitor) == 0)
  }

  @Test func anInterruptEndsTheSamplingWithTheVMRunning() async throws {
    let (qemu, monitor) = try await Self.firmwareVM(smp: 2)
    defer {
      monitor.close()
      qemu.shutdown()
    }
    // Some rounds (QMP STOP events), then an interrupt as Ctrl-C would send it.
    let smptop = try await Self.sampling(qemu, monitor, rounds: 5)
    defer { smptop.signal(SIGKILL) }
    smptop.signal(SIGINT)
    let status = try #require(smptop.wait(timeout: .seconds(20)), "smptop did not end after SIGINT")
    #expect(status == 0, "\(smptop.stderr())")
    #expect(Self.pauses(smptop.stderr()) != nil, "\(smptop.stderr())")
    #expect(try await monitor.queryStatus().running, "the VM runs after the interrupt")
  }

  @Test func aVMThatVanishesMidRunIsAClearErrorNotAHang() async throws {
    let (qemu, monitor) = try await Self.firmwareVM(smp: 2)
    defer {
      monitor.close()
      qemu.shutdown()
    }
    let smptop = try await Self.sampling(qemu, monitor, rounds: 3)
    defer { smptop.signal(SIGKILL) }
    qemu.kill()
    let status = try #require(smptop.wait(timeout: .seconds(20)), "smptop hung after QEMU died")
    #expect(status != 0)
    let stderr = smptop.stderr()
    #expect(stderr.contains("gdbstub") || stderr.contains("QMP"), "\(stderr)")
    #expect(!stderr.contains("Fatal error"), "\(stderr)")
  }

  @Test func theABIGuestStillUsesItsRingsAndIsNeverPaused() async throws {
    var config = QEMUConfiguration()
    config.smp = 2
    config.kernel = try GuestKernel.build()
    config.append = "prof_hz=1000"
    config.secondQMP = true
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    let monitor = try await QMPClient.connect(to: try #require(qemu.secondQMPSocketPath))
    defer { monitor.close() }
    let target = [
      "--gdb", qemu.gdbSocketPath ?? "", "--qmp", qemu.qmpSocketPath ?? "", "--kernel", config.kernel ?? "",
      "--memory-file", qemu.memoryFilePath ?? "",
    ]
    // Until the guest publishes its ABI root and starts sampling, the command says so: ask again.
    var run = try SMPTopBinary.run(["profile"] + target + ["--seconds", "0.2", "--out", "-", "--json"])
    for _ in 0..<60 where run.status != 0 {
      try await Task.sleep(for: .milliseconds(500))
      run = try SMPTopBinary.run(["profile"] + target + ["--seconds", "0.2", "--out", "-", "--json"])
    }
    try #require(run.status == 0, "\(run.stderr)")
    _ = monitor.drainEvents()
    run = try SMPTopBinary.run(["profile"] + target + ["--seconds", "1", "--out", "-", "--json"])
    #expect(run.status == 0, "\(run.stderr)")
    let object = try #require(try JSON.parse(run.stdout) as? [String: Any], "\(run.stdout)")
    #expect(object["method"] as? String == "guest-rings")
    #expect(object["pauses"] == nil)
    #expect((object["samples"] as? Int ?? 0) > 100)
    #expect(!run.stderr.contains("pausing"), "\(run.stderr)")
    let events = monitor.drainEvents().map(\.name)
    #expect(!events.contains("STOP"), "QMP saw \(events) while the rings were drained")
    #expect(try await monitor.queryStatus().running)
  }
}
