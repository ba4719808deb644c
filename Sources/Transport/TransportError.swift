import Glibc

/// Why an address could not be parsed or a socket operation failed, with the context to say so.
public struct TransportError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: Sendable, Hashable {
    /// The address text could not be parsed.
    case invalidAddress
    /// The socket could not be created, resolved or connected (`errno` says why when known).
    case connectFailed
    /// The deadline passed before the operation completed.
    case timedOut
    /// The peer closed the connection (or reset it) while we wrote.
    case connectionClosed
    /// The socket was already closed by this side.
    case notConnected
    /// Another system call on the socket failed; see `errno`.
    case ioFailure
  }

  /// The kind of failure.
  public var code: Code
  /// What was being done, in words.
  public var message: String
  /// The `errno` of the failed system call, when one failed.
  public var errno: Int32?

  /// Creates an error.
  public init(_ code: Code, _ message: String, errno: Int32? = nil) {
    self.code = code
    self.message = message
    self.errno = errno
  }

  /// The message followed by the system's text for `errno`.
  public var description: String {
    // A message listing each address tried already names the reasons.
    guard let errno, !message.hasSuffix(Self.text(errno) + ")") else { return message }
    return "\(message): \(Self.text(errno))"
  }

  /// The system's text for an `errno` value.
  public static func text(_ code: Int32) -> String {
    guard let s = strerror(code) else { return "errno \(code)" }
    return String(cString: s)
  }
}
