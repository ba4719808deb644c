import Foundation
import Glibc
import QEMULaunch
import Testing

@testable import QMP

/// The client against the real QEMU (7.2 here and in CI), launched through QEMULaunch.
@Suite(.serialized) struct QMPIntegrationTests {
  /// A stopped 2-vCPU machine with one virtio-net device and no guest (firmware only).
  static func launch(startPaused: Bool = true, extra: [String] = [], qmp: Bool = true) throws -> QEMUInstance
  {
    var config = QEMUConfiguration()
    config.smp = 2
    config.memoryMiB = 64
    config.gdb = false
    config.sharedMemory = false
    config.debugExit = false
    config.qmp = qmp
    config.startPaused = startPaused
    config.extraArguments = ["-device", "virtio-net-pci,netdev=n0,id=net0", "-netdev", "user,id=n0"] + extra
    return try QEMUInstance.launch(config)
  }

  static func connect(_ qemu: QEMUInstance) async throws -> QMPClient {
    let path = try #require(qemu.qmpSocketPath)
    return try await QMPClient.connect(
      to: .unix(path: path), timeout: .seconds(10), commandTimeout: .seconds(10))
  }

  @Test func stopAndContChangeStatusAndEmitEvents() async throws {
    // QEMULaunch passes -no-reboot, which turns a reset into a shutdown; undo that here.
    let qemu = try Self.launch(extra: ["-action", "reboot=reset"])
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    #expect(client.greeting.version >= QEMUVersion(major: 7, minor: 2, micro: 0))
    #expect(client.greeting.capabilities.contains("oob"))

    #expect(try await client.queryStatus() == QMPStatus(status: .prelaunch, running: false))
    try await client.cont()
    #expect(try await client.nextEvent(timeout: .seconds(5))?.kind == .resume)
    #expect(try await client.queryStatus() == QMPStatus(status: .running, running: true))
    try await client.stop()
    let stop = try await client.nextEvent(timeout: .seconds(5))
    #expect(stop?.kind == .stop)
    #expect(stop?.name == "STOP")
    // Timestamps are host wall-clock time.
    let now = Date().timeIntervalSince1970
    #expect(abs((stop?.timestamp.timeIntervalSince1970 ?? 0) - now) < 60)
    #expect(try await client.queryStatus() == QMPStatus(status: .paused, running: false))
    try await client.cont()
    #expect(try await client.nextEvent(timeout: .seconds(5))?.kind == .resume)
    try await client.systemReset()
    let reset = try await client.nextEvent(timeout: .seconds(5))
    #expect(reset?.kind == .reset(guest: false, reason: "host-qmp-system-reset"))
    #expect(try await client.queryStatus().running)
  }

  @Test func queryCPUsFastListsBothVCPUsAsQEMUThreads() async throws {
    let qemu = try Self.launch()
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let cpus = try await client.queryCPUsFast()
    #expect(cpus.map(\.cpuIndex) == [0, 1])
    #expect(Set(cpus.map(\.threadID)).count == 2)
    #expect(cpus.allSatisfy { $0.target == "x86_64" && $0.qomPath.hasPrefix("/machine/") })
    #expect(cpus.map(\.props.coreID) == [0, 1])
    for cpu in cpus {
      // Each vCPU is a thread of the QEMU process.
      #expect(access("/proc/\(qemu.pid)/task/\(cpu.threadID)", F_OK) == 0)
    }
    let text = try await client.humanMonitorCommand("info cpus")
    #expect(text.contains("CPU #0: thread_id=\(cpus[0].threadID)"))
    #expect(text.contains("CPU #1: thread_id=\(cpus[1].threadID)"))
  }

