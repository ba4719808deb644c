// A scripted model of QEMU 7.2's gdbstub that runs in the same thread as the client, on a
// virtual clock, so that thousands of conversations with injected faults (timeouts
// included) run in seconds and replay exactly from a seed. The same engine drives the
// libFuzzer target in Fuzz/RSPExchange (one module there: no `import Testing` here).

#if !SMPTOP_FUZZ
  @testable import GDBRemote
#endif

/// Where a script's choices come from: a seeded generator, or the bytes of a fuzz input
/// (which give zeros, so no more faults, once they run out).
struct ScriptChoices {
  private var state: UInt64
  private let bytes: [UInt8]
  private var cursor = 0
  private let fromBytes: Bool

  /// Choices from a seed (splitmix64).
  init(seed: UInt64) {
    state = seed
    bytes = []
    fromBytes = false
  }

  /// Choices read from `bytes`, one byte per choice.
  init(bytes: [UInt8]) {
    state = 0
    self.bytes = bytes
    fromBytes = true
  }

  /// Whether a fuzz input has been used up.
  var exhausted: Bool { fromBytes && cursor >= bytes.count }

  /// The next raw choice.
  mutating func next() -> UInt64 {
    if fromBytes {
      guard cursor < bytes.count else { return 0 }
      defer { cursor += 1 }
      return UInt64(bytes[cursor])
    }
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A number in `0..<n` (0 when `n` is 0).
  mutating func below(_ n: Int) -> Int {
    guard n > 0 else { return 0 }
    return Int(next() % UInt64(n))
  }

  /// True with about `percent` in 100 (never once a fuzz input has run out).
  mutating func chance(_ percent: Int) -> Bool {
    below(100) + percent >= 100 && !exhausted
  }
}

/// How often each fault happens, in percent per opportunity.
struct FaultRates: Sendable {
  /// `+` (and everything after it) held back, possibly past every timeout.
  var delayAck = 4
  /// The reply held back after its `+`, possibly past every timeout.
  var delayReply = 4
  /// A `-` instead of the request being run.
  var nak = 2
  /// `+` and then no reply at all.
  var dropReply = 2
  /// Between two requests: QMP `cont` by someone else (the next byte stops the VM, is
  /// dropped, and `T02` is sent).
  var resumeBehindBack = 2
  /// Between two requests: QMP `stop` after `cont` (`T02`, and `Hg` reset to the stopping vCPU).
  var stopBehindBack = 2
  /// An `O` console packet at any position.
  var console = 3
  /// An `F` File-I/O request at any position.
  var syscall = 1
  /// A `T05` for some vCPU at any position (between `+` and reply too).
  var strayStop = 1
  /// A reply whose checksum is wrong (a `-` gets the right one).
  var corrupt = 1
  /// The connection closes after a random number of bytes (once per script).
  var close = 3
  /// A step that does not finish until interrupted.
  var stepHangs = 10
  /// After a request: QEMU's main loop stalls (`savevm`, SIGSTOP, a loaded host) before
  /// it sends anything more.
  var stall = 2
  /// Whether the script also asks about a thread that does not exist.
  var unknownThreads = true

  /// No faults at all.
  static let none = FaultRates(
    delayAck: 0, delayReply: 0, nak: 0, dropReply: 0, resumeBehindBack: 0, stopBehindBack: 0, console: 0,
    syscall: 0, strayStop: 0, corrupt: 0, close: 0, stepHangs: 0, stall: 0, unknownThreads: false)
}

/// The model of the stub and the transport the client talks to.
final class ScriptedStub: ByteTransport {
  // MARK: Clock and delivery

  let start: ContinuousClock.Instant
  private(set) var now: ContinuousClock.Instant
  private var queue: [(at: ContinuousClock.Instant, bytes: [UInt8])] = []
  private var lastRelease: ContinuousClock.Instant
  private var bytesSent = 0
  private var closeAfter: Int?
  private var peerClosed = false
  private(set) var isOpen = true
  var choices: ScriptChoices
  let rates: FaultRates
  /// Extra delay added to everything sent from now on (a stall of QEMU's main loop).
  private var stall: Duration = .zero

