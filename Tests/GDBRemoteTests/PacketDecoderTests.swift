import GDBRemote
import Testing

/// A deterministic generator (SplitMix64) so that fuzz failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// An independent, slow reference decoder for the wire form of one packet.
func referenceDecode(_ wire: [UInt8]) -> [UInt8]? {
  // gdb's order: run lengths repeat the character as sent (read_frame), then escapes are
  // undone (remote_unescape_input).
  var expanded: [UInt8] = []
  var i = 0
  while i < wire.count {
    let c = wire[i]
    if c == UInt8(ascii: "*") {
      guard i + 1 < wire.count, let last = expanded.last, wire[i + 1] >= 32, wire[i + 1] <= 126 else {
        return nil
      }
      expanded += [UInt8](repeating: last, count: Int(wire[i + 1]) - 29)
      i += 2
    } else {
      expanded.append(c)
      i += 1
    }
  }
  var out: [UInt8] = []
  var j = 0
  while j < expanded.count {
    if expanded[j] == UInt8(ascii: "}") {
      guard j + 1 < expanded.count else { return nil }
      out.append(expanded[j + 1] ^ 0x20)
      j += 2
    } else {
      out.append(expanded[j])
      j += 1
    }
  }
  return out
}

@Suite struct PacketDecoderTests {
  @Test func decodesAcksInterruptsAndPackets() {
    var d = PacketDecoder()
    let events = d.feed(Array("+-\u{03}$OK#9a".utf8))
    #expect(events.count == 4)
    #expect(events[0] == .ack)
    #expect(events[1] == .nak)
    #expect(events[2] == .interrupt)
    guard case .packet(let p) = events[3] else {
      Issue.record("expected a packet, got \(events[3])")
      return
    }
    #expect(p.payload == Array("OK".utf8))
    #expect(p.checksum == 0x9a)
  }

  @Test func everyFragmentationGivesTheSameEvents() {
    let stream = Array("+$T02thread:p01.01;#03$O48690a#f1+$mp01.02#ce".utf8)
    var whole = PacketDecoder()
    let expected = whole.feed(stream)
    #expect(expected.count == 5)
    for split in 0...stream.count {
      var d = PacketDecoder()
      let events = d.feed(stream[..<split]) + d.feed(stream[split...])
      #expect(events == expected, "split at \(split)")
    }
    var byteByByte = PacketDecoder()
    var events: [PacketDecoder.Event] = []
    for b in stream { events += byteByByte.feed([b]) }
    #expect(events == expected)
  }

  @Test func expandsRunLengthsLikeGDB() {
    // gdb's own example: "0* " is "0000".
    var d = PacketDecoder()
    let wire = Array("0* ".utf8)
    let framed = [UInt8(ascii: "$")] + wire + Array("#\(hex2(PacketEncoder.checksum(wire)))".utf8)
    let events = d.feed(framed)
    #expect(
      events == [
        .packet(.init(payload: Array("0000".utf8), wire: wire, checksum: PacketEncoder.checksum(wire)))
      ])

