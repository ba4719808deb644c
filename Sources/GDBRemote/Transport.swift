import Transport

/// Where a gdbstub listens: the one address type of every smptop socket (``SocketAddress``).
public typealias GDBAddress = SocketAddress

/// What a connection reads from and writes to: a socket in production, a scripted peer
/// with a virtual clock in tests and fuzzing.
///
/// Every deadline is read against ``now`` of the same transport, so a scripted peer can run
/// a whole conversation (timeouts included) without sleeping.
protocol ByteTransport: AnyObject {
  /// Whether the transport can still be used.
  var isOpen: Bool { get }
  /// The current time on this transport's clock.
  var now: ContinuousClock.Instant { get }
  /// Reads what is available, waiting until `deadline` for at least one byte.
  func read(until deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> TransportReadOutcome
  /// Writes all of `bytes` before `deadline`, passing anything read meanwhile to `received`.
  func write(
    _ bytes: [UInt8], until deadline: ContinuousClock.Instant, received: (TransportReadOutcome) -> Void
  ) throws(GDBRemoteError)
  /// Closes the transport; later reads and writes fail with `.notConnected`.
  func close()
}

/// The result of one read from a ``ByteTransport``.
typealias TransportReadOutcome = StreamSocket.ReadOutcome

/// A ``StreamSocket`` on the wall clock, its errors told in this module's terms.
final class SocketTransport: ByteTransport {
  let socket: StreamSocket

  init(_ socket: StreamSocket) { self.socket = socket }

  var isOpen: Bool { socket.isOpen }
  var now: ContinuousClock.Instant { ContinuousClock.now }

  func read(until deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> TransportReadOutcome {
    do { return try socket.read(until: deadline) } catch { throw GDBRemoteError(error) }
  }

  func write(
    _ bytes: [UInt8], until deadline: ContinuousClock.Instant, received: (TransportReadOutcome) -> Void
  ) throws(GDBRemoteError) {
    do { try socket.write(bytes, until: deadline, received: received) } catch { throw GDBRemoteError(error) }
  }

  func close() { socket.close() }
}

extension GDBRemoteError {
  /// The same failure as a transport error, with its context and `errno`.
  init(_ error: TransportError) {
    let code: Code =
      switch error.code {
      case .invalidAddress: .invalidAddress
      case .connectFailed: .connectFailed
      case .timedOut: .timeout
      case .connectionClosed: .connectionClosed
      case .notConnected: .notConnected
      case .ioFailure: .ioFailure
      }
    self.init(code, error.description, errno: error.errno)
  }
}