  // MARK: QEMU 7.2 state

  let vcpus = 4
  private var running = false
  private var lastPacket: [UInt8] = []
  private enum Parse {
    case idle
    case line([UInt8])
    case checksum1([UInt8])
    case checksum2([UInt8], UInt8)
  }
  private var parse = Parse.idle
  /// The vCPU (1-based) used for `g`, `p`, `m` and `M`.
  private(set) var gCPU = 1
  /// The vCPU that stops are reported for.
  private var cCPU = 1
  private var physical = false
  private var pendingStep: Int?
  /// Completed steps per vCPU (1-based).
  private(set) var steps: [Int: Int] = [:]
  /// `vCont;s` requests run, per vCPU.
  private(set) var stepRequests: [Int: Int] = [:]
  /// Monitor commands run, by command text.
  private(set) var monitorRuns: [String: Int] = [:]
  /// `c` requests run.
  private(set) var continues = 0
  /// Every request run, in order.
  private(set) var executed: [String] = []

  /// A fault a test asks for, for the next request that starts with a prefix.
  enum Injection {
    /// Hold back the `+` (and all after it).
    case delayAck(Duration)
    /// Hold back the reply after the `+`.
    case delayReply(Duration)
    /// Answer `-` and do not run the request.
    case nak
    /// Send `+` and no reply.
    case dropReply
    /// Send this reply instead of the real one.
    case replyInstead(String)
    /// Send only the first bytes of the framed reply.
    case cutReply(Int)
    /// Send these raw bytes between the `+` and the reply.
    case beforeReply([UInt8])
    /// After the reply, someone's QMP `cont`: the next byte stops the VM and is dropped.
    case resumeAfter
  }
  /// Faults for the next requests that start with each prefix, used once each in order.
  var injections: [(prefix: String, injection: Injection)] = []

  /// Someone else's QMP `cont` and `stop` while the client is idle: `T02` for the vCPU
  /// stops are reported for, and QEMU's `Hg` selection reset to it.
  func externalStop(reportedFor t: Int = 1) {
    cCPU = t
    stopVM(signal: 2)
  }

  /// What happened, in order (when ``keepsTranscript`` is set).
  var transcript: [String] = []
  var keepsTranscript = false

  /// Whether the model's VM is running.
  var isRunning: Bool { running }

  init(choices: ScriptChoices, rates: FaultRates = FaultRates()) {
    self.choices = choices
    self.rates = rates
    start = ContinuousClock.now
    now = start
    lastRelease = start
    if self.choices.chance(rates.close) {
      closeAfter = 200 + self.choices.below(20_000)
    }
  }

  // MARK: ByteTransport

