import GDBRemote
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Connection behaviour against the fake QEMU 7.2 stub, including every fault it injects.
@Suite struct ConnectionTests {
  static var fast: GDBRemoteConnection.Options {
    var o = GDBRemoteConnection.Options()
    o.replyTimeout = .seconds(1)
    o.stepTimeout = .milliseconds(300)
    o.interruptTimeout = .seconds(1)
    o.acknowledgementTimeout = .milliseconds(200)
    return o
  }

  /// `fast` with room for bulk transfers: under the thread sanitizer on a loaded machine one
  /// 2 KiB `M` packet through the fake stub took over a second.
  static var patient: GDBRemoteConnection.Options {
    var o = fast
    o.replyTimeout = .seconds(15)
    return o
  }

  func withStub(
    _ configuration: FakeStub.Configuration = .init(), options: GDBRemoteConnection.Options = fast,
    handshake: Bool = true, _ body: (GDBRemoteConnection, FakeStub) throws -> Void
  ) throws {
    let stub = FakeStub(configuration)
    defer { stub.stop() }
    let connection = try GDBRemoteConnection(adoptingSocket: stub.clientDescriptor, options: options)
    defer { connection.close() }
    if handshake { try connection.handshake() }
    try body(connection, stub)
  }

  func faults(_ faults: StubFault...) -> FakeStub.Configuration {
    var c = FakeStub.Configuration()
    c.faults = faults
    return c
  }

  func expectError(
    _ code: GDBRemoteError.Code, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
  )
    -> GDBRemoteError?
  {
    do {
      try body()
      Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
      return nil
    } catch let error as GDBRemoteError {
      #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
      return error
    } catch {
      Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
      return nil
    }
  }

  static let vcpus = (0..<4).map { ThreadID.vcpu($0) }

  // MARK: Handshake

  @Test func handshakeNegotiatesAndFetchesTheTargetDescription() throws {
    try withStub { c, stub throws in
      #expect(c.usesMultiprocess)
      #expect(c.supportedFeatures["PacketSize"] == "1000")
      let target = try #require(c.targetDescription)
      #expect(target.registers.count == 66)
      #expect(target.registerBytes == 608)
      let requests = stub.requests
      #expect(requests.first == "qSupported:multiprocess+;vContSupported+")
      #expect(requests.contains("qXfer:features:read:target.xml:0,ffb"))
      #expect(requests.contains { $0.hasPrefix("qXfer:features:read:i386-64bit.xml:ffb,") })
      #expect(c.runState == .stopped)
    }
  }

  @Test func unsolicitedStopReplyBeforeTheFirstReplyIsRecorded() throws {
    var config = FakeStub.Configuration()
    config.greeting = PacketEncoder.frame("T02thread:p01.01;")
    try withStub(config) { c, _ throws in
      #expect(c.targetDescription?.registers.count == 66)
      #expect(c.stopReplies.map(\.raw) == ["T02thread:p01.01;"])
      #expect(c.statistics.unsolicitedStopReplies == 1)
      #expect(c.lastStopReply?.signal == 2)
      #expect(try c.threads() == Self.vcpus)
    }
  }

  @Test func stubThatWasRunningLosesOnlyOurSacrificialByte() throws {
    // QEMU 7.2 stops a running VM on any byte and discards it: our leading `+` is that byte.
    var config = FakeStub.Configuration()
    config.startRunning = true
    try withStub(config) { c, stub throws in
      #expect(c.targetDescription != nil)
      #expect(c.statistics.unsolicitedStopReplies == 1)
      #expect(c.statistics.retransmissions == 0)
      #expect(stub.received.first == UInt8(ascii: "+"))
    }
  }

  // MARK: Threads and registers

