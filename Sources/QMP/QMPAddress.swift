import Transport

/// Where a QMP server listens: the one address type of every smptop socket (``SocketAddress``).
public typealias QMPAddress = SocketAddress

extension QMPError {
  /// The same failure as a transport error, with its context and `errno`.
  init(_ error: TransportError) {
    let code: Code =
      switch error.code {
      case .invalidAddress: .invalidAddress
      case .connectFailed: .connectFailed
      case .timedOut: .timedOut
      case .connectionClosed, .notConnected, .ioFailure: .connectionClosed
      }
    self.init(code, error.message, errno: error.errno)
  }
}
