/// Where a gdbstub listens: a TCP host and port or a unix socket path.
///
/// Accepted spellings: `host:port`, `tcp:host:port`, `[::1]:port`, `:port` (localhost),
/// `unix:/path`, and any string containing `/` (a socket path).
public struct GDBAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
  /// The transport and its endpoint.
  public enum Endpoint: Sendable, Equatable, Hashable {
    /// A TCP connection to `host` (name or numeric address) and `port`.
    case tcp(host: String, port: UInt16)
    /// A unix stream socket at `path`.
    case unix(path: String)
  }

  /// The transport and its endpoint.
  public var endpoint: Endpoint

  /// Creates an address from an endpoint.
  public init(_ endpoint: Endpoint) { self.endpoint = endpoint }

  /// A TCP address.
  public static func tcp(host: String, port: UInt16) -> GDBAddress {
    GDBAddress(.tcp(host: host, port: port))
  }

  /// A unix socket address.
  public static func unix(path: String) -> GDBAddress { GDBAddress(.unix(path: path)) }

  /// Parses one of the accepted spellings.
  ///
  /// - Throws: ``GDBRemoteError/Code-swift.enum/invalidAddress`` with the reason.
  public init(parsing text: String) throws(GDBRemoteError) {
    func bad(_ why: String) -> GDBRemoteError {
      GDBRemoteError(.invalidAddress, "cannot use \"\(text)\" as a gdb address: \(why)")
    }
    if text.hasPrefix("unix:") {
      let path = String(text.dropFirst(5))
      guard !path.isEmpty else { throw bad("the unix socket path is empty") }
      try self.init(checkedUnixPath: path, original: text)
      return
    }
    if text.contains("/") && !text.hasPrefix("tcp:") {
      try self.init(checkedUnixPath: text, original: text)
      return
    }
    var rest = Substring(text)
    if rest.hasPrefix("tcp:") { rest = rest.dropFirst(4) }
    let host: Substring
    let portText: Substring
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated [ in an IPv6 address") }
      host = rest[rest.index(after: rest.startIndex)..<close]
      let after = rest[rest.index(after: close)...]
      guard after.hasPrefix(":") else { throw bad("expected :port after ]") }
      portText = after.dropFirst()
    } else {
      guard let colon = rest.lastIndex(of: ":") else { throw bad("expected host:port or unix:/path") }
      host = rest[..<colon]
      portText = rest[rest.index(after: colon)...]
      guard !host.contains(":") else { throw bad("write an IPv6 host in brackets, [::1]:port") }
    }
    guard let port = UInt16(portText), port != 0 else {
      throw bad("the port must be a number from 1 to 65535")
    }
    guard !host.contains(where: { $0.isWhitespace }) else { throw bad("the host contains white space") }
    self.init(.tcp(host: host.isEmpty ? "localhost" : String(host), port: port))
  }

  private init(checkedUnixPath path: String, original: String) throws(GDBRemoteError) {
    // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    guard path.utf8.count <= 107 else {
      throw GDBRemoteError(
        .invalidAddress,
        "cannot use \"\(original)\" as a gdb address: the socket path is longer than 107 bytes")
    }
    guard !path.utf8.contains(0) else {
      throw GDBRemoteError(.invalidAddress, "cannot use a socket path containing NUL")
    }
    self.init(.unix(path: path))
  }

  /// The canonical spelling (`tcp:host:port` or `unix:/path`).
  public var description: String {
    switch endpoint {
    case .tcp(let host, let port):
      return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
    case .unix(let path):
      return "unix:\(path)"
    }
  }
}
