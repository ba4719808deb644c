import Foundation
import GDBRemote
import NIOConcurrencyHelpers

#if canImport(Glibc)
  import Glibc
#endif

/// A fault the fake stub injects into its answer to matching requests.
struct StubFault: Sendable {
  enum Kind: Sendable {
    /// Send the reply with a wrong checksum; a `-` from the client gets the correct one
    /// (the stub remembers the correct framing, as after line noise).
    case corruptChecksum
    /// Answer the request with `-` instead of `+` (as if our packet was damaged).
    case nakRequest
    /// Send the reply run-length encoded.
    case runLengthEncode
    /// Send the reply with every byte escaped as `}` + (byte ^ 0x20) where allowed.
    case escapeEverything
    /// Send nothing at all (not even `+`).
    case silence
    /// Send `+` and nothing else.
    case ackOnly
    /// Send the first `count` bytes of the framed reply, then close the connection.
    case truncateAndClose(Int)
    /// Send the first `count` bytes of the framed reply, then the whole reply.
    case truncateThenRestart(Int)
    /// Send these raw bytes before the reply (`O` packets, a stop reply, garbage).
    case prefix([UInt8])
    /// Replace the reply with a packet of this many `0` characters.
    case oversized(Int)
    /// Wait this many milliseconds before replying.
    case delay(Int)
    /// Replace the reply with these raw bytes.
    case replaceRaw([UInt8])
  }

  /// The request's payload must start with this.
  var prefix: String
  /// How many matching requests are affected.
  var times: Int
  var kind: Kind
}

/// A fake gdbstub modelled on QEMU 7.2's system-mode stub (replies captured from the real
/// one), on one end of a socketpair, running on its own thread.
final class FakeStub: Sendable {
  struct Configuration: Sendable {
    var faults: [StubFault] = []
    /// vCPU indices (0-based) that `qThreadExtraInfo` reports as halted.
    var halted: Set<Int> = [1, 2, 3]
    /// vCPU indices whose step never completes although they are not reported halted.
    var stepHangs: Set<Int> = []
    /// Raw bytes sent as soon as the client connects.
    var greeting: [UInt8] = []
    /// Whether the VM is running when the client connects.
    var startRunning = false
    var vcpuCount = 4
  }

  let clientDescriptor: Int32
  private let stubDescriptor: Int32
  private let state = NIOLockedValueBox(Log())
  private let finished = DispatchSemaphore(value: 0)

  struct Log: Sendable {
    var received: [UInt8] = []
    var requests: [String] = []
    var stopRequested = false
  }

  init(_ configuration: Configuration = Configuration()) {
    var fds: [Int32] = [-1, -1]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
    precondition(rc == 0, "socketpair failed")
    clientDescriptor = fds[0]
    stubDescriptor = fds[1]
    let thread = Thread { [self] in
      let model = QEMU72Model(configuration)
      self.serve(model, configuration)
      self.finished.signal()
    }
    thread.start()
  }

  /// Every byte the stub received.
  var received: [UInt8] { state.withLockedValue { $0.received } }
  /// The payloads of the well-formed requests the stub received, in order.
  var requests: [String] { state.withLockedValue { $0.requests } }
  /// Whether the stub received `text` anywhere in its input.
  func receivedText() -> String { String(decoding: received, as: UTF8.self) }

  /// Stops the stub thread and closes its end.
  func stop() {
    state.withLockedValue { $0.stopRequested = true }
    finished.wait()
  }