  func read(until deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> TransportReadOutcome {
    guard isOpen else { throw GDBRemoteError(.notConnected, "the connection is closed") }
    if let first = queue.first, first.at <= deadline {
      now = max(now, first.at)
      // Deliver in fragments of any size.
      var out: [UInt8] = []
      let limit = choices.chance(30) ? 1 + choices.below(64) : 1 << 20
      while let item = queue.first, item.at <= now, out.count < limit {
        let room = limit - out.count
        if item.bytes.count <= room {
          out += item.bytes
          queue.removeFirst()
        } else {
          out += item.bytes.prefix(room)
          queue[0].bytes.removeFirst(room)
        }
      }
      return .data(out)
    }
    if queue.isEmpty && peerClosed {
      return .endOfFile
    }
    now = max(now, deadline)
    return .timedOut
  }

  func write(
    _ bytes: [UInt8], until deadline: ContinuousClock.Instant, received: (TransportReadOutcome) -> Void
  ) throws(GDBRemoteError) {
    guard isOpen else { throw GDBRemoteError(.notConnected, "the connection is closed") }
    guard !peerClosed else {
      throw GDBRemoteError(.connectionClosed, "the peer closed the connection while we were writing")
    }
    for byte in bytes { readByte(byte) }
  }

  func close() { isOpen = false }

  // MARK: Sending

  /// Queues bytes after everything queued so far, `delay` after now at the earliest; stops
  /// at the byte where the script closes the connection.
  private func send(_ bytes: [UInt8], delay: Duration = .zero) {
    guard !peerClosed else { return }
    var bytes = bytes
    if let limit = closeAfter, bytesSent + bytes.count >= limit {
      bytes = Array(bytes.prefix(max(0, limit - bytesSent)))
      peerClosed = true
    }
    bytesSent += bytes.count
    if keepsTranscript { transcript.append("out \(String(decoding: bytes.prefix(70), as: UTF8.self))") }
    let at = max(lastRelease, now + .microseconds(20) + delay + stall)
    stall = .zero
    lastRelease = at
    if !bytes.isEmpty { queue.append((at, bytes)) }
  }

  /// Frames a reply as QEMU does (`}` escapes only in binary replies, which `escape` asks for).
  static func frame(_ payload: [UInt8], escape: Bool = false) -> [UInt8] {
    var wire: [UInt8] = []
    for b in payload {
      if escape,
        b == UInt8(ascii: "$") || b == UInt8(ascii: "#") || b == UInt8(ascii: "}") || b == UInt8(ascii: "*")
      {
        wire += [UInt8(ascii: "}"), b ^ 0x20]
      } else {
        wire.append(b)
      }
    }
    let sum = wire.reduce(UInt8(0), &+)
    return [UInt8(ascii: "$")] + wire + [UInt8(ascii: "#")] + Array(hex2(sum).utf8)
  }

  /// Sends a packet that becomes the one a `-` repeats (QEMU's `last_packet`).
  private func putPacket(_ payload: [UInt8], escape: Bool = false, delay: Duration = .zero) {
    let framed = ScriptedStub.frame(payload, escape: escape)
    lastPacket = framed
    if choices.chance(rates.corrupt), framed.count > 4 {
      var bad = framed
      bad[bad.count - 1] = bad[bad.count - 1] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
      send(bad, delay: delay)
    } else {
      send(framed, delay: delay)
    }
  }

  /// Output that may appear at any position: console text, File-I/O requests, stop replies.
  private func maybeNoise() {
    if choices.chance(rates.console) {
      send(ScriptedStub.frame(Array(("O" + hexString("noise\n".utf8)).utf8)))
    }
    if choices.chance(rates.syscall) {
      send(ScriptedStub.frame(Array("Fwrite,1,2000,10".utf8)))
    }
    if choices.chance(rates.strayStop) {
      let t = 1 + choices.below(vcpus)
      send(ScriptedStub.frame(Array("T05thread:p01.\(hex2(UInt8(t)));".utf8)))
    }
  }

  /// A delay of up to three seconds (past every timeout the tests use), or none.
  private func someDelay() -> Duration { .milliseconds(choices.below(3000)) }

  // MARK: QEMU 7.2's gdb_read_byte

  private func stopVM(signal: UInt8) {
    running = false
    if let p = pendingStep {
      pendingStep = nil
      cCPU = p
    }
    gCPU = cCPU
    putPacket(Array("T\(hex2(signal))thread:p01.\(hex2(UInt8(cCPU)));".utf8))
  }

  private func readByte(_ ch: UInt8) {
    if !lastPacket.isEmpty {
      if ch == UInt8(ascii: "-") { send(lastPacket) }
      if ch == UInt8(ascii: "+") || ch == UInt8(ascii: "$") { lastPacket = [] }
      if ch != UInt8(ascii: "$") { return }
    }
    if running {
      stopVM(signal: 2)
      return
    }
    switch parse {
    case .idle:
      if ch == UInt8(ascii: "$") { parse = .line([]) }
    case .line(var line):
      if ch == UInt8(ascii: "#") {
        parse = .checksum1(line)
      } else if line.count >= 4095 {
        parse = .idle
      } else {
        line.append(ch)
        parse = .line(line)
      }
    case .checksum1(let line):
      parse = .checksum2(line, ch)
    case .checksum2(let line, let high):
      parse = .idle
      let text = String(decoding: [high, ch], as: UTF8.self)
      guard let sum = UInt8(text, radix: 16), sum == line.reduce(UInt8(0), &+) else {
        send(Array("-".utf8))
        return
      }
      handle(line)
    }
  }

  private func handle(_ line: [UInt8]) {
    let request = String(decoding: line, as: UTF8.self)
    var injected: Injection? = nil
    if let i = injections.firstIndex(where: { request.hasPrefix($0.prefix) }) {
      injected = injections.remove(at: i).injection
    }
    if choices.chance(rates.nak) || { if case .nak = injected { return true } else { return false } }() {
      send(Array("-".utf8))
      return
    }
    maybeNoise()
    var ackDelay = choices.chance(rates.delayAck) ? someDelay() : .zero
    if case .delayAck(let d) = injected { ackDelay = d }
    send(Array("+".utf8), delay: ackDelay)
    executed.append(request)
    if keepsTranscript { transcript.append("run \(request.prefix(60)) gCPU=\(gCPU) physical=\(physical)") }
    var reply = respond(to: request)
    maybeNoise()
    var replyDelay = choices.chance(rates.delayReply) ? someDelay() : .zero
    switch injected {
    case .delayReply(let d): replyDelay = d
    case .dropReply: reply = nil
    case .replyInstead(let text): reply = (Array(text.utf8), false)
    case .cutReply(let n):
      if let r = reply { send(Array(ScriptedStub.frame(r.bytes, escape: r.escape).prefix(n))) }
      reply = nil
    case .beforeReply(let bytes): send(bytes)
    case .resumeAfter: running = true
    default: break
    }
    if let reply, !choices.chance(rates.dropReply) {
      putPacket(reply.bytes, escape: reply.escape, delay: replyDelay)
    }
    if case .resumeAfter = injected { return }
    // Between two requests: someone else's QMP commands.
    if choices.chance(rates.resumeBehindBack) && !running {
      running = true
    } else if choices.chance(rates.stopBehindBack) && !running {
      stopVM(signal: 2)
    }
    if choices.chance(rates.stall) { stall = someDelay() }
  }

  // MARK: Replies (each a function of its request)

  /// The registers of vCPU `t` (1-based): 608 bytes that depend on the vCPU and its steps.
  func registerBytes(of t: Int) -> [UInt8] {
    let s = steps[t] ?? 0
    return (0..<608).map { i in UInt8(truncatingIfNeeded: t &* 37 &+ i &* 7 &+ s &* 13 &+ (i >> 3) &* t) }
  }

  /// Guest memory: a function of the address and of the address space (0 = physical,
  /// otherwise the vCPU whose page tables translate).
  static func memoryByte(_ address: UInt64, space: Int) -> UInt8 {
    let x = (address &+ UInt64(space) &* 0x1_0000_0001) &* 0x9E37_79B9_7F4A_7C15
    return UInt8(truncatingIfNeeded: x >> 29)
  }

  private func threadNumber(_ text: Substring) -> Int? {
    guard let id = ThreadID(parsing: text), id.tid >= 1, id.tid <= vcpus else { return nil }
    return id.tid
  }

  private func respond(to request: String) -> (bytes: [UInt8], escape: Bool)? {
    func text(_ s: String) -> ([UInt8], Bool) { (Array(s.utf8), false) }
    if request.hasPrefix("qSupported") { return text(QEMU72.supported) }
    if request.hasPrefix("qXfer:features:read:") {
      let parts = request.dropFirst("qXfer:features:read:".count).split(separator: ":")
      guard parts.count == 2 else { return text("E00") }
      let nums = parts[1].split(separator: ",")
      guard nums.count == 2, let o = Int(nums[0], radix: 16), let l = Int(nums[1], radix: 16) else {
        return text("E00")
      }
      let file: String
      switch parts[0] {
      case "target.xml": file = QEMU72.targetXML
      case "i386-64bit.xml": file = QEMU72.i386_64bitXML
      default: return text("E00")
      }
      let data = Array(file.utf8)
      guard o <= data.count else { return text("E00") }
      let end = min(data.count, o + min(l, (4096 - 5) / 2))
      return ((end < data.count ? [UInt8(ascii: "m")] : [UInt8(ascii: "l")]) + data[o..<end], true)
    }
    if request == "qfThreadInfo" { return text("mp01.01,p01.02,p01.03,p01.04") }
    if request == "qsThreadInfo" { return text("l") }
    if request == "qC" { return text("QCp01.01") }
    if request == "qAttached" { return text("1") }
    if request.hasPrefix("qThreadExtraInfo,") {
      // QEMU 7.2: an unknown thread gets `+` and no packet at all.
      guard let t = threadNumber(request.dropFirst(17)) else { return nil }
      return text(hexString("CPU#\(t - 1) [running]".utf8))
    }
    if request.hasPrefix("Hg") {
      guard let t = threadNumber(request.dropFirst(2)) else { return text("E22") }
      gCPU = t
      return text("OK")
    }
    if request == "g" { return text(hexString(registerBytes(of: gCPU))) }
    if request.hasPrefix("p") {
      guard let n = Int(request.dropFirst(), radix: 16) else { return text("E14") }
      let g = registerBytes(of: gCPU)
      if n == 0 { return text(hexString(g[0..<8])) }
      if n == 16 { return text(hexString(g[128..<136])) }
      return text("E14")
    }
    if request.hasPrefix("Qqemu.PhyMemMode:") {
      physical = request.hasSuffix("1")
      return text("OK")
    }
    if request.hasPrefix("m") {
      let parts = request.dropFirst().split(separator: ",")
      guard parts.count == 2, let a = UInt64(parts[0], radix: 16), let l = Int(parts[1], radix: 16) else {
        return text("E22")
      }
      if l > 0x800 { return text("E22") }
      if !physical && a >= 0x4000_0000 { return text("E14") }
      let space = physical ? 0 : gCPU
      return text(hexString((0..<UInt64(l)).map { ScriptedStub.memoryByte(a &+ $0, space: space) }))
    }
    if request.hasPrefix("vCont;s:") {
      guard let t = threadNumber(request.dropFirst(8)) else { return text("E22") }
      stepRequests[t, default: 0] += 1
      cCPU = t
      if choices.chance(rates.stepHangs) {
        running = true
        pendingStep = t
        return nil
      }
      steps[t, default: 0] += 1
      gCPU = t
      return text("T05thread:p01.\(hex2(UInt8(t)));")
    }
    if request == "c" {
      continues += 1
      running = true
      return nil
    }
    if request.hasPrefix("qRcmd,") {
      let hex = Array(request.dropFirst(6).utf8)
      var command: [UInt8] = []
      var i = 0
      while i + 1 < hex.count {
        command.append(UInt8(String(decoding: hex[i..<(i + 2)], as: UTF8.self), radix: 16) ?? 0)
        i += 2
      }
      let name = String(decoding: command, as: UTF8.self)
      monitorRuns[name, default: 0] += 1
      send(ScriptedStub.frame(Array(("O" + hexString("ran \(name)\n".utf8)).utf8)))
      return text("OK")
    }
    if request.hasPrefix("M") { return text("OK") }
    if request == "D;1" { return text("OK") }
    return text("")
  }
}

/// Two lowercase hex digits.
func hex2(_ b: UInt8) -> String {
  let s = String(b, radix: 16)
  return s.count == 1 ? "0" + s : s
}

/// Lowercase hex of `bytes`.
func hexString(_ bytes: some Sequence<UInt8>) -> String { bytes.map(hex2).joined() }

// MARK: Running a script against the client

/// One conversation: a connection over a ``ScriptedStub``, a sequence of calls chosen by the
/// script, and after each call the checks that matter: the result belongs to the request
/// (registers are those of the vCPU asked for, memory is that of the address and space
/// asked for, thread info names its thread, monitor output is its command's), nothing ran
/// twice, and every call returned (a value or a ``GDBRemoteError``) within its bound.
struct ScriptRun {
  /// What went wrong; empty when the client behaved.
  var violations: [String] = []
  /// Calls made, and how many of them returned a value.
  var calls = 0
  var successes = 0
  /// The error codes seen.
  var errors: Set<GDBRemoteError.Code> = []
  /// The client's protocol counters at the end.
  var statistics = GDBRemoteConnection.Statistics()
  /// Each call and how it ended.
  var log: [String] = []
  /// The stub, for a closer look.
  var stub: ScriptedStub?

