/// An error from the GDB remote serial protocol layer.
///
/// Every failure of this module is a value of this one type: a ``Code`` that says what
/// kind of failure it was, plus context (what was sent, what arrived, the address of a
/// failed memory access, the `errno` of a failed system call). Nothing in this module
/// traps on bad data from the peer.
public struct GDBRemoteError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: String, Sendable, Equatable, CaseIterable {
    /// The address string could not be parsed (``GDBAddress``).
    case invalidAddress
    /// Creating or connecting the socket failed.
    case connectFailed
    /// A system call on the socket failed; see ``GDBRemoteError/errno``.
    case ioFailure
    /// No answer arrived before the deadline.
    case timeout
    /// The peer closed the connection (possibly in the middle of a packet).
    case connectionClosed
    /// The connection was closed or detached by this side and cannot be used any more.
    case notConnected
    /// The peer sent bytes that do not follow the protocol.
    case protocolViolation
    /// A packet's checksum stayed wrong after the bounded number of retransmissions.
    case checksumMismatch
    /// A packet exceeded the decoder's size bound and was discarded.
    case packetTooLarge
    /// The stub answered with an `Exx` error reply.
    case errorReply
    /// The stub answered with an empty reply: it does not support the request.
    case unsupported
    /// A memory access was refused by the stub; ``GDBRemoteError/address`` says where.
    case memoryFault
    /// The request needs a stopped target, but the target is believed to be running.
    case targetRunning
    /// The thread to step is halted (waiting for an interrupt or a SIPI): the step could
    /// never complete, so it was refused.
    case threadHalted
    /// A single step did not finish in time; the target was interrupted with `\x03`.
    case stepTimedOut
    /// The target description XML could not be fetched or parsed.
    case invalidTargetDescription
    /// A register name or number is not in the target description.
    case unknownRegister
    /// An argument was outside what the protocol or the stub accepts.
    case invalidArgument
    /// The stream lost its order before this request was answered (the VM was resumed and
    /// stopped during the burst, or a damaged packet arrived where a reply was due), so its
    /// reply could not be told apart from others. The request may or may not have run; the
    /// connection finds its place again (with a probe) before the next request.
    case replyLost
  }

  /// The kind of failure.
  public var code: Code
  /// A sentence for humans that says what went wrong.
  public var message: String
  /// A printable excerpt of the request that was being answered, if any.
  public var sent: String?
  /// A printable excerpt of what arrived, if anything relevant did.
  public var received: String?
  /// The guest address of a failed memory access.
  public var address: UInt64?
  /// The `errno` of a failed system call.
  public var errno: Int32?
  /// The error number of an `Exx` reply.
  public var stubErrorNumber: UInt8?
  /// Whether repeating the request on its own may succeed (a reply damaged in a pipeline).
  var isTransient = false

  /// Creates an error value.
  public init(
    _ code: Code, _ message: String, sent: String? = nil, received: String? = nil,
    address: UInt64? = nil, errno: Int32? = nil, stubErrorNumber: UInt8? = nil
  ) {
    self.code = code
    self.message = message
    self.sent = sent
    self.received = received
    self.address = address
    self.errno = errno
    self.stubErrorNumber = stubErrorNumber
  }

  /// A one-line rendering with all context that is present.
  public var description: String {
    var text = "gdb remote: \(code.rawValue): \(message)"
    if let address { text += " (address 0x\(String(address, radix: 16)))" }
    if let stubErrorNumber { text += " (stub error E\(Hex.byte(stubErrorNumber)))" }
    if let errno { text += " (errno \(errno))" }
    if let sent { text += "; sent \(sent)" }
    if let received { text += "; received \(received)" }
    return text
  }

  /// Returns a copy whose ``sent`` context is `request`, unless one is already set.
  func sending(_ request: String) -> GDBRemoteError {
    var copy = self
    if copy.sent == nil { copy.sent = Printable.excerpt(request) }
    return copy
  }
}

/// Renders protocol bytes for error messages: printable ASCII as is, the rest escaped,
/// long text shortened in the middle.
enum Printable {
  static let limit = 160

  static func excerpt(_ bytes: some Collection<UInt8>) -> String {
    var out = ""
    var count = 0
    let total = bytes.count
    for byte in bytes {
      if count == limit / 2 && total > limit {
        out += "…(\(total - limit) bytes)…"
      }
      if count >= limit / 2 && count < total - limit / 2 && total > limit {
        count += 1
        continue
      }
      switch byte {
      case 0x20...0x7e: out.unicodeScalars.append(Unicode.Scalar(byte))
      case 0x0a: out += "\\n"
      case 0x0d: out += "\\r"
      default: out += "\\x" + Hex.byte(byte)
      }
      count += 1
    }
    return "\"" + out + "\""
  }

  static func excerpt(_ text: String) -> String { excerpt(Array(text.utf8)) }
}
