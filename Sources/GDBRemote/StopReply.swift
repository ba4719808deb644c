/// A stop reply (`T`, `S`, `W` or `X` packet): why the target stopped or ended.
public struct StopReply: Sendable, Equatable, CustomStringConvertible {
  /// What happened.
  public enum Kind: Sendable, Equatable {
    /// The target stopped with a signal (`Sxx` or `Txx…`). QEMU sends 2 (SIGINT) for an
    /// interrupt or a QMP `stop`, 5 (SIGTRAP) after a step or breakpoint.
    case signal(UInt8)
    /// The process exited with a status (`Wxx`).
    case exited(status: UInt8)
    /// The process was terminated by a signal (`Xxx`).
    case terminated(signal: UInt8)
  }

  /// One `name:value` pair of a `T` packet.
  public struct Field: Sendable, Equatable {
    /// The name (`thread`, `watch`, `swbreak`, a hex register number, …).
    public var name: String
    /// The value, as sent.
    public var value: String
  }

  /// What happened.
  public var kind: Kind
  /// The thread that stopped (`thread:` field), if named.
  public var thread: ThreadID?
  /// The process of a `W`/`X` reply (`;process:pid`), if named.
  public var process: Int?
  /// All `name:value` fields in order.
  public var fields: [Field]
  /// The payload as received.
  public var raw: String

  /// The signal number for `S`/`T` replies, nil for `W`/`X`.
  public var signal: UInt8? {
    if case .signal(let s) = kind { return s }
    return nil
  }

  /// The address of a watchpoint hit (`watch`, `rwatch` or `awatch`), if any.
  public var watchAddress: UInt64? {
    for f in fields where f.name == "watch" || f.name == "rwatch" || f.name == "awatch" {
      return Hex.number(f.value)
    }
    return nil
  }

  /// Whether the process has ended (`W` or `X`).
  public var isExit: Bool {
    if case .signal = kind { return false }
    return true
  }

  /// The payload as received.
  public var description: String { raw }

  /// Parses a stop reply payload; nil if `payload` is not one.
  public init?(parsing payload: some Collection<UInt8>) {
    let bytes = Array(payload)
    guard bytes.count >= 3, let code = Hex.decode(bytes[1..<3])?.first else { return nil }
    let raw = String(decoding: bytes, as: UTF8.self)
    var fields: [Field] = []
    var thread: ThreadID? = nil
    var process: Int? = nil
    let kind: Kind
    // Parsed leniently, as gdb does: a field without a colon, a thread id that does not
    // parse or an odd suffix keeps the rest, so a stop reply is never mistaken for a reply.
    switch bytes[0] {
    case UInt8(ascii: "S"):
      kind = .signal(code)
    case UInt8(ascii: "T"):
      kind = .signal(code)
      let rest = bytes[3...]
      for part in rest.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: true) {
        guard let colon = part.firstIndex(of: UInt8(ascii: ":")) else {
          fields.append(Field(name: String(decoding: part, as: UTF8.self), value: ""))
          continue
        }
        let name = String(decoding: part[..<colon], as: UTF8.self)
        let value = String(decoding: part[(colon + 1)...], as: UTF8.self)
        fields.append(Field(name: name, value: value))
        if name == "thread", thread == nil { thread = ThreadID(parsing: value) }
      }
    case UInt8(ascii: "W"), UInt8(ascii: "X"):
      kind = bytes[0] == UInt8(ascii: "W") ? .exited(status: code) : .terminated(signal: code)
      if bytes.count > 3 {
        // `;process:pid`
        let text = String(decoding: bytes[3...], as: UTF8.self)
        if text.hasPrefix(";process:"), let p = Hex.number(text.dropFirst(9)), p <= UInt64(Int32.max) {
          process = Int(p)
        }
      }
    default:
      return nil
    }
    self.kind = kind
    self.thread = thread
    self.process = process
    self.fields = fields
    self.raw = raw
  }

  /// Parses a stop reply given as text.
  public init?(parsing text: String) { self.init(parsing: Array(text.utf8)) }
}