  private func write(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return send(stubDescriptor, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
      }
      if n <= 0 {
        if errno == EINTR { continue }
        return
      }
      offset += n
    }
  }

  private func serve(_ model: QEMU72Model, _ configuration: Configuration) {
    defer { close(stubDescriptor) }
    var decoder = PacketDecoder()
    var faults = configuration.faults
    var lastPacket: [UInt8] = []
    if !configuration.greeting.isEmpty { write(configuration.greeting) }
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      if state.withLockedValue({ $0.stopRequested }) { return }
      var pfd = pollfd(fd: stubDescriptor, events: Int16(POLLIN), revents: 0)
      let ready = poll(&pfd, 1, 10)
      if ready <= 0 { continue }
      let n = buffer.withUnsafeMutableBytes { recv(stubDescriptor, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return }
      let chunk = Array(buffer[0..<n])
      state.withLockedValue { $0.received += chunk }
      // QEMU 7.2's gdb_read_byte(), byte by byte: while a sent packet is unacknowledged,
      // `-` resends it, `+` or `$` forget it, and other bytes are dropped; otherwise, while
      // the VM runs, any byte stops it (sending T02) and is thrown away.
      for byte in chunk {
        if !lastPacket.isEmpty && !decoder.isInsidePacket {
          if byte == UInt8(ascii: "-") { write(lastPacket) }
          if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "$") { lastPacket = [] }
          if byte != UInt8(ascii: "$") { continue }
        }
        if model.running && !decoder.isInsidePacket {
          model.running = false
          lastPacket = PacketEncoder.frame(model.stopReply(signal: 2))
          write(lastPacket)
          model.stopped()
          continue
        }
        for event in decoder.feed(CollectionOfOne(byte)) {
          switch event {
          case .nak:
            // Only meaningful with a packet outstanding (handled above).
            break
          case .checksumMismatch, .malformed:
            write(Array("-".utf8))
          case .packet(let packet):
            let request = String(decoding: packet.payload, as: UTF8.self)
            state.withLockedValue { $0.requests.append(request) }
            var fault: StubFault.Kind? = nil
            if let i = faults.firstIndex(where: { $0.times > 0 && request.hasPrefix($0.prefix) }) {
              faults[i].times -= 1
              fault = faults[i].kind
            }
            if case .silence = fault { continue }
            if case .nakRequest = fault {
              write(Array("-".utf8))
              continue
            }
            write(Array("+".utf8))
            if case .ackOnly = fault { continue }
            guard let reply = model.respond(to: request) else { continue }
            let framed = PacketEncoder.frame(Array(reply.utf8))
            lastPacket = framed
            switch fault {
            case .corruptChecksum:
              var bad = framed
              bad[bad.count - 1] =
                bad[bad.count - 1] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
              write(bad)
            case .runLengthEncode:
              write(FakeStub.runLengthFrame(Array(reply.utf8)))
            case .escapeEverything:
              write(FakeStub.escapedFrame(Array(reply.utf8)))
            case .truncateAndClose(let count):
              write(Array(framed.prefix(count)))
              return
            case .truncateThenRestart(let count):
              write(Array(framed.prefix(count)) + framed)
            case .prefix(let bytes):
              write(bytes + framed)
            case .oversized(let count):
              write(PacketEncoder.frame([UInt8](repeating: UInt8(ascii: "0"), count: count)))
            case .delay(let ms):
              usleep(useconds_t(ms * 1000))
              write(framed)
            case .replaceRaw(let bytes):
              write(bytes)
            default:
              write(framed)
            }
          case .interrupt:
            // A stopped VM ignores `\x03` (the running case was handled above).
            break
          case .ack, .garbage, .oversized:
            break
          }
        }
      }
    }
  }

  /// Frames `payload` with gdb run-length encoding for runs of 4 or more.
  static func runLengthFrame(_ payload: [UInt8]) -> [UInt8] {
    var wire: [UInt8] = []
    var i = 0
    while i < payload.count {
      let c = payload[i]
      var run = 1
      while i + run < payload.count, payload[i + run] == c, run < 97 { run += 1 }
      var extra = run - 1
      // Count characters 35 ('#') and 36 ('$') are forbidden: use a shorter run.
      if extra + 29 == 35 || extra + 29 == 36 { extra = 5 }
      if extra >= 3 {
        wire.append(c)
        wire.append(UInt8(ascii: "*"))
        wire.append(UInt8(extra + 29))
        i += extra + 1
      } else {
        wire.append(c)
        i += 1
      }
    }
    return [UInt8(ascii: "$")] + wire + [UInt8(ascii: "#")] + Array(hex2(PacketEncoder.checksum(wire)).utf8)
  }

  /// Frames `payload` escaping every byte whose escaped form is not special.
  static func escapedFrame(_ payload: [UInt8]) -> [UInt8] {
    var wire: [UInt8] = []
    for b in payload {
      // Not where the escaped form would be `#`, `$` or `*` (0x03, 0x04, 0x0a): a stub
      // never sends those (`}*` reads as a run length, as in gdb).
      if b == 0x03 || b == 0x04 || b == 0x0a {
        wire.append(b)
        continue
      }
      wire.append(UInt8(ascii: "}"))
      wire.append(b ^ 0x20)
    }
    return [UInt8(ascii: "$")] + wire + [UInt8(ascii: "#")] + Array(hex2(PacketEncoder.checksum(wire)).utf8)
  }
}

