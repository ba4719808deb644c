/// A pure, incremental decoder for the byte stream of the GDB remote serial protocol.
///
/// Feed it whatever bytes arrive, in any fragmentation; it returns what they completed:
/// acknowledgements (`+`, `-`), interrupts (`\x03`), packets (`$payload#cs`, checksum
/// verified, `}` escapes and `*` run lengths expanded) and the ways a stream can go
/// wrong. It never traps, never blocks, and holds at most ``maximumPacketSize`` bytes of
/// payload: a longer packet becomes an ``Event/oversized(length:)`` event and is skipped.
///
/// The decoder has no I/O and no clock, so it is tested and fuzzed on its own.
public struct PacketDecoder: Sendable {
  /// One verified packet.
  public struct Packet: Sendable, Equatable {
    /// The payload after expanding `}` escapes and `*` run lengths.
    public var payload: [UInt8]
    /// The bytes between `$` and `#` exactly as they arrived.
    public var wire: [UInt8]
    /// The transmitted checksum, which equals the sum of ``wire`` modulo 256.
    public var checksum: UInt8

    /// Creates a packet value.
    public init(payload: [UInt8], wire: [UInt8], checksum: UInt8) {
      self.payload = payload
      self.wire = wire
      self.checksum = checksum
    }
  }

  /// A way in which a packet was malformed.
  public enum Malformation: Sendable, Equatable {
    /// The two characters after `#` are not hex digits.
    case invalidChecksumDigits
    /// A `$` arrived inside a packet; the partial packet was dropped and a new one begun.
    case restartedByNewPacket
    /// A `*` had no preceding character, or its count character is out of range.
    case invalidRunLength
  }

  /// Something that a chunk of input completed.
  public enum Event: Sendable, Equatable {
    /// A `+` outside a packet.
    case ack
    /// A `-` outside a packet.
    case nak
    /// A `\x03` outside a packet.
    case interrupt
    /// A packet whose checksum matched.
    case packet(Packet)
    /// A complete packet whose checksum did not match; its content is not delivered.
    case checksumMismatch(received: UInt8, computed: UInt8, wire: [UInt8])
    /// A packet that could not be decoded.
    case malformed(Malformation)
    /// A packet grew beyond ``PacketDecoder/maximumPacketSize``; it is being skipped.
    case oversized(length: Int)
    /// Bytes outside any packet that are not `+`, `-` or `\x03` (delivered in chunks of
    /// at most 256 bytes).
    case garbage([UInt8])
  }

  private enum State: Sendable {
    case idle
    case payload
    case runCount
    case checksumHigh
    case checksumLow(UInt8)
    case skipping
    case skippingChecksum(Int)
  }

  /// The largest payload (after expansion) and the largest wire form that are kept.
  public let maximumPacketSize: Int
  private var state: State = .idle
  private var wire: [UInt8] = []
  private var payload: [UInt8] = []
  private var sum: UInt8 = 0
  private var garbage: [UInt8] = []
  private var skippedLength = 0
  /// A `}` arrived and the next payload byte is to be XORed with 0x20.
  private var escapePending = false
  /// The last payload byte as it was on the wire (after run-length expansion, before
  /// unescaping): what a `*` repeats.
  private var lastWire: UInt8?

  /// Creates a decoder that keeps packets up to `maximumPacketSize` bytes (64 KiB by default).
  public init(maximumPacketSize: Int = 64 * 1024) {
    self.maximumPacketSize = max(16, maximumPacketSize)
  }

  /// Whether the decoder is in the middle of a packet (or of skipping an oversized one).
  public var isInsidePacket: Bool {
    if case .idle = state { return false }
    return true
  }

