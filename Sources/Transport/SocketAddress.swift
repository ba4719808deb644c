/// Where a stream server listens: a TCP host and port or a unix socket path.
///
/// One parser for every protocol (gdbstub, QMP). Accepted spellings: `host:port`,
/// `tcp:host:port`, `[v6]:port`, `:port` (localhost: both `127.0.0.1` and `::1` are tried),
/// `unix:/path`, and any string containing `/` (a socket path). A comma ends the address, so
/// QEMU's own spelling with options (`unix:/p,server=on,wait=off`) can be pasted as is.
public struct SocketAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
  /// The transport and its endpoint.
  public enum Endpoint: Sendable, Equatable, Hashable {
    /// A TCP connection to `host` (name or numeric address, without brackets) and `port`.
    case tcp(host: String, port: UInt16)
    /// A unix stream socket at `path`.
    case unix(path: String)
  }

  /// The host of `:port`: resolved to both loopback addresses, never through the resolver.
  public static let localhost = "localhost"

  /// The transport and its endpoint.
  public var endpoint: Endpoint

  /// Creates an address from an endpoint.
  public init(_ endpoint: Endpoint) { self.endpoint = endpoint }

  /// A TCP address.
  public static func tcp(host: String, port: UInt16) -> SocketAddress {
    SocketAddress(.tcp(host: host, port: port))
  }

  /// A unix socket address.
  public static func unix(path: String) -> SocketAddress { SocketAddress(.unix(path: path)) }

  /// Parses one of the accepted spellings.
  ///
  /// - Throws: ``TransportError`` with code `.invalidAddress` and the reason.
  public init(parsing original: String) throws(TransportError) {
    func bad(_ why: String) -> TransportError {
      TransportError(.invalidAddress, "cannot use \"\(original)\" as a socket address: \(why)")
    }
    // QEMU's options after the address (`,server=on,wait=off`) say how QEMU listens; a client ignores them.
    let text = original.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    guard !text.isEmpty else { throw bad("it is empty") }
    if text.hasPrefix("unix:") {
      let path = text.dropFirst(5)
      guard !path.isEmpty else { throw bad("the unix socket path is empty") }
      try self.init(checkedUnixPath: String(path), bad: bad)
      return
    }
    if text.contains("/") && !text.hasPrefix("tcp:") {
      try self.init(checkedUnixPath: String(text), bad: bad)
      return
    }
    var rest = text
    if rest.hasPrefix("tcp:") { rest = rest.dropFirst(4) }
    let host: Substring
    let portText: Substring
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated [ in an IPv6 address") }
      host = rest[rest.index(after: rest.startIndex)..<close]
      guard !host.isEmpty else { throw bad("the IPv6 address in [] is empty") }
      let after = rest[rest.index(after: close)...]
      guard after.hasPrefix(":") else { throw bad("expected :port after ]") }
      portText = after.dropFirst()
    } else {
      guard let colon = rest.lastIndex(of: ":") else { throw bad("expected host:port or unix:/path") }
      host = rest[..<colon]
      portText = rest[rest.index(after: colon)...]
      guard !host.contains(":") else { throw bad("write an IPv6 host in brackets, [::1]:port") }
    }
    guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText), port != 0 else {
      throw bad("the port must be a number from 1 to 65535")
    }
    guard !host.contains(where: { $0.isWhitespace }) else { throw bad("the host contains white space") }
    self.init(.tcp(host: host.isEmpty ? Self.localhost : String(host), port: port))
  }

  private init(checkedUnixPath path: String, bad: (String) -> TransportError) throws(TransportError) {
    // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    guard path.utf8.count <= 107 else { throw bad("the socket path is longer than 107 bytes") }
    guard !path.utf8.contains(0) else { throw bad("the socket path contains NUL") }
    self.init(.unix(path: path))
  }

  /// The canonical spelling (`tcp:host:port`, `tcp:[v6]:port` or `unix:/path`).
  public var description: String {
    switch endpoint {
    case .tcp(let host, let port):
      return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
    case .unix(let path):
      return "unix:\(path)"
    }
  }
}