/// The behaviour of QEMU 7.2's stub for an x86_64 machine at the reset vector.
final class QEMU72Model {
  let configuration: FakeStub.Configuration
  var running: Bool
  var threadCursor = 0
  var selected = 1
  var physical = false
  var writes: [UInt64: UInt8] = [:]
  var rip: [Int: UInt64] = [:]
  var pendingStep: Int? = nil
  var staleStep: Int? = nil

  init(_ configuration: FakeStub.Configuration) {
    self.configuration = configuration
    self.running = configuration.startRunning
  }

  func stopReply(signal: UInt8, thread: Int = 1) -> [UInt8] {
    Array("T\(hex2(signal))thread:p01.\(hex2(UInt8(thread)));".utf8)
  }

  func stopped() {
    if let p = pendingStep {
      staleStep = p
      pendingStep = nil
    }
  }

  static func memoryByte(_ address: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: address &* 31 &+ 7) }

  func registers(of thread: Int) -> String {
    var g = Array(QEMU72.resetRegisters.utf8)
    // rax = thread number, rip as stepped.
    let rax = Array(hexString(withUnsafeBytes(of: UInt64(thread).littleEndian, Array.init)).utf8)
    g.replaceSubrange(0..<16, with: rax)
    let r = Array(hexString(withUnsafeBytes(of: (rip[thread] ?? 0xfff0).littleEndian, Array.init)).utf8)
    g.replaceSubrange(256..<272, with: r)
    return String(decoding: g, as: UTF8.self)
  }

  func xfer(_ file: String, _ offset: Int, _ length: Int) -> String {
    guard file == "target.xml" || file == "i386-64bit.xml" else { return "E00" }
    let data = Array((file == "target.xml" ? QEMU72.targetXML : QEMU72.i386_64bitXML).utf8)
    guard offset <= data.count else { return "E00" }
    let end = min(data.count, offset + length)
    let chunk = String(decoding: data[offset..<end], as: UTF8.self)
    return (end == data.count ? "l" : "m") + chunk
  }

  func threadNumber(_ text: Substring) -> Int? {
    guard let id = ThreadID(parsing: text), id.tid >= 1, id.tid <= configuration.vcpuCount else { return nil }
    return id.tid
  }

  /// The reply payload for `request`, or nil for none.
  func respond(to request: String) -> String? {
    if request.hasPrefix("qSupported") { return QEMU72.supported }
    if request.hasPrefix("qXfer:features:read:") {
      let parts = request.dropFirst("qXfer:features:read:".count).split(separator: ":")
      guard parts.count == 2 else { return "E00" }
      let nums = parts[1].split(separator: ",")
      guard nums.count == 2, let o = Int(nums[0], radix: 16), let l = Int(nums[1], radix: 16) else {
        return "E00"
      }
      return xfer(String(parts[0]), o, l)
    }
    if request == "qfThreadInfo" {
      threadCursor = 1
      return "mp01.01"
    }
    if request == "qsThreadInfo" {
      threadCursor += 1
      return threadCursor <= configuration.vcpuCount ? "mp01.\(hex2(UInt8(threadCursor)))" : "l"
    }
    if request.hasPrefix("qThreadExtraInfo,") {
      guard let t = threadNumber(request.dropFirst(17)) else { return "E22" }
      let text = "CPU#\(t - 1) [\(configuration.halted.contains(t - 1) ? "halted " : "running")]"
      return hexString(text.utf8)
    }
    if request.hasPrefix("Hg") {
      guard let t = threadNumber(request.dropFirst(2)) else { return "E22" }
      selected = t
      return "OK"
    }
    if request == "g" { return registers(of: selected) }
    if request.hasPrefix("p") {
      guard let n = Int(request.dropFirst(), radix: 16) else { return "E14" }
      let g = Array(registers(of: selected).utf8)
      if n == 16 { return String(decoding: g[256..<272], as: UTF8.self) }
      if n == 0 { return String(decoding: g[0..<16], as: UTF8.self) }
      return "E14"
    }
    if request.hasPrefix("Qqemu.PhyMemMode:") {
      physical = request.hasSuffix("1")
      return "OK"
    }
    if request.hasPrefix("m") {
      let parts = request.dropFirst().split(separator: ",")
      guard parts.count == 2, let a = UInt64(parts[0], radix: 16), let l = Int(parts[1], radix: 16) else {
        return "E22"
      }
      if l > 0x800 { return "E22" }
      if !physical && a >= 0x4000_0000 { return "E14" }
      var out = ""
      for i in 0..<UInt64(l) {
        let at = a &+ i
        out += hex2(writes[at] ?? QEMU72Model.memoryByte(at))
      }
      return out
    }
    if request.hasPrefix("M") {
      let head = request.dropFirst().split(separator: ":", maxSplits: 1)
      guard head.count == 2 else { return "E22" }
      let parts = head[0].split(separator: ",")
      guard parts.count == 2, let a = UInt64(parts[0], radix: 16) else { return "E22" }
      let hex = Array(head[1].utf8)
      var i = 0
      while i + 1 < hex.count {
        guard let b = UInt8(String(decoding: hex[i..<(i + 2)], as: UTF8.self), radix: 16) else {
          return "E22"
        }
        writes[a &+ UInt64(i / 2)] = b
        i += 2
      }
      return "OK"
    }
    if request.hasPrefix("vCont;s:") {
      guard let t = threadNumber(request.dropFirst(8)) else { return "E22" }
      if configuration.halted.contains(t - 1) || configuration.stepHangs.contains(t - 1) {
        running = true
        pendingStep = t
        return nil
      }
      rip[t] = (rip[t] ?? 0xfff0) + 5
      return String(decoding: stopReply(signal: 5, thread: t), as: UTF8.self)
    }
    if request == "c" || request == "vCont;c" {
      if let s = staleStep {
        // QEMU 7.2: the interrupted step's flag is still set; resuming stops at once.
        staleStep = nil
        return String(decoding: stopReply(signal: 5, thread: s), as: UTF8.self)
      }
      running = true
      return nil
    }
    if request == "D;1" { return "OK" }
    if request.hasPrefix("qRcmd,") { return "OK" }
    return ""
  }
}