  @Test func threadsAndTheirHaltedState() throws {
    try withStub { c, stub throws in
      let threads = try c.threads()
      #expect(threads == Self.vcpus)
      #expect(threads.map(\.vcpuIndex) == [0, 1, 2, 3])
      let infos = try c.threadInfo(threads)
      #expect(
        infos.map(\.text) == ["CPU#0 [running]", "CPU#1 [halted ]", "CPU#2 [halted ]", "CPU#3 [halted ]"])
      #expect(infos.map(\.isHalted) == [false, true, true, true])
      #expect(stub.requests.suffix(4) == (1...4).map { "qThreadExtraInfo,p1.\($0)" })
    }
  }

  @Test func registersOfEveryVCPUInOnePipelinedRound() throws {
    try withStub { c, stub throws in
      let before = stub.requests.count
      let batch = try c.readBatch(registersOf: Self.vcpus, memory: [])
      for (i, t) in Self.vcpus.enumerated() {
        let set = try #require(try batch.registers[t]?.get())
        #expect(set.uint64("rax") == UInt64(i + 1))
        #expect(set.uint64("rip") == 0xfff0)
        #expect(set.thread == t)
      }
      #expect(
        Array(stub.requests[before...]) == ["Hgp1.1", "g", "Hgp1.2", "g", "Hgp1.3", "g", "Hgp1.4", "g"])
      // Every read leads with its own `Hg`: any stop since the last one reset QEMU's.
      _ = try c.readRegisters(of: Self.vcpus[3])
      #expect(stub.requests.suffix(2) == ["Hgp1.4", "g"])
      #expect(try c.readRegister("rip", of: Self.vcpus[3]).uint64 == 0xfff0)
      #expect(try c.readRegister(number: 0, of: Self.vcpus[2]).uint64 == 3)
      _ = expectError(.unknownRegister) { _ = try c.readRegister("nope", of: Self.vcpus[0]) }
      _ = expectError(.errorReply) { _ = try c.readRegisters(of: ThreadID(pid: 1, tid: 9)) }
    }
  }

  // MARK: Damaged streams

  @Test func corruptReplyIsAnsweredWithNakAndResent() throws {
    try withStub(faults(StubFault(prefix: "g", times: 1, kind: .corruptChecksum))) { c, stub throws in
      let set = try c.readRegisters(of: Self.vcpus[1])
      #expect(set.uint64("rax") == 2)
      #expect(c.statistics.naksSent == 1)
      #expect(c.statistics.corruptPackets == 1)
      #expect(stub.received.contains(UInt8(ascii: "-")))
    }
  }

  @Test func corruptReplyInsideAPipelineIsRepeatedOnItsOwn() throws {
    try withStub(faults(StubFault(prefix: "m1000,", times: 1, kind: .corruptChecksum))) { c, stub throws in
      let bytes = try c.readMemory(address: 0x800, count: 0x2000, physical: true)
      #expect(bytes == (0x800..<0x2800).map { QEMU72Model.memoryByte(UInt64($0)) })
      #expect(c.statistics.corruptPackets == 1)
      #expect(stub.requests.filter { $0 == "m1000,800" }.count == 2)
    }
  }

  @Test func requestRejectedByTheStubIsRetransmitted() throws {
    try withStub(faults(StubFault(prefix: "g", times: 1, kind: .nakRequest))) { c, _ throws in
      #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") == 0xfff0)
      #expect(c.statistics.retransmissions == 1)
    }
    try withStub(faults(StubFault(prefix: "g", times: 100, kind: .nakRequest))) { c, _ throws in
      let e = expectError(.checksumMismatch) { _ = try c.readRegisters(of: Self.vcpus[0]) }
      #expect(e?.sent == "\"g\"")
      #expect(c.statistics.retransmissions == c.options.maximumRetransmissions)
    }
  }

  @Test func runLengthEncodedAndEscapedRepliesDecode() throws {
    let config = faults(
      StubFault(prefix: "qXfer", times: 10, kind: .escapeEverything),
      StubFault(prefix: "g", times: 1, kind: .runLengthEncode))
    try withStub(config) { c, _ throws in
      let plain = try TargetDescriptionTests.qemuTarget()
      #expect(c.targetDescription == plain)
      let set = try c.readRegisters(of: Self.vcpus[0])
      let expected = try RegisterSet(
        thread: Self.vcpus[0], target: plain, reply: Array(QEMU72.resetRegisters.utf8))
      #expect(set.uint64("rip") == expected.uint64("rip"))
      #expect(set.uint64("cr0") == 0x6000_0010)
    }
  }

  @Test func consoleOutputInterleavedWithReplies() throws {
    let hello =
      PacketEncoder.frame("O" + hexString("Hello, ".utf8))
      + PacketEncoder.frame("O" + hexString("world\n".utf8))
    let infoCPUs = Array(QEMU72.infoCPUsStream.utf8.dropFirst())  // the stub sends the `+` itself
    let config = faults(
      StubFault(prefix: "m", times: 1, kind: .prefix(hello)),
      StubFault(prefix: "qRcmd", times: 1, kind: .replaceRaw(infoCPUs)))
    try withStub(config) { c, _ throws in
      let bytes = try c.readMemory(address: 0x10, count: 4, physical: true)
      #expect(bytes == (0x10..<0x14).map { QEMU72Model.memoryByte(UInt64($0)) })
      #expect(c.takeConsoleOutput() == "Hello, world\n")
      #expect(c.takeConsoleOutput() == "")
      let output = try c.monitorCommand("info cpus")
      #expect(output.hasPrefix("* CPU #0: thread_id=7248\r\n"))
      #expect(output.components(separatedBy: "\r\n").filter { $0.contains("CPU #") }.count == 4)
      #expect(c.statistics.consolePackets == 6)
    }
  }

  @Test func stopReplyAndGarbageBeforeAReplyAreNotTakenForIt() throws {
    let config = faults(
      StubFault(prefix: "g", times: 1, kind: .prefix(PacketEncoder.frame("T02thread:p01.01;"))),
      StubFault(prefix: "Hg", times: 1, kind: .prefix(Array("xyz\r\n".utf8))))
    try withStub(config) { c, _ throws in
      let set = try c.readRegisters(of: Self.vcpus[2])
      #expect(set.uint64("rax") == 3)
      #expect(c.stopReplies.last?.raw == "T02thread:p01.01;")
      #expect(c.statistics.garbageBytes == 5)
    }
  }

  @Test func truncatedPacketFollowedByAFullOneRecovers() throws {
    try withStub(faults(StubFault(prefix: "g", times: 1, kind: .truncateThenRestart(40)))) { c, _ throws in
      #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") == 0xfff0)
      #expect(c.statistics.corruptPackets == 1)
    }
  }

  @Test func peerClosingMidPacketIsAnErrorNotACrash() throws {
    try withStub(faults(StubFault(prefix: "g", times: 1, kind: .truncateAndClose(50)))) { c, _ throws in
      let e = expectError(.connectionClosed) { _ = try c.readRegisters(of: Self.vcpus[0]) }
      #expect(e?.message.contains("middle of a packet") == true)
      #expect(e?.sent == "\"g\"")
      #expect(c.runState == .disconnected)
      #expect(!c.isConnected)
      _ = expectError(.notConnected) { _ = try c.threads() }
      _ = expectError(.notConnected) { try c.interrupt() }
    }
  }

  @Test func oversizedReplyIsAnErrorAndTheStreamResynchronises() throws {
    var options = Self.fast
    options.maximumPacketSize = 8192
    try withStub(faults(StubFault(prefix: "m", times: 4, kind: .oversized(100_000))), options: options) {
      c, _ throws in
      let e = expectError(.packetTooLarge) { _ = try c.readMemory(address: 0, count: 16, physical: true) }
      #expect(e?.sent?.contains("m0,10") == true)
      // Repeated (the packet may have been unsolicited) until the retries run out.
      #expect(c.statistics.oversizedPackets == 1 + c.options.maximumRetransmissions)
      #expect(try c.readMemory(address: 0, count: 16, physical: true).count == 16)
    }
  }

  @Test func aRequestWithoutAckIsNeverSentAgain() throws {
    // TCP loses nothing: a missing `+` means a slow stub, and a second copy could run twice.
    try withStub(faults(StubFault(prefix: "g", times: 1, kind: .silence))) { c, stub throws in
      _ = expectError(.timeout) { _ = try c.readRegisters(of: Self.vcpus[1]) }
      #expect(c.statistics.retransmissions == 0)
      #expect(stub.requests.filter { $0 == "g" }.count == 1)
      #expect(try c.readRegisters(of: Self.vcpus[1]).uint64("rax") == 2)
    }
  }

  @Test func silentStubTimesOutWithinTheBound() throws {
    for kind in [StubFault.Kind.silence, .ackOnly] {
      try withStub(faults(StubFault(prefix: "g", times: 100, kind: kind))) { c, _ throws in
        let clock = ContinuousClock()
        let start = clock.now
        let e = expectError(.timeout) { _ = try c.readRegisters(of: Self.vcpus[0]) }
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(15), "\(elapsed)")
        #expect(e?.sent == "\"g\"")
        #expect(c.isConnected)
      }
    }
  }

  @Test func lateReplyIsNotTakenForTheNextRequestsReply() throws {
    var options = Self.fast
    options.replyTimeout = .milliseconds(300)
    try withStub(faults(StubFault(prefix: "m0,", times: 1, kind: .delay(600))), options: options) {
      c, _ throws in
      _ = expectError(.timeout) { _ = try c.readMemory(address: 0, count: 8, physical: true) }
      usleep(400_000)
      let bytes = try c.readMemory(address: 0x100, count: 8, physical: true)
      #expect(bytes == (0x100..<0x108).map { QEMU72Model.memoryByte(UInt64($0)) })
      #expect(c.statistics.strayPackets == 1)
    }
  }

  @Test func stubClosingAtOnceFailsTheHandshakeCleanly() throws {
    var config = FakeStub.Configuration()
    config.faults = [StubFault(prefix: "qSupported", times: 1, kind: .truncateAndClose(0))]
    try withStub(config, handshake: false) { c, _ throws in
      _ = expectError(.connectionClosed) { try c.handshake() }
    }
  }

  // MARK: Memory

  @Test func memoryReadsAreChunkedAtPagesAnd2048Bytes() throws {
    try withStub { c, stub throws in
      let before = stub.requests.count
      let bytes = try c.readMemory(address: 0xff0, count: 10_000, physical: true)
      #expect(bytes == (0xff0..<(0xff0 + 10_000)).map { QEMU72Model.memoryByte(UInt64($0)) })
      let requests = Array(stub.requests[before...])
      #expect(requests.first == "Qqemu.PhyMemMode:1")
      let chunks = requests.dropFirst().compactMap { r -> (UInt64, UInt64)? in
        let p = r.dropFirst().split(separator: ",")
        guard r.hasPrefix("m"), p.count == 2, let a = UInt64(p[0], radix: 16), let n = UInt64(p[1], radix: 16)
        else {
          return nil
        }
        return (a, n)
      }
      #expect(chunks.count == requests.count - 1)
      #expect(chunks.first! == (0xff0, 0x10))
      #expect(chunks.allSatisfy { $0.1 <= 0x800 && ($0.0 & ~0xfff) == (($0.0 + $0.1 - 1) & ~0xfff) })
      #expect(chunks.reduce(0) { $0 + $1.1 } == 10_000)
      // The mode is remembered.
      _ = try c.readMemory(address: 0, count: 1, physical: true)
      #expect(stub.requests.last == "m0,1")
      #expect(try c.readMemory(address: 5, count: 0).isEmpty)
    }
  }

  @Test func refusedMemoryIsATypedErrorWithTheAddress() throws {
    try withStub { c, _ throws in
      let e = expectError(.memoryFault) {
        _ = try c.readMemory(address: 0x3fff_f000, count: 0x2000, physical: false, thread: Self.vcpus[0])
      }
      #expect(e?.address == 0x4000_0000)
      #expect(e?.stubErrorNumber == 0x14)
      _ = expectError(.invalidArgument) { _ = try c.readMemory(address: UInt64.max - 2, count: 8) }
    }
  }

  @Test func writtenMemoryReadsBack() throws {
    try withStub(options: Self.patient) { c, stub throws in
      let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
      try c.writeMemory(address: 0x1ffe, bytes: data, physical: true)
      #expect(try c.readMemory(address: 0x1ffe, count: 5000, physical: true) == data)
      let writes = stub.requests.filter { $0.hasPrefix("M") }
      #expect(writes.count >= 5)
      #expect(writes.allSatisfy { $0.utf8.count < 4095 })
    }
  }

  @Test func snapshotBatchMixesRegistersAndMemory() throws {
    try withStub { c, stub throws in
      let before = stub.requests.count
      let result = try c.readBatch(
        registersOf: Self.vcpus,
        memory: [
          MemoryRange(address: 0x7000, count: 32, space: .physical),
          MemoryRange(address: 0x9000, count: 16, space: .virtual(Self.vcpus[1])),
          MemoryRange(address: 0x4000_0000, count: 16, space: .virtual(Self.vcpus[1])),
        ])
      #expect(result.registers.count == 4)
      #expect(try result.registers[Self.vcpus[3]]?.get().uint64("rax") == 4)
      #expect(try result.memory[0].get() == (0x7000..<0x7020).map { QEMU72Model.memoryByte(UInt64($0)) })
      #expect(try result.memory[1].get() == (0x9000..<0x9010).map { QEMU72Model.memoryByte(UInt64($0)) })
      guard case .failure(let e) = result.memory[2] else {
        Issue.record("the unmapped range should fail")
        return
      }
      #expect(e.code == .memoryFault && e.address == 0x4000_0000)
      #expect(
        Array(stub.requests[before...]) == [
          "Hgp1.1", "g", "Hgp1.2", "g", "Hgp1.3", "g", "Hgp1.4", "g", "Qqemu.PhyMemMode:1", "m7000,20",
          "Qqemu.PhyMemMode:0", "Hgp1.2", "m9000,10", "m40000000,10",
        ])
    }
  }

  // MARK: Run control

  @Test func stepRefusesAHaltedVCPUWithoutSendingIt() throws {
    try withStub { c, stub throws in
      let e = expectError(.threadHalted) { _ = try c.step(thread: Self.vcpus[2]) }
      #expect(e?.message.contains("halted") == true)
      #expect(!stub.requests.contains { $0.hasPrefix("vCont") })
      #expect(c.runState == .stopped)
    }
  }

  @Test func stepMovesOnlyTheSteppedVCPU() throws {
    try withStub { c, stub throws in
      let stop = try c.step(thread: Self.vcpus[0])
      #expect(stop.signal == 5)
      #expect(stop.thread == ThreadID(pid: 1, tid: 1))
      #expect(stub.requests.contains("vCont;s:p1.1"))
      #expect(!stub.requests.contains { $0.hasPrefix("vCont;s:p1.1;") })
      let batch = try c.readBatch(registersOf: Self.vcpus, memory: [])
      #expect(try batch.registers[Self.vcpus[0]]?.get().uint64("rip") == 0xfff5)
      #expect(try batch.registers[Self.vcpus[1]]?.get().uint64("rip") == 0xfff0)
      #expect(c.runState == .stopped)
    }
  }

  @Test func stepThatNeverFinishesIsInterruptedAndReported() throws {
    var config = FakeStub.Configuration()
    config.stepHangs = [0]
    try withStub(config) { c, stub throws in
      let e = expectError(.stepTimedOut) { _ = try c.step(thread: Self.vcpus[0]) }
      #expect(e?.sent == "\"vCont;s:p1.1\"")
      #expect(e?.received == "\"T02thread:p01.01;\"")
      #expect(c.runState == .stopped)
      #expect(stub.received.contains(0x03))
      // QEMU 7.2 then stops at once on the next resume; continue() absorbs that stop.
      try c.continue()
      #expect(c.runState == .running)
      #expect(stub.requests.filter { $0 == "c" }.count == 2)
      let stop = try c.interrupt()
      #expect(stop?.signal == 2)
      #expect(c.runState == .stopped)
    }
  }

  @Test func commandsWhileRunningAreRefusedAndInterruptStops() throws {
    try withStub { c, stub throws in
      #expect(try c.interrupt() == nil, "already stopped: nothing to send")
      try c.continue()
      #expect(c.runState == .running)
      let sent = stub.received.count
      _ = expectError(.targetRunning) { _ = try c.readRegisters(of: Self.vcpus[0]) }
      _ = expectError(.targetRunning) { _ = try c.step(thread: Self.vcpus[0]) }
      usleep(50_000)
      #expect(stub.received.count == sent, "a refused command must not send a byte")
      #expect(try c.waitForStop(timeout: .milliseconds(50)) == nil)
      let stop = try #require(try c.interrupt())
      #expect(stop.raw == "T02thread:p01.01;")
      #expect(c.runState == .stopped)
      #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") == 0xfff0)
      c.assumeRunning()
      _ = expectError(.targetRunning) { _ = try c.threads() }
    }
  }

  @Test func detachSendsD1AndCloses() throws {
    try withStub { c, stub throws in
      try c.detach()
      usleep(50_000)
      #expect(stub.requests.last == "D;1")
      #expect(!c.isConnected)
      _ = expectError(.notConnected) { _ = try c.threads() }
    }
  }

  @Test func rawRequestsAndPipelines() throws {
    try withStub { c, _ throws in
      #expect(try c.request("qC").isEmpty, "the model does not implement qC: empty = unsupported")
      let replies = try c.pipeline(["Hgp1.3", "g", "m0,2"])
      #expect(try replies[0].get() == Array("OK".utf8))
      #expect(try replies[1].get().count == 1216)
      #expect(
        try replies[2].get() == Array(hexString([QEMU72Model.memoryByte(0), QEMU72Model.memoryByte(1)]).utf8))
      _ = expectError(.invalidArgument) { _ = try c.request(String(repeating: "q", count: 4095)) }
    }
  }

  // MARK: Connecting

  @Test func connectFailuresAreErrorValues() throws {
    _ = expectError(.connectFailed) {
      _ = try GDBRemoteConnection.connect(to: .unix(path: "/nonexistent/dir/gdb.sock"))
    }
    // A TCP port that nobody listens on: bind one, learn its number, close it.
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
    }
    _ = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    let port = UInt16(bigEndian: addr.sin_port)
    close(fd)
    let e = expectError(.connectFailed) {
      _ = try GDBRemoteConnection.connect(to: .tcp(host: "127.0.0.1", port: port))
    }
    #expect(e?.errno == ECONNREFUSED)
  }
}