  /// Runs `callCount` calls chosen by `choices` with faults at `rates`.
  static func run(
    choices: ScriptChoices, rates: FaultRates = FaultRates(), callCount: Int = 12,
    keepTranscript: Bool = false
  ) -> ScriptRun {
    var run = ScriptRun()
    let stub = ScriptedStub(choices: choices, rates: rates)
    stub.keepsTranscript = keepTranscript
    run.stub = stub
    var options = GDBRemoteConnection.Options()
    options.replyTimeout = .seconds(1)
    options.stepTimeout = .milliseconds(300)
    options.interruptTimeout = .seconds(1)
    let c = GDBRemoteConnection(transport: stub, options: options)
    let threads = (0..<stub.vcpus).map { ThreadID.vcpu($0) }
    var stepCalls: [Int: Int] = [:]
    var continueCalls = 0
    var monitorCalls = 0

    func check(_ condition: Bool, _ what: @autoclosure () -> String) {
      if !condition { run.violations.append(what()) }
    }
    /// Runs one call and checks that it ends within `bound` (virtual time).
    func call(_ name: String, bound: Duration, _ body: () throws(GDBRemoteError) -> Void) {
      run.calls += 1
      if keepTranscript { stub.transcript.append("CALL \(name)") }
      let began = stub.now
      do throws(GDBRemoteError) {
        try body()
        run.successes += 1
        run.log.append("\(name): ok")
      } catch {
        run.errors.insert(error.code)
        run.log.append("\(name): \(error)")
      }
      let took = stub.now - began
      check(took <= bound, "\(name) took \(took), more than its bound \(bound)")
      if keepTranscript { stub.transcript.append("END \(run.log.last ?? "") \(run.violations.count)") }
    }
    func expectedMemory(_ range: MemoryRange) -> [UInt8] {
      let space: Int
      switch range.space {
      case .physical: space = 0
      case .virtual(let t): space = t?.tid ?? -1
      }
      return (0..<UInt64(range.count)).map { ScriptedStub.memoryByte(range.address &+ $0, space: space) }
    }
    func randomRange() -> MemoryRange {
      let physical = stub.choices.chance(50)
      let address = UInt64(stub.choices.below(0x4000)) &* 0x40 &+ UInt64(stub.choices.below(0x100))
      let count = 1 + stub.choices.below(stub.choices.chance(20) ? 6000 : 64)
      return MemoryRange(
        address: address, count: count,
        space: physical ? .physical : .virtual(threads[stub.choices.below(threads.count)]))
    }
    let unit = options.replyTimeout

    call("handshake", bound: unit * 12) { () throws(GDBRemoteError) in try c.handshake() }
    for _ in 0..<callCount {
      if !c.isConnected { break }
      if c.runState == .running || c.runState == .unknown {
        call("interrupt", bound: options.interruptTimeout + .milliseconds(600)) { () throws(GDBRemoteError) in
          try c.interrupt()
        }
        continue
      }
      switch stub.choices.below(9) {
      case 0, 1:
        let wanted = threads.filter { _ in stub.choices.chance(60) }
        let ranges = (0..<stub.choices.below(3)).map { _ in randomRange() }
        let rounds = (wanted.count * 2 + ranges.reduce(0) { $0 + 3 * ($1.count / 2048 + 2) }) / 64 + 1
        let ops = wanted.count + ranges.reduce(0) { $0 + $1.count / 2048 + 2 }
        call("readBatch", bound: unit * (rounds + 4 * ops + 1)) { () throws(GDBRemoteError) in
          let result = try c.readBatch(registersOf: wanted, memory: ranges)
          for t in wanted {
            if case .success(let set)? = result.registers[t] {
              check(
                set.raw == stub.registerBytes(of: t.tid),
                "registers labelled \(t) are not \(t)'s (requests \(stub.executed.suffix(12)))")
            }
          }
          for (i, range) in ranges.enumerated() {
            if case .success(let bytes) = result.memory[i] {
              check(bytes == expectedMemory(range), "memory of \(range) is not its own")
            }
          }
        }
      case 2:
        let t = threads[stub.choices.below(threads.count)]
        let number = stub.choices.chance(50) ? 0 : 16
        call("readRegister", bound: unit * 2) { () throws(GDBRemoteError) in
          let value = try c.readRegister(number: number, of: t)
          let g = stub.registerBytes(of: t.tid)
          check(
            value.bytes == Array(g[(number == 0 ? 0 : 128)..<(number == 0 ? 8 : 136)]), "p\(number) of \(t)")
        }
      case 3:
        let range = randomRange()
        call("readMemory", bound: unit * (4 * (range.count / 2048 + 2) + 1)) { () throws(GDBRemoteError) in
          let physical: Bool
          let thread: ThreadID?
          switch range.space {
          case .physical: (physical, thread) = (true, nil)
          case .virtual(let t): (physical, thread) = (false, t)
          }
          let bytes = try c.readMemory(
            address: range.address, count: range.count, physical: physical, thread: thread)
          check(bytes == expectedMemory(range), "readMemory of \(range) is not its own")
        }
      case 4:
        var asked = threads.filter { _ in stub.choices.chance(50) }
        if rates.unknownThreads, stub.choices.chance(20) {
          asked.insert(ThreadID(pid: 1, tid: 9), at: stub.choices.below(asked.count + 1))
        }
        call("threadInfo", bound: unit * 2) { () throws(GDBRemoteError) in
          let infos = try c.threadInfo(asked)
          check(infos.count == asked.count, "threadInfo count")
          for (t, info) in zip(asked, infos) {
            check(t.tid <= 4, "threadInfo of the unknown thread \(t) succeeded: \(info.text)")
            check(
              info.thread == t && info.text == "CPU#\(t.tid - 1) [running]",
              "threadInfo of \(t) says \(info.text)")
          }
        }
      case 5:
        call("threads", bound: unit * 3) { () throws(GDBRemoteError) in
          check(try c.threads() == threads, "thread list")
        }
      case 6:
        monitorCalls += 1
        let command = "info thing\(monitorCalls)"
        call("monitorCommand", bound: unit * 2) { () throws(GDBRemoteError) in
          let output = try c.monitorCommand(command)
          let cleaned = output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0 != "noise" }.joined(separator: "\n")
          check(cleaned == "ran \(command)\n", "monitor output of \(command) is \(cleaned.debugDescription)")
        }
      case 7:
        let t = threads[stub.choices.below(threads.count)]
        stepCalls[t.tid, default: 0] += 1
        call(
          "step", bound: unit * 2 + options.stepTimeout + options.interruptTimeout + .milliseconds(600)
        ) { () throws(GDBRemoteError) in
          _ = try c.step(thread: t)
        }
      default:
        continueCalls += 1
        call("continue", bound: unit * 2 + .milliseconds(300)) { () throws(GDBRemoteError) in
          try c.continue()
          // A second `$c` sent blindly would have stopped the VM again.
          check(c.runState != .running || stub.isRunning, "continue() left the VM stopped")
        }
      }
    }
    for (t, n) in stub.stepRequests {
      check(
        n <= stepCalls[t] ?? 0, "vCPU \(t) was asked to step \(n) times for \(stepCalls[t] ?? 0) step calls")
    }
    // continue() sends `c` a second time only after the stop reply of a step it interrupted.
    check(stub.continues <= 2 * continueCalls, "c ran \(stub.continues) times for \(continueCalls) calls")
    for (command, n) in stub.monitorRuns {
      check(n <= 1, "\(command) ran \(n) times")
    }
    run.statistics = c.statistics
    c.close()
    return run
  }
}