/// A peer that answers every chunk it receives with seeded random bytes: damaged and
/// valid packets with random payloads, stray acks, garbage, sometimes nothing, and after
/// a while it hangs up. The client must turn all of it into values or errors.
final class HostilePeer: Sendable {
  let clientDescriptor: Int32
  private let peerDescriptor: Int32
  private let stopRequested = NIOLockedValueBox(false)
  private let finished = DispatchSemaphore(value: 0)

  init(seed: UInt64) {
    var fds: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
    clientDescriptor = fds[0]
    peerDescriptor = fds[1]
    Thread { [self] in
      self.serve(seed: seed)
      self.finished.signal()
    }.start()
  }

  func stop() {
    stopRequested.withLockedValue { $0 = true }
    finished.wait()
  }

  private func serve(seed: UInt64) {
    defer { close(peerDescriptor) }
    var rng = SeededGenerator(seed: seed)
    var buffer = [UInt8](repeating: 0, count: 65536)
    let payloads: [String] = [
      "OK", "E14", "E22", "", "T02thread:p01.01;", "T05thread:p01.09;", "S05", "W00", "X09", "O4869",
      "mp01.01", "l", "m<feature/>", "l<target><reg name=\"a\" bitsize=\"64\"/></target>",
      "PacketSize=1000;qXfer:features:read+;multiprocess+", "4350552331205b68616c746564205d",
      String(repeating: "0", count: 1216), String(repeating: "ab", count: 2048), "zz", "Tqq", "0",
    ]
    var replies = 0
    while !stopRequested.withLockedValue({ $0 }) {
      var pfd = pollfd(fd: peerDescriptor, events: Int16(POLLIN), revents: 0)
      if poll(&pfd, 1, 10) <= 0 { continue }
      let n = buffer.withUnsafeMutableBytes { recv(peerDescriptor, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return }
      replies += 1
      if replies > 400 { return }  // hang up eventually
      var out: [UInt8] = []
      for _ in 0..<Int.random(in: 0...4, using: &rng) {
        let payload = Array((payloads.randomElement(using: &rng) ?? "").utf8)
        switch Int.random(in: 0...9, using: &rng) {
        case 0: out += Array("+".utf8)
        case 1: out += Array("-".utf8)
        case 2:
          out += (0..<Int.random(in: 1...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 3:
          var framed = PacketEncoder.frame(payload)
          if !framed.isEmpty { framed[Int.random(in: 0..<framed.count, using: &rng)] ^= 0x5a }
          out += framed
        case 4: out += Array(PacketEncoder.frame(payload).prefix(Int.random(in: 0...8, using: &rng)))
        case 5: out += FakeStub.runLengthFrame(payload)
        default: out += Array("+".utf8) + PacketEncoder.frame(payload)
        }
      }
      var offset = 0
      while offset < out.count {
        let w = out.withUnsafeBytes { raw -> Int in
          guard let base = raw.baseAddress else { return 0 }
          return send(peerDescriptor, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
        }
        if w <= 0 { return }
        offset += w
      }
    }
  }
}
