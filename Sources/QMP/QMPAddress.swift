/// Where a QMP server listens: a unix socket or a TCP endpoint.
public enum QMPAddress: Sendable, Hashable, CustomStringConvertible {
  /// A unix-domain stream socket at a filesystem path.
  case unix(path: String)
  /// A TCP endpoint; `host` is a name or an IPv4/IPv6 literal (without brackets).
  case tcp(host: String, port: UInt16)

  /// Parses the spellings QEMU and users write:
  /// `unix:/path`, any string containing `/` (a path), `tcp:host:port`, `host:port`,
  /// and `[v6addr]:port`.
  public init(parsing text: String) throws(QMPError) {
    if text.hasPrefix("unix:") {
      let path = String(text.dropFirst(5))
      guard !path.isEmpty else { throw QMPError(.invalidAddress, "empty unix socket path in \"\(text)\"") }
      // QEMU's own spelling may carry options: unix:/p,server=on,wait=off.
      self = .unix(path: path.split(separator: ",", maxSplits: 1).first.map(String.init) ?? path)
      return
    }
    if text.hasPrefix("tcp:") {
      self = try Self.parseHostPort(String(text.dropFirst(4)), original: text)
      return
    }
    if text.contains("/") {
      self = .unix(path: text)
      return
    }
    self = try Self.parseHostPort(text, original: text)
  }

  private static func parseHostPort(_ text: String, original: String) throws(QMPError) -> QMPAddress {
    var rest = Substring(text.split(separator: ",", maxSplits: 1).first ?? "")
    let host: Substring
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]") else {
        throw QMPError(.invalidAddress, "unterminated [ in \"\(original)\"")
      }
      host = rest[rest.index(after: rest.startIndex)..<close]
      rest = rest[rest.index(after: close)...]
      guard rest.hasPrefix(":") else { throw QMPError(.invalidAddress, "no :port in \"\(original)\"") }
      rest = rest.dropFirst()
    } else {
      guard let colon = rest.lastIndex(of: ":") else {
        throw QMPError(
          .invalidAddress, "\"\(original)\" is neither a socket path (with /) nor host:port")
      }
      host = rest[..<colon]
      rest = rest[rest.index(after: colon)...]
    }
    guard let port = UInt16(rest), port != 0 else {
      throw QMPError(.invalidAddress, "bad TCP port \"\(rest)\" in \"\(original)\"")
    }
    return .tcp(host: host.isEmpty ? "127.0.0.1" : String(host), port: port)
  }

  public var description: String {
    switch self {
    case .unix(let path): "unix:\(path)"
    case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
    }
  }
}