  @Test func virtioQueriesDecodeTheNetDevice() async throws {
    let qemu = try Self.launch()
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let devices = try await client.queryVirtio()
    let net = try #require(devices.first { $0.name == "virtio-net" })
    #expect(net.path == "/machine/peripheral/net0/virtio-backend")

    let status = try await client.virtioStatus(path: net.path)
    #expect(status.name == "virtio-net")
    #expect(status.deviceID == 1)
    #expect(status.numVQs == 3)  // rx, tx, ctrl
    #expect(status.hostFeatures.names.contains("VIRTIO_NET_F_MAC"))
    #expect(status.hostFeatures.names.contains("VIRTIO_F_VERSION_1"))
    #expect(!status.started && !status.broken && !status.vmRunning)

    for index in 0..<status.numVQs {
      let queue = try await client.virtioQueueStatus(path: net.path, queue: index)
      #expect(queue.queueIndex == index)
      #expect(queue.name == "virtio-net")
      #expect(queue.vringNum > 0 && queue.vringNum == queue.vringNumDefault)
      #expect(queue.vringDesc == 0 && queue.usedIdx == 0)  // no driver has set it up
      #expect(queue.lastAvailIdx == 0)
    }
    let bad = await #expect(throws: QMPError.self) {
      try await client.virtioQueueStatus(path: net.path, queue: 99)
    }
    #expect(bad?.errorClass == .genericError)
    #expect(bad?.message.contains("99") == true)
  }

  @Test func unknownCommandsAndDevicesGiveTypedErrors() async throws {
    let qemu = try Self.launch()
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let unknown = await #expect(throws: QMPError.self) { try await client.execute("no-such-command") }
    #expect(unknown?.code == .commandFailed)
    #expect(unknown?.errorClass == .commandNotFound)
    let device = await #expect(throws: QMPError.self) {
      try await client.execute("device_del", arguments: ["id": "nonexistent"])
    }
    #expect(device?.errorClass == .deviceNotFound)
    let argument = await #expect(throws: QMPError.self) {
      try await client.execute("query-status", arguments: ["bogus": 1])
    }
    #expect(argument?.errorClass == .genericError)
    #expect(try await client.queryStatus().status == .prelaunch)  // still usable
  }

  @Test func killingQEMUFailsPendingAndLaterCallsAndEndsTheEventStream() async throws {
    let qemu = try Self.launch()
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let stream = client.events()
    let collector = Task {
      var kinds: [QMPEvent.Kind] = []
      for await event in stream { kinds.append(event.kind) }
      return kinds
    }
    try await client.cont()
    try await client.stop()

    // Freeze QEMU so a call is certainly in flight, then kill it.
    kill(qemu.pid, SIGSTOP)
    let pending = Task { try await client.queryStatus() }
    try await Task.sleep(for: .milliseconds(100))
    let started = ContinuousClock.now
    qemu.kill()
    let result = await pending.result
    #expect((result.failureValue as? QMPError)?.code == .connectionClosed)
    #expect(ContinuousClock.now - started < .seconds(60))

    // The stream ends (with the events seen before the kill).
    let kinds = await collector.value
    #expect(kinds == [.resume, .stop])
    // Every later call fails at once with the same clear error.
    for _ in 0..<3 {
      let error = await #expect(throws: QMPError.self) { try await client.cont() }
      #expect(error?.code == .connectionClosed)
      #expect(error?.message == "QEMU closed the QMP connection")
      #expect(error?.errno == nil || error?.errno == ECONNRESET)
    }
    #expect(!client.isConnected)
    _ = client.drainEvents()
    await #expect(throws: QMPError.self) { _ = try await client.nextEvent(timeout: .seconds(1)) }
  }

  @Test func quitEndsTheSessionWithAShutdownEvent() async throws {
    let qemu = try Self.launch()
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let stream = client.events()
    try await client.quit()
    var kinds: [QMPEvent.Kind] = []
    for await event in stream { kinds.append(event.kind) }
    #expect(kinds.last == .shutdown(guest: false, reason: "host-qmp-quit"))
    #expect(qemu.waitForExit(timeout: .seconds(5)) == 0)
    #expect(!client.isConnected)
  }

  @Test func manyTasksShareOneClient() async throws {
    let qemu = try Self.launch(startPaused: false)
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    let results = try await withThrowingTaskGroup(of: Int.self) { group in
      for worker in 0..<8 {
        group.addTask {
          var ok = 0
          for round in 0..<40 {
            if (worker + round) % 2 == 0 {
              if try await client.queryStatus().running { ok += 1 }
            } else {
              if try await client.queryCPUsFast().count == 2 { ok += 1 }
            }
          }
          return ok
        }
      }
      return try await group.reduce(0, +)
    }
    #expect(results == 8 * 40)
    #expect(client.counters.unmatchedReplies == 0)
  }

  @Test func tcpTransportWorks() async throws {
    // Find a free port, then let QEMU listen on it.
    let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(probe, pointer, length) == 0 ? getsockname(probe, pointer, &length) : -1
      }
    }
    let port = UInt16(bigEndian: addr.sin_port)
    close(probe)
    #expect(port != 0)

    let qemu = try Self.launch(extra: ["-qmp", "tcp:127.0.0.1:\(port),server=on,wait=off"], qmp: false)
    defer { qemu.shutdown() }
    var client: QMPClient?
    for _ in 0..<100 where client == nil {
      client = try? await QMPClient.connect(to: "127.0.0.1:\(port)", timeout: .seconds(2))
      if client == nil { try await Task.sleep(for: .milliseconds(50)) }
    }
    let connected = try #require(client)
    #expect(connected.address == .tcp(host: "127.0.0.1", port: port))
    #expect(try await connected.queryStatus().status == .prelaunch)
  }

  @Test func manyRoundTripsInARowEachGetTheirOwnAnswer() async throws {
    let qemu = try Self.launch(startPaused: false)
    defer { qemu.shutdown() }
    let client = try await Self.connect(qemu)
    var samples: [Duration] = []
    var statuses: [QMPRunState] = []
    for _ in 0..<300 {
      let started = ContinuousClock.now
      statuses.append(try await client.queryStatus().status)
      samples.append(ContinuousClock.now - started)
    }
    #expect(statuses.count == 300 && statuses.allSatisfy { $0 == .running })
    try await client.stop()
    #expect(
      try await client.queryStatus().status == .paused, "the next answer is this call's, not an old one")
    // The figure is reported, not asserted (speed is measured by `smptop bench`).
    samples.sort()
    print(
      "QMP query-status round trip over 300 calls: p10 \(samples[30]), median \(samples[150]), p90 \(samples[270])"
    )
  }
}
