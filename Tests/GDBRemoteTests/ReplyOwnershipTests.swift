import Foundation
import Testing

@testable import GDBRemote

/// Every result belongs to its own request: the scripted QEMU 7.2 model (virtual clock)
/// injects late acknowledgements, naks, stop replies, console and File-I/O packets, lost
/// replies, stalls, fragments and closes, and the client must never label one request's
/// reply as another's, never run a request twice, and always return within its bound.
@Suite struct ReplyOwnershipTests {
  static let vcpus = (0..<4).map { ThreadID.vcpu($0) }

  /// A connection over a fault-free scripted stub, after the handshake.
  func connected(
    seed: UInt64 = 7, _ injections: [(String, ScriptedStub.Injection)] = [],
    configure: (inout GDBRemoteConnection.Options) -> Void = { _ in }
  ) throws -> (GDBRemoteConnection, ScriptedStub) {
    let stub = ScriptedStub(choices: ScriptChoices(seed: seed), rates: .none)
    var options = GDBRemoteConnection.Options()
    options.replyTimeout = .seconds(1)
    options.stepTimeout = .milliseconds(300)
    options.interruptTimeout = .seconds(1)
    configure(&options)
    let c = GDBRemoteConnection(transport: stub, options: options)
    try c.handshake()
    stub.injections = injections.map { (prefix: $0.0, injection: $0.1) }
    return (c, stub)
  }

  func registers(_ c: GDBRemoteConnection, _ t: ThreadID) throws -> [UInt8] {
    try c.readRegisters(of: t).raw
  }

  // MARK: The randomized property

  @Test func thousandsOfFaultyScriptsNeverMislabelARepliesAndAlwaysEnd() {
    var violations: [String] = []
    var calls = 0
    var successes = 0
    var codes: Set<GDBRemoteError.Code> = []
    var totals = GDBRemoteConnection.Statistics()
    for seed in 0..<3000 as Range<UInt64> {
      let run = ScriptRun.run(choices: ScriptChoices(seed: seed &* 0x9E37_79B9 &+ 1))
      violations += run.violations.map { "seed \(seed): \($0)" }
      calls += run.calls
      successes += run.successes
      codes.formUnion(run.errors)
      totals.misalignments += run.statistics.misalignments
      totals.probesSent += run.statistics.probesSent
      totals.probesMatched += run.statistics.probesMatched
      totals.unsolicitedStopReplies += run.statistics.unsolicitedStopReplies
      totals.syscallRequests += run.statistics.syscallRequests
      totals.retransmissions += run.statistics.retransmissions
    }
    print(
      "3000 scripts: \(calls) calls, \(successes) succeeded; errors \(codes.map(\.rawValue).sorted()); "
        + "misalignments \(totals.misalignments), probes \(totals.probesMatched)/\(totals.probesSent), "
        + "unsolicited stops \(totals.unsolicitedStopReplies), F \(totals.syscallRequests), "
        + "resends after - \(totals.retransmissions)")
    #expect(violations.isEmpty, "\(violations.prefix(20))")
    // The faults were real: calls failed in several ways, and most still succeeded.
    #expect(codes.isSuperset(of: [.timeout, .replyLost, .connectionClosed]))
    #expect(successes * 2 > calls)
    #expect(totals.probesMatched > 100)
  }

  @Test func scriptsWithoutFaultsAlwaysSucceed() {
    for seed in 0..<50 as Range<UInt64> {
      let rates = FaultRates.none
      let run = ScriptRun.run(choices: ScriptChoices(seed: seed), rates: rates)
      #expect(run.violations.isEmpty, "\(run.violations)")
      #expect(run.successes == run.calls, "seed \(seed): \(run.errors)")
      #expect(run.statistics.probesSent == 0)
    }
  }

  // MARK: Late answers after a timeout

  @Test func aLateAckAndReplyAfterATimeoutAreNotTakenForTheNextRead() throws {
    // QEMU's main loop stalls past the timeout before it sends `+`; the next burst
    // (`Hgp1.3`, `g`) must not receive the old `+`, `OK`, `+` and p1.2's registers.
    let (c, stub) = try connected([("g", .delayAck(.milliseconds(1500)))])
    let e = #expect(throws: GDBRemoteError.self) { try self.registers(c, Self.vcpus[1]) }
    #expect(e?.code == .timeout)
    #expect(try registers(c, Self.vcpus[2]) == stub.registerBytes(of: 3))
    #expect(try registers(c, Self.vcpus[0]) == stub.registerBytes(of: 1))
    #expect(c.statistics.probesMatched == 1)
  }

