import Glibc

/// The error class of a QMP error reply (`{"error": {"class": ..., "desc": ...}}`).
///
/// QEMU 7.2 uses the classes below (`qapi/error.json`); any other string is kept as is.
public struct QMPErrorClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public let rawValue: String
  public init(rawValue: String) { self.rawValue = rawValue }

  /// Most errors: bad arguments, a failed operation. The desc says what happened.
  public static let genericError = QMPErrorClass(rawValue: "GenericError")
  /// The command does not exist (or capabilities were not negotiated yet).
  public static let commandNotFound = QMPErrorClass(rawValue: "CommandNotFound")
  /// A device named in the arguments does not exist.
  public static let deviceNotFound = QMPErrorClass(rawValue: "DeviceNotFound")
  /// A device exists but has not been activated by the guest.
  public static let deviceNotActive = QMPErrorClass(rawValue: "DeviceNotActive")
  /// The KVM capability needed is missing.
  public static let kvmMissingCap = QMPErrorClass(rawValue: "KVMMissingCap")

  public var description: String { rawValue }
}

/// Why a QMP operation failed. Every failure of this module is one of these: a QEMU error
/// reply, a timeout, a closed or unusable connection, or a reply that does not match its schema.
public struct QMPError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The kind of failure.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    enum Storage: Hashable, Sendable {
      case commandFailed, timedOut, connectionClosed, connectFailed, protocolViolation
      case unexpectedReply, invalidAddress, cancelled
    }
    let storage: Storage

    /// QEMU answered with an error reply; see `errorClass` and `message`.
    public static let commandFailed = Code(storage: .commandFailed)
    /// No answer arrived within the timeout. The connection stays usable.
    public static let timedOut = Code(storage: .timedOut)
    /// The connection is closed (QEMU exited or was killed, or the client was closed).
    /// Every pending and later call fails with this code.
    public static let connectionClosed = Code(storage: .connectionClosed)
    /// The socket could not be connected (`errno` says why).
    public static let connectFailed = Code(storage: .connectFailed)
    /// The peer sent bytes that are not a QMP stream (not JSON, no greeting, a message too
    /// large). The connection is closed afterwards.
    public static let protocolViolation = Code(storage: .protocolViolation)
    /// A reply was valid JSON but lacked a field the typed call needs.
    public static let unexpectedReply = Code(storage: .unexpectedReply)
    /// The address string could not be understood.
    public static let invalidAddress = Code(storage: .invalidAddress)
    /// The calling task was cancelled while waiting; a late reply is dropped.
    public static let cancelled = Code(storage: .cancelled)

    public var description: String {
      switch storage {
      case .commandFailed: "commandFailed"
      case .timedOut: "timedOut"
      case .connectionClosed: "connectionClosed"
      case .connectFailed: "connectFailed"
      case .protocolViolation: "protocolViolation"
      case .unexpectedReply: "unexpectedReply"
      case .invalidAddress: "invalidAddress"
      case .cancelled: "cancelled"
      }
    }
  }

  /// The kind of failure.
  public var code: Code
  /// The QMP command involved, when there is one.
  public var command: String?
  /// For `.commandFailed`: the class QEMU reported.
  public var errorClass: QMPErrorClass?
  /// A sentence saying what happened (for `.commandFailed`, QEMU's own `desc`).
  public var message: String
  /// The system error number, for socket failures.
  public var errno: Int32?

  /// Creates an error.
  public init(
    _ code: Code, _ message: String, command: String? = nil, errorClass: QMPErrorClass? = nil,
    errno: Int32? = nil
  ) {
    self.code = code
    self.message = message
    self.command = command
    self.errorClass = errorClass
    self.errno = errno
  }

  public var description: String {
    var text = "QMP"
    if let command { text += " \(command)" }
    switch code.storage {
    case .commandFailed: text += ": \(errorClass?.rawValue ?? "error"): \(message)"
    default: text += ": \(message)"
    }
    if let errno { text += " (\(String(cString: strerror(errno))))" }
    return text
  }

  /// A copy naming `command`.
  func with(command: String) -> QMPError {
    var copy = self
    copy.command = command
    return copy
  }
}