/// Hostile input at the connection level: whatever a peer sends, every call returns a
/// value or a GDBRemoteError within its timeout.
@Suite struct HostilePeerTests {
  @Test(arguments: [1, 2, 3, 4] as [UInt64])
  func randomRepliesNeverCrashOrHang(seed: UInt64) throws {
    let peer = HostilePeer(seed: seed)
    defer { peer.stop() }
    var options = GDBRemoteConnection.Options()
    options.replyTimeout = .milliseconds(60)
    options.stepTimeout = .milliseconds(60)
    options.interruptTimeout = .milliseconds(60)
    options.acknowledgementTimeout = .milliseconds(20)
    let c = try GDBRemoteConnection(adoptingSocket: peer.clientDescriptor, options: options)
    defer { c.close() }
    let clock = ContinuousClock()
    let start = clock.now
    var codes: Set<GDBRemoteError.Code> = []
    var successes = 0
    func attempt(_ body: () throws(GDBRemoteError) -> Void) {
      do throws(GDBRemoteError) {
        try body()
        successes += 1
      } catch {
        codes.insert(error.code)
      }
    }
    let t = ThreadID.vcpu(0)
    for round in 0..<60 {
      attempt { () throws(GDBRemoteError) in try c.handshake() }
      attempt { () throws(GDBRemoteError) in _ = try c.threads() }
      attempt { () throws(GDBRemoteError) in _ = try c.threadInfo([t, .vcpu(1)]) }
      attempt { () throws(GDBRemoteError) in
        _ = try c.readBatch(registersOf: [t, .vcpu(1)], memory: [MemoryRange(address: 0x1000, count: 5000)])
      }
      attempt { () throws(GDBRemoteError) in _ = try c.readMemory(address: 0xffe, count: 4) }
      attempt { () throws(GDBRemoteError) in _ = try c.monitorCommand("info cpus") }
      if round % 5 == 0 {
        attempt { () throws(GDBRemoteError) in _ = try c.step(thread: t) }
        attempt { () throws(GDBRemoteError) in try c.continue() }
        attempt { () throws(GDBRemoteError) in _ = try c.interrupt() }
      }
      if !c.isConnected { break }
    }
    print(
      "hostile peer \(seed): \(successes) calls succeeded, errors \(codes.map(\.rawValue).sorted()), \(c.statistics)"
    )
    // Bounded: 60 rounds of calls that each give up after at most a few timeouts.
    #expect(clock.now - start < .seconds(60))
    #expect(!codes.isEmpty)
    #expect(codes.isSubset(of: Set(GDBRemoteError.Code.allCases)))
    #expect(c.statistics.corruptPackets + c.statistics.garbageBytes + c.statistics.strayPackets > 0)
  }
}

extension ConnectionTests {
  @Test func interruptOfAVMThatIsAlreadyStoppedProbesInsteadOfHanging() throws {
    var options = Self.fast
    options.interruptTimeout = .milliseconds(200)
    try withStub(options: options) { c, stub throws in
      c.assumeRunning()  // wrong: the fake VM is stopped and will ignore `\x03`
      let clock = ContinuousClock()
      let start = clock.now
      #expect(try c.interrupt() == nil)
      #expect(clock.now - start < .seconds(15), "bounded by the interrupt timeout, not a hang")
      #expect(c.runState == .stopped)
      #expect(stub.requests.last == "qAttached")
      #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") == 0xfff0)
    }
  }
}
