import Foundation
import Glibc
import Testing

@testable import QMP

/// The client against a fake peer that replays recorded QEMU 7.2 output.
@Suite struct QMPClientTests {
  static let handshake: [FakeQMPPeer.Step] = [
    .send(Recorded.greeting), .reply(to: "qmp_capabilities", with: [Recorded.emptyReturn]),
  ]

  static func connect(_ peer: FakeQMPPeer, timeout: Duration = .seconds(5)) async throws -> QMPClient {
    try await QMPClient.connect(to: .unix(path: peer.path), timeout: timeout, commandTimeout: timeout)
  }

  @Test(arguments: [
    FakeQMPPeer.Chunking.whole,
    .random(seed: 1, maxChunk: 1, pauseMicroseconds: 0),
    .random(seed: 2, maxChunk: 5, pauseMicroseconds: 20),
    .random(seed: 3, maxChunk: 97, pauseMicroseconds: 50),
  ])
  func typedCallsDecodeRecordedRepliesWithEventsInterleaved(chunking: FakeQMPPeer.Chunking) async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "query-status", with: [Recorded.statusPrelaunch]),
        .reply(to: "cont", with: [Recorded.resume, Recorded.emptyReturn]),
        .reply(to: "query-status", with: [Recorded.statusRunning]),
        .reply(to: "stop", with: [Recorded.stop, Recorded.emptyReturn]),
        .reply(to: "query-cpus-fast", with: [Recorded.cpusFast]),
        .reply(to: "x-query-virtio", with: [Recorded.virtioList]),
        .reply(to: "x-query-virtio-status", with: [Recorded.virtioStatus]),
        .reply(to: "x-query-virtio-queue-status", with: [Recorded.virtioQueueStatus]),
        .reply(to: "human-monitor-command", with: [Recorded.infoCPUs]),
        .reply(
          to: "human-monitor-command",
          with: [Recorded.guestPanicked, Recorded.stopAfterPanic, Recorded.emptyString]),
        .reply(to: "query-status", with: [Recorded.statusGuestPanicked]),
        .reply(to: "system_reset", with: [Recorded.resetHost, Recorded.emptyReturn]),
        .reply(to: "quit", with: [Recorded.shutdownQuit, Recorded.emptyReturn]),
        .close,
      ], chunking: chunking)
    let client = try await Self.connect(peer)
    let stream = client.events()

    #expect(client.greeting.version.description == "7.2.22")
    #expect(client.greeting.version >= QEMUVersion(major: 7, minor: 2, micro: 0))
    #expect(client.greeting.version.package == "Debian 1:7.2+dfsg-7+deb12u18+b3")
    #expect(client.greeting.capabilities == ["oob"])
    #expect(try await client.queryStatus() == QMPStatus(status: .prelaunch, running: false))
    try await client.cont()
    #expect(try await client.queryStatus() == QMPStatus(status: .running, running: true))
    try await client.stop()

    let cpus = try await client.queryCPUsFast()
    #expect(cpus.map(\.cpuIndex) == [0, 1])
    #expect(cpus.map(\.threadID) == [7185, 7186])
    #expect(cpus[1].qomPath == "/machine/unattached/device[2]")
    #expect(cpus[1].props == QMPCPUProperties(socketID: 0, coreID: 1, threadID: 0))
    #expect(cpus[0].target == "x86_64")

    let devices = try await client.queryVirtio()
    #expect(
      devices == [VirtioDeviceInfo(name: "virtio-net", path: "/machine/peripheral/net0/virtio-backend")])
    let status = try await client.virtioStatus(path: devices[0].path)
    #expect(status.name == "virtio-net" && status.deviceID == 1 && status.numVQs == 3)
    #expect(status.hostFeatures.names.contains("VIRTIO_NET_F_MAC"))
    #expect(status.hostFeatures.names.contains("VIRTIO_F_VERSION_1"))
    #expect(status.hostFeatures.unknownDeviceFeatures == 1 << 40)
    #expect(status.guestFeatures.names.isEmpty && !status.started && !status.broken)
    #expect(status.deviceEndian == "little")

    let queue = try await client.virtioQueueStatus(path: devices[0].path, queue: 0)
    #expect(queue.queueIndex == 0 && queue.vringNum == 256 && queue.vringNumDefault == 256)
    #expect(queue.vringAlign == 4096 && queue.vringDesc == 0 && queue.usedIdx == 0 && queue.inuse == 0)
    #expect(queue.lastAvailIdx == 0 && queue.shadowAvailIdx == 0 && !queue.signalledUsedValid)

    let text = try await client.humanMonitorCommand("info cpus")
    #expect(text == "* CPU #0: thread_id=7185\r\n  CPU #1: thread_id=7186\r\n")
    #expect(try await client.humanMonitorCommand("o /b 0x505 1") == "")
    #expect(try await client.queryStatus().status == .guestPanicked)
    try await client.systemReset()
    try await client.quit()

    // Every event, in order, on both the poll queue and the stream.
    let expectedKinds: [QMPEvent.Kind] = [
      .resume, .stop, .guestPanicked(action: "pause", info: nil), .stop,
      .reset(guest: false, reason: "host-qmp-system-reset"), .shutdown(guest: false, reason: "host-qmp-quit"),
    ]
    #expect(client.drainEvents().map(\.kind) == expectedKinds)
    var streamed: [QMPEvent.Kind] = []
    for await event in stream { streamed.append(event.kind) }  // ends when the peer closes
    #expect(streamed == expectedKinds)
    #expect(client.closeReason?.code == .connectionClosed)

    peer.waitUntilDone()
    #expect(peer.problems.isEmpty)
    let sent = peer.commands
    #expect(sent.first?.contains(#""execute":"qmp_capabilities""#) == true)
    #expect(
      sent.contains {
        $0.hasPrefix(
          #"{"arguments":{"path":"/machine/peripheral/net0/virtio-backend","queue":0},"#
            + #""execute":"x-query-virtio-queue-status","id":"#)
      })
    // Ids are unique.
    let ids = sent.compactMap { $0.split(separator: "\"id\":").last }
    #expect(Set(ids).count == sent.count)
    #expect(sent.contains { $0.contains(#""command-line":"info cpus""#) })
  }

  @Test func repliesAreMatchedByIDWhenTheyArriveOutOfOrder() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .replyReversed(
          answers: [
            "query-status": [Recorded.statusRunning], "query-cpus-fast": [Recorded.cpusFast],
            "x-query-virtio": [Recorded.virtioList], "human-monitor-command": [Recorded.infoCPUs],
          ], between: Recorded.stop)
      ], chunking: .random(seed: 7, maxChunk: 13, pauseMicroseconds: 10))
    let client = try await Self.connect(peer)
    async let status = client.queryStatus()
    async let cpus = client.queryCPUsFast()
    async let virtio = client.queryVirtio()
    async let hmp = client.humanMonitorCommand("info cpus")
    #expect(try await status.status == .running)
    #expect(try await cpus.count == 2)
    #expect(try await virtio.first?.name == "virtio-net")
    #expect(try await hmp.hasPrefix("* CPU #0"))
    #expect(client.drainEvents().map(\.kind) == [.stop, .stop, .stop, .stop])
    #expect(peer.problems.isEmpty)
  }

  @Test func errorRepliesBecomeTypedErrorsWithTheirClass() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "no-such-command", with: [Recorded.commandNotFound]),
        .reply(to: "x-query-virtio-queue-status", with: [Recorded.invalidQueue]),
        .reply(to: "x-query-virtio-status", with: [Recorded.notVirtio]),
        .reply(to: "device_del", with: [Recorded.deviceNotFound]),
        .reply(to: "query-status", with: [Recorded.statusPaused]),
      ])
    let client = try await Self.connect(peer)

    let notFound = await #expect(throws: QMPError.self) { try await client.execute("no-such-command") }
    #expect(notFound?.code == .commandFailed)
    #expect(notFound?.errorClass == .commandNotFound)
    #expect(notFound?.command == "no-such-command")
    #expect(notFound?.message == "The command no-such-command has not been found")

    let badQueue = await #expect(throws: QMPError.self) {
      try await client.virtioQueueStatus(path: "/machine/peripheral/net0/virtio-backend", queue: 99)
    }
    #expect(badQueue?.errorClass == .genericError && badQueue?.message == "Invalid virtqueue number 99")

    let notVirtio = await #expect(throws: QMPError.self) { try await client.virtioStatus(path: "/nope") }
    #expect(notVirtio?.errorClass == .genericError)

    let noDevice = await #expect(throws: QMPError.self) {
      try await client.execute("device_del", arguments: ["id": "nonexistent"])
    }
    #expect(noDevice?.errorClass == .deviceNotFound)
    #expect(noDevice?.description == "QMP device_del: DeviceNotFound: Device 'nonexistent' not found")

    // Error replies leave the connection usable.
    #expect(try await client.queryStatus().status == .paused)
    #expect(client.isConnected)
  }

  @Test func aPeerClosingMidMessageFailsPendingAndLaterCallsAndEndsTheStream() async throws {
    let half = String(Recorded.fill(Recorded.cpusFast, 2).prefix(60))
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "query-cpus-fast", with: [Recorded.stop, half]), .pause(milliseconds: 50), .close,
      ])
    let client = try await Self.connect(peer)
    let stream = client.events()
    let started = ContinuousClock.now
    let error = await #expect(throws: QMPError.self) { try await client.queryCPUsFast() }
    #expect(error?.code == .connectionClosed)
    #expect(error?.command == "query-cpus-fast")
    #expect(error?.message.contains("middle of a message") == true)
    #expect(ContinuousClock.now - started < .seconds(60))

    var events: [QMPEvent] = []
    for await event in stream { events.append(event) }
    #expect(events.map(\.kind) == [.stop])

    let later = await #expect(throws: QMPError.self) { try await client.queryStatus() }
    #expect(later?.code == .connectionClosed)
    #expect(!client.isConnected)
    // The queued STOP can still be taken; after that the closed connection is reported.
    #expect(try await client.nextEvent(timeout: .seconds(1))?.kind == .stop)
    await #expect(throws: QMPError.self) { _ = try await client.nextEvent(timeout: .seconds(1)) }
    // A stream made after the close ends at once.
    var late = 0
    for await _ in client.events() { late += 1 }
    #expect(late == 0)
  }

  @Test func garbageFromThePeerIsAProtocolViolation() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [.reply(to: "query-status", with: ["this is not JSON\r\n"])])
    let client = try await Self.connect(peer)
    let error = await #expect(throws: QMPError.self) { try await client.queryStatus() }
    #expect(error?.code == .protocolViolation)
    #expect(error?.message.contains("not a QMP JSON object") == true)
    let later = await #expect(throws: QMPError.self) { try await client.queryStatus() }
    #expect(later?.code == .protocolViolation)
  }

  @Test func malformedJSONInsideBalancedBracesIsAProtocolViolation() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [.reply(to: "query-status", with: [#"{"return": nope, "id": @ID@}"# + "\r\n"])])
    let client = try await Self.connect(peer)
    let error = await #expect(throws: QMPError.self) { try await client.queryStatus() }
    #expect(error?.code == .protocolViolation)
    #expect(error?.message.contains("malformed JSON") == true)
  }

  @Test func undecodableMessagesAreDroppedAndCountedWithoutClosing() async throws {
    // QEMU prints doubles with %.17g: a statistic can arrive as `inf` or `nan`, which is not
    // JSON. One such reply fails its own call; one such event is dropped; nothing else closes.
    let nanEvent =
      #"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "data": {"v": nan}}"# + "\r\n"
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "query-status", with: [nanEvent, #"{"return": {"rate": inf}, "id": @ID@}"# + "\r\n"]),
        .reply(to: "query-status", with: [Recorded.statusRunning]),
        .reply(to: "stop", with: [Recorded.stop, Recorded.emptyReturn]),
      ])
    let client = try await Self.connect(peer)
    let error = await #expect(throws: QMPError.self) { try await client.queryStatus() }
    #expect(error?.code == .protocolViolation)
    #expect(error?.message.contains("malformed JSON") == true)
    #expect(client.isConnected)
    #expect(try await client.queryStatus() == QMPStatus(status: .running, running: true))
    try await client.stop()
    #expect(client.undecodableMessages == 2)
    #expect(client.isConnected)
  }

  @Test func aGdbstubInsteadOfQMPFailsToConnect() async throws {
    let peer = try FakeQMPPeer(steps: [.send("+$T02thread:p01.01;#c5"), .pause(milliseconds: 200)])
    let error = await #expect(throws: QMPError.self) { _ = try await Self.connect(peer) }
    #expect(error?.code == .protocolViolation)
  }

  @Test func aReplyBeforeTheGreetingIsAProtocolViolation() async throws {
    let peer = try FakeQMPPeer(steps: [
      .send(Recorded.fill(Recorded.emptyReturn, 1)), .pause(milliseconds: 200),
    ])
    let error = await #expect(throws: QMPError.self) { _ = try await Self.connect(peer) }
    #expect(error?.code == .protocolViolation)
    #expect(error?.message.contains("greeting") == true)
  }

  @Test func noGreetingTimesOut() async throws {
    let peer = try FakeQMPPeer(steps: [.pause(milliseconds: 1500)])
    let started = ContinuousClock.now
    let error = await #expect(throws: QMPError.self) {
      _ = try await Self.connect(peer, timeout: .milliseconds(300))
    }
    #expect(error?.code == .timedOut)
    // Generous bound: in a full `swift test` on 2 cores, blocking tests elsewhere kept the
    // cooperative pool busy for ~15 s. Without the greeting timeout this would wait for the
    // peer's 120 s patience, and end with .connectionClosed rather than .timedOut.
    #expect(ContinuousClock.now - started < .seconds(60))
  }

  @Test func cancellingAConnectThatGetsNoGreetingEndsIt() async throws {
    let peer = try FakeQMPPeer(steps: [.pause(milliseconds: 3000)])
    let task = Task { try await QMPClient.connect(to: .unix(path: peer.path), timeout: .seconds(100)) }
    try await Task.sleep(for: .milliseconds(200))
    let started = ContinuousClock.now
    task.cancel()
    let result = await task.result
    #expect((result.failureValue as? QMPError)?.code == .cancelled)
    #expect(ContinuousClock.now - started < .seconds(60))  // long before the 100 s timeout
  }

  @Test func aCommandWithoutReplyTimesOutAndTheLateReplyIsDropped() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "query-status", with: []), .pause(milliseconds: 400),
        .send(Recorded.fill(Recorded.statusRunning, 2)),
        .reply(to: "query-status", with: [Recorded.statusPaused]),
      ])
    let client = try await Self.connect(peer)
    let started = ContinuousClock.now
    let error = await #expect(throws: QMPError.self) {
      try await client.execute("query-status", timeout: .milliseconds(150))
    }
    let waited = ContinuousClock.now - started
    #expect(error?.code == .timedOut)
    #expect(waited >= .milliseconds(150) && waited < .seconds(60))
    // The late reply (id 2) matches nothing; the next call gets its own answer.
    #expect(try await client.queryStatus().status == .paused)
    #expect(client.counters.unmatchedReplies == 1)
  }

  @Test func aCancelledCallReturnsPromptly() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [.reply(to: "query-status", with: []), .pause(milliseconds: 1000)])
    let client = try await Self.connect(peer)
    let task = Task { try await client.queryStatus() }
    try await Task.sleep(for: .milliseconds(100))
    let started = ContinuousClock.now
    task.cancel()
    let result = await task.result
    #expect(ContinuousClock.now - started < .seconds(60))
    #expect((result.failureValue as? QMPError)?.code == .cancelled)
  }

  @Test func nextEventWaitsTimesOutAndKeepsOrder() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [
        .reply(to: "query-status", with: [Recorded.statusRunning]), .pause(milliseconds: 100),
        .send(Recorded.stop + Recorded.resume + Recorded.shutdownSignal), .pause(milliseconds: 100), .close,
      ])
    let client = try await Self.connect(peer)
    // The peer sends nothing until it has answered query-status.
    #expect(try await client.nextEvent(timeout: .milliseconds(20)) == nil)
    #expect(try await client.queryStatus().running)
    #expect(try await client.nextEvent(timeout: .seconds(5))?.kind == .stop)
    #expect(try await client.nextEvent(timeout: .seconds(5))?.kind == .resume)
    let shutdown = try await client.nextEvent(timeout: .seconds(5))
    #expect(shutdown?.kind == .shutdown(guest: false, reason: "host-signal"))
    #expect(shutdown?.timestamp.seconds == 1_795_708_999)
    let closed = await #expect(throws: QMPError.self) { _ = try await client.nextEvent(timeout: .seconds(5)) }
    #expect(closed?.code == .connectionClosed)
  }

  @Test func closeFailsPendingCallsAndIsIdempotent() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [.reply(to: "query-status", with: []), .pause(milliseconds: 1000)])
    let client = try await Self.connect(peer)
    let task = Task { try await client.queryStatus() }
    try await Task.sleep(for: .milliseconds(100))
    client.close()
    client.close()
    let result = await task.result
    #expect((result.failureValue as? QMPError)?.code == .connectionClosed)
    #expect(client.closeReason?.message.contains("closed by the client") == true)
  }

  @Test func connectingToNothingIsAClearError() async throws {
    let error = await #expect(throws: QMPError.self) {
      _ = try await QMPClient.connect(to: "/nonexistent/dir/qmp.sock", timeout: .seconds(1))
    }
    #expect(error?.code == .connectFailed)
    #expect(error?.errno == ENOENT)
  }

  @Test func aQuitWhoseReplyIsLostToTheCloseStillSucceeds() async throws {
    let peer = try FakeQMPPeer(
      steps: Self.handshake + [.reply(to: "quit", with: [Recorded.shutdownQuit]), .close])
    let client = try await Self.connect(peer)
    try await client.quit()
    #expect(client.drainEvents().first?.kind == .shutdown(guest: false, reason: "host-qmp-quit"))
  }
}

extension Result {
  var failureValue: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}