  /// Decodes `bytes` and returns the events they completed, in order.
  public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
    var events: [Event] = []
    feed(bytes, into: &events)
    return events
  }

  /// Decodes `bytes` and appends the events they completed to `events`.
  public mutating func feed(_ bytes: some Sequence<UInt8>, into events: inout [Event]) {
    let array = Array(bytes)
    array.withUnsafeBufferPointer { consume($0, &events) }
  }

  /// Decodes `bytes` and returns the events they completed, in order (no copy).
  public mutating func feed(_ bytes: [UInt8]) -> [Event] {
    var events: [Event] = []
    bytes.withUnsafeBufferPointer { consume($0, &events) }
    return events
  }

  private mutating func consume(_ buffer: UnsafeBufferPointer<UInt8>, _ events: inout [Event]) {
    var i = 0
    while i < buffer.count {
      if case .payload = state, !escapePending {
        // Fast path: copy a run of ordinary payload bytes at once.
        let room = maximumPacketSize - max(wire.count, payload.count)
        let end = min(buffer.count, i + max(0, room))
        var j = i
        while j < end {
          let b = buffer[j]
          if b == UInt8(ascii: "$") || b == UInt8(ascii: "#") || b == UInt8(ascii: "}")
            || b == UInt8(ascii: "*")
          {
            break
          }
          j += 1
        }
        if j > i {
          let run = UnsafeBufferPointer(rebasing: buffer[i..<j])
          wire.append(contentsOf: run)
          payload.append(contentsOf: run)
          for b in run { sum &+= b }
          lastWire = buffer[j - 1]
          i = j
          continue
        }
      }
      step(buffer[i], &events)
      i += 1
    }
    flushGarbage(&events)
  }

  /// Forgets any partial packet and pending garbage, as after a reconnect.
  public mutating func reset() {
    state = .idle
    escapePending = false
    lastWire = nil
    wire.removeAll(keepingCapacity: true)
    payload.removeAll(keepingCapacity: true)
    garbage.removeAll(keepingCapacity: true)
    sum = 0
    skippedLength = 0
  }

  private mutating func beginPacket() {
    state = .payload
    escapePending = false
    lastWire = nil
    wire.removeAll(keepingCapacity: true)
    payload.removeAll(keepingCapacity: true)
    sum = 0
  }

  private mutating func flushGarbage(_ events: inout [Event]) {
    if !garbage.isEmpty {
      events.append(.garbage(garbage))
      garbage.removeAll(keepingCapacity: true)
    }
  }

  private mutating func startSkipping(length: Int, _ events: inout [Event]) {
    events.append(.oversized(length: length))
    skippedLength = length
    wire.removeAll(keepingCapacity: false)
    payload.removeAll(keepingCapacity: false)
    state = .skipping
  }

  /// Appends one payload byte as sent (after run-length expansion), undoing `}` escapes.
  private mutating func unescape(_ byte: UInt8) {
    if escapePending {
      payload.append(byte ^ 0x20)
      escapePending = false
    } else if byte == UInt8(ascii: "}") {
      escapePending = true
    } else {
      payload.append(byte)
    }
  }

  private mutating func step(_ byte: UInt8, _ events: inout [Event]) {
    switch state {
    case .idle:
      switch byte {
      case UInt8(ascii: "$"):
        flushGarbage(&events)
        beginPacket()
      case UInt8(ascii: "+"):
        flushGarbage(&events)
        events.append(.ack)
      case UInt8(ascii: "-"):
        flushGarbage(&events)
        events.append(.nak)
      case 0x03:
        flushGarbage(&events)
        events.append(.interrupt)
      default:
        garbage.append(byte)
        if garbage.count >= 256 { flushGarbage(&events) }
      }

    case .payload, .runCount:
      if byte == UInt8(ascii: "$") {
        events.append(.malformed(.restartedByNewPacket))
        beginPacket()
        return
      }
      if byte == UInt8(ascii: "#") {
        if case .payload = state, !escapePending {
          state = .checksumHigh
        } else {
          // A packet may not end inside an escape or a run length.
          events.append(.malformed(.invalidRunLength))
          state = .skippingChecksum(2)
        }
        return
      }
      guard wire.count < maximumPacketSize else {
        startSkipping(length: wire.count + 1, &events)
        return
      }
      wire.append(byte)
      sum &+= byte
      if case .runCount = state {
        // gdb: the count character minus 29 is the number of extra copies (`0* ` = `0000`)
        // of the previous character *as sent*. Run lengths are expanded before escapes are
        // undone (gdb's read_frame, then remote_unescape_input), so after `}]` the copies are
        // literal `]`, not the `}` that the escape stood for.
        guard byte >= 32, byte <= 126, let last = lastWire else {
          events.append(.malformed(.invalidRunLength))
          state = .skipping
          skippedLength = wire.count
          return
        }
        let extra = Int(byte) - 29
        guard payload.count + extra <= maximumPacketSize else {
          startSkipping(length: payload.count + extra, &events)
          return
        }
        for _ in 0..<extra { unescape(last) }
        state = .payload
        return
      }
      if byte == UInt8(ascii: "*") {
        guard lastWire != nil else {
          events.append(.malformed(.invalidRunLength))
          state = .skipping
          skippedLength = wire.count
          return
        }
        state = .runCount
        return
      }
      guard payload.count < maximumPacketSize else {
        startSkipping(length: payload.count + 1, &events)
        return
      }
      lastWire = byte
      unescape(byte)

    case .checksumHigh:
      if byte == UInt8(ascii: "$") {
        events.append(.malformed(.restartedByNewPacket))
        beginPacket()
        return
      }
      guard let high = Hex.value(of: byte) else {
        events.append(.malformed(.invalidChecksumDigits))
        state = .idle
        return
      }
      state = .checksumLow(high)

    case .checksumLow(let high):
      if byte == UInt8(ascii: "$") {
        events.append(.malformed(.restartedByNewPacket))
        beginPacket()
        return
      }
      state = .idle
      guard let low = Hex.value(of: byte) else {
        events.append(.malformed(.invalidChecksumDigits))
        return
      }
      let received = high << 4 | low
      if received == sum {
        events.append(.packet(Packet(payload: payload, wire: wire, checksum: received)))
      } else {
        events.append(.checksumMismatch(received: received, computed: sum, wire: wire))
      }
      wire.removeAll(keepingCapacity: true)
      payload.removeAll(keepingCapacity: true)

    case .skipping:
      if byte == UInt8(ascii: "$") {
        beginPacket()
      } else if byte == UInt8(ascii: "#") {
        state = .skippingChecksum(2)
      } else {
        skippedLength &+= 1
      }

    case .skippingChecksum(let remaining):
      if byte == UInt8(ascii: "$") {
        beginPacket()
      } else if remaining <= 1 {
        state = .idle
      } else {
        state = .skippingChecksum(remaining - 1)
      }
    }
  }
}

/// Frames payloads as packets of the GDB remote serial protocol.
public enum PacketEncoder {
  /// Frames `payload` as `$payload#cs`, escaping `$`, `#`, `}` and `*` so that any bytes
  /// (binary data included) survive.
  public static func frame(_ payload: some Sequence<UInt8>) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "$")]
    out.reserveCapacity(payload.underestimatedCount + 4)
    var sum: UInt8 = 0
    for byte in payload {
      switch byte {
      case UInt8(ascii: "$"), UInt8(ascii: "#"), UInt8(ascii: "}"), UInt8(ascii: "*"):
        out.append(UInt8(ascii: "}"))
        out.append(byte ^ 0x20)
        sum &+= UInt8(ascii: "}") &+ (byte ^ 0x20)
      default:
        out.append(byte)
        sum &+= byte
      }
    }
    out.append(UInt8(ascii: "#"))
    Hex.append(sum, to: &out)
    return out
  }

  /// Frames a textual payload (see ``frame(_:)-(Sequence<UInt8>)``).
  public static func frame(_ payload: String) -> [UInt8] { frame(Array(payload.utf8)) }

  /// The modulo-256 sum of `bytes`, the protocol's checksum.
  public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 {
    bytes.reduce(0, &+)
  }
}