    let g = Array(QEMU72.resetRegisters.utf8)
    var d2 = PacketDecoder()
    let encoded = FakeStub.runLengthFrame(g)
    #expect(encoded.count < g.count / 2, "the fixture should compress")
    guard case .packet(let p)? = d2.feed(encoded).first else {
      Issue.record("no packet")
      return
    }
    #expect(p.payload == g)
  }

  @Test func decodesEscapesAndRoundTripsBinary() {
    var all: [UInt8] = Array(0...255)
    all += Array("$#}*".utf8)
    let framed = PacketEncoder.frame(all)
    // Framing characters never appear raw inside the packet.
    let inner = framed[1..<(framed.count - 3)]
    #expect(!inner.contains(UInt8(ascii: "$")) && !inner.contains(UInt8(ascii: "#")))
    var d = PacketDecoder()
    guard case .packet(let p)? = d.feed(framed).first else {
      Issue.record("no packet")
      return
    }
    #expect(p.payload == all)

    var d2 = PacketDecoder()
    guard case .packet(let q)? = d2.feed(FakeStub.escapedFrame(Array("qXfer l<x/>".utf8))).first else {
      Issue.record("no packet")
      return
    }
    #expect(q.payload == Array("qXfer l<x/>".utf8))
  }

  @Test func reportsChecksumMismatchWithoutDeliveringContent() {
    var d = PacketDecoder()
    let events = d.feed(Array("$g#00".utf8))
    #expect(events == [.checksumMismatch(received: 0, computed: 0x67, wire: Array("g".utf8))])
  }

  @Test func malformedPacketsAreReportedAndTheStreamRecovers() {
    var d = PacketDecoder()
    let events = d.feed(Array("$abc$OK#9a$xy#zz$*a#00$OK#9a".utf8))
    #expect(events.contains(.malformed(.restartedByNewPacket)))
    #expect(events.contains(.malformed(.invalidChecksumDigits)))
    #expect(events.contains(.malformed(.invalidRunLength)))
    let packets = events.compactMap { e -> [UInt8]? in
      if case .packet(let p) = e { return p.payload }
      return nil
    }
    #expect(packets == [Array("OK".utf8), Array("OK".utf8)])
    #expect(!d.isInsidePacket)
  }

  @Test func oversizedPacketsAreBoundedAndSkipped() {
    var d = PacketDecoder(maximumPacketSize: 1024)
    var stream = [UInt8(ascii: "$")] + [UInt8](repeating: UInt8(ascii: "a"), count: 5000) + Array("#00".utf8)
    stream += Array("$OK#9a".utf8)
    let events = d.feed(stream)
    #expect(events.count == 2)
    #expect(events.first == .oversized(length: 1025))
    #expect(events.last == .packet(.init(payload: Array("OK".utf8), wire: Array("OK".utf8), checksum: 0x9a)))

    // A run length cannot blow up memory either: 200 × "0*~" would expand to 19 400 bytes.
    var d2 = PacketDecoder(maximumPacketSize: 1024)
    let wire = [UInt8](Array("0*~".utf8) + [UInt8](repeating: 0, count: 0)).repeated(200)
    let framed = [UInt8(ascii: "$")] + wire + Array("#\(hex2(PacketEncoder.checksum(wire)))".utf8)
    let events2 = d2.feed(framed)
    #expect(events2.count == 1)
    if case .oversized = events2.first {} else { Issue.record("expected oversized, got \(events2)") }
  }

  @Test func garbageIsChunkedAndCounted() {
    var d = PacketDecoder()
    let junk = [UInt8](repeating: UInt8(ascii: "z"), count: 600)
    let events = d.feed(junk + Array("$OK#9a".utf8))
    let garbage = events.reduce(0) { n, e in
      if case .garbage(let g) = e { return n + g.count }
      return n
    }
    #expect(garbage == 600)
    #expect(
      events.allSatisfy { e in
        if case .garbage(let g) = e { return g.count <= 256 }
        return true
      })
  }

  /// 100 000 seeded inputs: random bytes, and valid packets with mutations. No crash, no
  /// hang (each input is decoded in one pass), and invariants hold for every event.
  @Test func fuzz() {
    var rng = SeededGenerator(seed: 0x5EED_0F_6DB)
    let alphabet = Array("$#}*+-\u{03}0123456789abcdefOKTmlpqXx;:,.".utf8)
    let samples: [[UInt8]] = [
      Array("OK".utf8), Array("T05thread:p01.02;".utf8), Array(QEMU72.resetRegisters.utf8),
      Array("l<target/>".utf8), Array("E14".utf8), Array("O48656c6c6f".utf8),
      [0, 1, 2, 0x23, 0x24, 0x7d, 0x2a],
    ]
    let maximum = 2048
    var packetsSeen = 0
    for iteration in 0..<100_000 {
      var input: [UInt8]
      switch iteration % 4 {
      case 0:
        input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
      case 1:
        input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? 0
        }
      default:
        // Valid packets (plain, run-length or escaped) with a few random mutations.
        input = []
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
          let payload = samples.randomElement(using: &rng) ?? []
          switch Int.random(in: 0...2, using: &rng) {
          case 0: input += PacketEncoder.frame(payload)
          case 1: input += FakeStub.runLengthFrame(payload)
          default: input += FakeStub.escapedFrame(payload)
          }
        }
        for _ in 0..<Int.random(in: 0...3, using: &rng) where !input.isEmpty {
          let at = Int.random(in: 0..<input.count, using: &rng)
          switch Int.random(in: 0...2, using: &rng) {
          case 0: input[at] = alphabet.randomElement(using: &rng) ?? 0
          case 1: input.remove(at: at)
          default: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
          }
        }
      }
      var decoder = PacketDecoder(maximumPacketSize: maximum)
      // Feed in random fragments.
      var events: [PacketDecoder.Event] = []
      var rest = input[...]
      while !rest.isEmpty {
        let n = Int.random(in: 1...max(1, rest.count), using: &rng)
        events += decoder.feed(rest.prefix(n))
        rest = rest.dropFirst(n)
      }
      #expect(events.count <= input.count + 1)
      var garbageBytes = 0
      for event in events {
        switch event {
        case .packet(let p):
          packetsSeen += 1
          if PacketEncoder.checksum(p.wire) != p.checksum {
            Issue.record("checksum not verified for \(p.wire) in input \(input)")
          }
          if referenceDecode(p.wire) != p.payload {
            Issue.record("payload differs from the reference decoding for \(p.wire)")
          }
          if p.payload.count > maximum || p.wire.count > maximum {
            Issue.record("packet above the bound")
          }
        case .checksumMismatch(let received, let computed, let wire):
          if received == computed || PacketEncoder.checksum(wire) != computed {
            Issue.record("bogus mismatch event")
          }
        case .garbage(let g):
          garbageBytes += g.count
          if g.isEmpty || g.count > 256 { Issue.record("bad garbage chunk") }
        default:
          break
        }
      }
      if garbageBytes > input.count { Issue.record("more garbage than input") }
    }
    #expect(packetsSeen > 30_000, "the mutated-packet inputs should mostly decode")
  }
}

extension Array {
  func repeated(_ n: Int) -> [Element] { (0..<n).flatMap { _ in self } }
}