  @Test func aReplyThatNeverComesAfterItsAckDoesNotShiftLaterReads() throws {
    let (c, stub) = try connected([("m1000,", .dropReply)])
    let e = #expect(throws: GDBRemoteError.self) {
      _ = try c.readMemory(address: 0x1000, count: 16, physical: true)
    }
    #expect(e?.code == .timeout)
    let bytes = try c.readMemory(address: 0x2000, count: 16, physical: true)
    #expect(bytes == (0..<16).map { ScriptedStub.memoryByte(0x2000 + $0, space: 0) })
    _ = stub
  }

  // MARK: Cached selection and memory mode

  @Test func aFailedBurstLeavesNoStaleThreadSelection() throws {
    // `Hgp1.2` → OK, then `g` times out: the next read of p1.1 must not send a bare `g`.
    let (c, stub) = try connected()
    #expect(try registers(c, Self.vcpus[0]) == stub.registerBytes(of: 1))
    stub.injections = [(prefix: "g", injection: .dropReply)]
    #expect(throws: GDBRemoteError.self) { try self.registers(c, Self.vcpus[1]) }
    #expect(try registers(c, Self.vcpus[0]) == stub.registerBytes(of: 1))
  }

  @Test func aFailedBurstLeavesNoStaleMemoryMode() throws {
    let (c, stub) = try connected()
    _ = try c.readMemory(address: 0x100, count: 8, physical: true)
    stub.injections = [(prefix: "m", injection: .dropReply)]
    #expect(throws: GDBRemoteError.self) {
      _ = try c.readMemory(address: 0x200, count: 8, physical: false, thread: Self.vcpus[1])
    }
    let bytes = try c.readMemory(address: 0x300, count: 8, physical: true)
    #expect(bytes == (0..<8).map { ScriptedStub.memoryByte(0x300 + $0, space: 0) })
  }

  @Test func aStopBySomeoneElseResetsTheSelection() throws {
    // QMP `stop` after `cont` by a second client: QEMU 7.2 selects the stopping vCPU for `g`.
    let (c, stub) = try connected()
    #expect(try registers(c, Self.vcpus[2]) == stub.registerBytes(of: 3))
    stub.externalStop(reportedFor: 1)
    #expect(try registers(c, Self.vcpus[2]) == stub.registerBytes(of: 3))
    #expect(c.stopReplies.last?.raw == "T02thread:p01.01;")
    // And a write through virtual addresses uses the right vCPU's page tables too.
    stub.externalStop(reportedFor: 1)
    try c.writeMemory(address: 0x500, bytes: [1, 2, 3], physical: false, thread: Self.vcpus[3])
    #expect(stub.executed.suffix(2) == ["Hgp1.4", "M500,3:010203"])
  }

  @Test func aResumeBySomeoneElseDuringABurstFailsOnlyWhatMayBeLost() throws {
    // After the first reply someone's QMP `cont` runs the VM: QEMU stops it on the next `$`
    // and drops that request. Nothing may be labelled with a shifted reply; readBatch
    // repeats what was lost and returns every vCPU's own registers.
    let (c, stub) = try connected([("g", .resumeAfter)])
    let batch = try c.readBatch(registersOf: Self.vcpus, memory: [])
    for t in Self.vcpus {
      #expect(try batch.registers[t]?.get().raw == stub.registerBytes(of: t.tid), "\(t)")
    }
    #expect(c.statistics.misalignments == 1)
    #expect(c.statistics.unsolicitedStopReplies == 1)
  }

  // MARK: No blind retransmission

  @Test func aSlowAckNeverMakesAMonitorCommandRunTwice() throws {
    let (c, stub) = try connected([("qRcmd", .delayAck(.milliseconds(700)))])
    #expect(try c.monitorCommand("info once") == "ran info once\n")
    #expect(stub.monitorRuns["info once"] == 1)
    #expect(c.statistics.retransmissions == 0)
  }

  @Test func aSlowAckNeverMakesContinueStopTheVMAgain() throws {
    let (c, stub) = try connected([("c", .delayAck(.milliseconds(700)))])
    try c.continue()
    #expect(c.runState == .running)
    #expect(stub.continues == 1)
    #expect(stub.isRunning, "a second $c would have stopped the VM")
  }

  // MARK: Smaller ways a reply shifts

  @Test func aNakInsideAPipelineDoesNotRunTheRestAgainstTheOldSelection() throws {
    // Resending `Hgp1.3` after the burst would run the second `g` against p1.2.
    let (c, stub) = try connected([("Hgp1.3", .nak)])
    let batch = try c.readBatch(registersOf: [Self.vcpus[1], Self.vcpus[2]], memory: [])
    #expect(try batch.registers[Self.vcpus[1]]?.get().raw == stub.registerBytes(of: 2))
    #expect(try batch.registers[Self.vcpus[2]]?.get().raw == stub.registerBytes(of: 3))
  }

  @Test func aReplyCutShortByTheNextPacketFailsItsOwnRequest() throws {
    let (c, stub) = try connected([("g", .cutReply(30))])
    let batch = try c.readBatch(registersOf: [Self.vcpus[0], Self.vcpus[1]], memory: [])
    #expect(try batch.registers[Self.vcpus[0]]?.get().raw == stub.registerBytes(of: 1))
    #expect(try batch.registers[Self.vcpus[1]]?.get().raw == stub.registerBytes(of: 2))
    #expect(c.statistics.corruptPackets == 1)
  }

  @Test func anOversizedUnsolicitedPacketDoesNotTakeAReplysPlace() throws {
    let huge = ScriptedStub.frame(Array(("O" + String(repeating: "41", count: 5000)).utf8))
    let (c, stub) = try connected([("g", .beforeReply(huge))]) { $0.maximumPacketSize = 8192 }
    #expect(try registers(c, Self.vcpus[1]) == stub.registerBytes(of: 2))
    #expect(c.statistics.oversizedPackets == 1)
  }

  @Test func aStopReplyWithAnOddFieldIsStillAStopReply() throws {
    let odd = ScriptedStub.frame(Array("T05thread:p01.02;swbreak;library;".utf8))
    let (c, stub) = try connected([("g", .beforeReply(odd))])
    #expect(try registers(c, Self.vcpus[1]) == stub.registerBytes(of: 2))
    #expect(c.stopReplies.last?.raw == "T05thread:p01.02;swbreak;library;")
    #expect(c.stopReplies.last?.thread == ThreadID(pid: 1, tid: 2))
  }

  @Test func threadInfoForAnUnknownThreadFailsAloneAndAtOnce() throws {
    // QEMU 7.2 acknowledges `qThreadExtraInfo,p1.9` and sends nothing else.
    let (c, stub) = try connected()
    let began = stub.now
    let replies = try c.pipeline(["qThreadExtraInfo,p1.9", "qThreadExtraInfo,p1.1", "qThreadExtraInfo,p1.2"])
    #expect(stub.now - began < .milliseconds(100))
    guard case .failure(let e) = replies[0] else {
      Issue.record("the unknown thread got a reply: \(replies[0])")
      return
    }
    #expect(e.code == .protocolViolation)
    #expect(try replies[1].get() == Array(hexString("CPU#0 [running]".utf8).utf8))
    #expect(try replies[2].get() == Array(hexString("CPU#1 [running]".utf8).utf8))
  }

  @Test func aStepAnsweredWithAnErrorLeavesTheTargetStopped() throws {
    let (c, stub) = try connected([("vCont;s", .replyInstead("E22"))])
    #expect(throws: GDBRemoteError.self) { _ = try c.step(thread: Self.vcpus[0]) }
    #expect(c.runState == .stopped)
    #expect(try registers(c, Self.vcpus[0]) == stub.registerBytes(of: 1))
  }

  @Test func aFileIOPacketIsNeverTakenForAReply() throws {
    let syscall = ScriptedStub.frame(Array("Fwrite,1,2000,10".utf8))
    let (c, stub) = try connected([("m", .beforeReply(syscall))])
    let bytes = try c.readMemory(address: 0x40, count: 4, physical: true)
    #expect(bytes == (0..<4).map { ScriptedStub.memoryByte(0x40 + $0, space: 0) })
    #expect(c.statistics.syscallRequests == 1)
    _ = stub
  }
}

/// Run-length encoding expands the character as sent, before escapes are undone.
@Suite struct RunLengthAfterEscapeTests {
  @Test func aRunAfterAnEscapeRepeatsTheWireByte() {
    // `}]` is an escaped `}`; `* ` (three more) repeats the `]` that was sent, as gdb's
    // read_frame expands runs before remote_unescape_input: `}]]]`, not `}}}}`.
    let wire = Array("}]* ".utf8)
    let framed = [UInt8(ascii: "$")] + wire + [UInt8(ascii: "#")] + Array(hex2(wire.reduce(0, &+)).utf8)
    var decoder = PacketDecoder()
    let events = decoder.feed(framed)
    guard case .packet(let packet)? = events.first else {
      Issue.record("no packet: \(events)")
      return
    }
    #expect(packet.payload == Array("}]]]".utf8))
  }
}
