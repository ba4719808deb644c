/// The value of one register, in target byte order (little-endian on x86).
public struct RegisterValue: Sendable, Equatable, CustomStringConvertible {
  /// The raw bytes as the stub sent them.
  public var bytes: [UInt8]

  /// Creates a value from raw little-endian bytes.
  public init(bytes: [UInt8]) { self.bytes = bytes }

  /// The value as an unsigned integer, for registers of at most 64 bits.
  public var uint64: UInt64? {
    guard !bytes.isEmpty, bytes.count <= 8 else { return nil }
    var v: UInt64 = 0
    for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
    return v
  }

  /// `0x…` for registers of at most 64 bits, raw hex otherwise.
  public var description: String {
    if let v = uint64 { return "0x" + String(v, radix: 16) }
    return Hex.string(bytes)
  }
}

/// All registers of one thread, decoded from a `g` reply through the ``TargetDescription``.
public struct RegisterSet: Sendable, Equatable {
  /// The thread the registers belong to.
  public var thread: ThreadID
  /// The layout the reply was decoded with.
  public var target: TargetDescription
  /// The raw `g` reply bytes (an `xx` pair, meaning "unavailable", decodes as 0).
  public var raw: [UInt8]
  /// Byte offsets that the stub marked unavailable (`xx`).
  public var unavailableOffsets: Set<Int>

  /// Creates a register set from decoded `g` bytes.
  public init(thread: ThreadID, target: TargetDescription, raw: [UInt8], unavailableOffsets: Set<Int> = []) {
    self.thread = thread
    self.target = target
    self.raw = raw
    self.unavailableOffsets = unavailableOffsets
  }

  /// Decodes a `g` reply payload (hex, possibly with `xx` for unavailable bytes).
  public init(thread: ThreadID, target: TargetDescription, reply: [UInt8]) throws(GDBRemoteError) {
    guard reply.count % 2 == 0 else {
      throw GDBRemoteError(
        .protocolViolation, "register reply has an odd number of hex digits",
        received: Printable.excerpt(reply))
    }
    var raw: [UInt8] = []
    raw.reserveCapacity(reply.count / 2)
    var unavailable: Set<Int> = []
    var i = 0
    while i + 1 < reply.count {
      let h = reply[i]
      let l = reply[i + 1]
      if h == UInt8(ascii: "x") && l == UInt8(ascii: "x") {
        unavailable.insert(raw.count)
        raw.append(0)
      } else if let hv = Hex.value(of: h), let lv = Hex.value(of: l) {
        raw.append(hv << 4 | lv)
      } else {
        throw GDBRemoteError(
          .protocolViolation, "register reply contains a non-hex character",
          received: Printable.excerpt(reply))
      }
      i += 2
    }
    // A stub may send fewer registers than described (gdb treats the rest as not in the
    // `g` packet), but never more.
    guard raw.count <= target.registerBytes else {
      throw GDBRemoteError(
        .protocolViolation,
        "register reply has \(raw.count) bytes, the target description only \(target.registerBytes)",
        received: Printable.excerpt(reply))
    }
    self.init(thread: thread, target: target, raw: raw, unavailableOffsets: unavailable)
  }

  /// The value of register `name`, or nil if it is not described, not in the reply, or
  /// unavailable.
  public subscript(name: String) -> RegisterValue? {
    guard let r = target.register(named: name) else { return nil }
    return value(of: r)
  }

  /// The value of register `r`, or nil if it is not in the reply or unavailable.
  public func value(of r: RegisterDescription) -> RegisterValue? {
    guard r.offset + r.byteSize <= raw.count else { return nil }
    if !unavailableOffsets.isEmpty,
      (r.offset..<(r.offset + r.byteSize)).contains(where: unavailableOffsets.contains)
    {
      return nil
    }
    return RegisterValue(bytes: Array(raw[r.offset..<(r.offset + r.byteSize)]))
  }

  /// The value of a register of at most 64 bits as an integer.
  public func uint64(_ name: String) -> UInt64? { self[name]?.uint64 }

  /// All available registers in description order.
  public var values: [(register: RegisterDescription, value: RegisterValue)] {
    target.registers.compactMap { r in value(of: r).map { (r, $0) } }
  }
}
