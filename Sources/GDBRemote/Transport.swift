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
enum TransportReadOutcome {
  /// Bytes arrived.
  case data([UInt8])
  /// The peer closed the connection.
  case endOfFile
  /// Nothing arrived before the deadline.
  case timedOut
}

extension StreamSocket: ByteTransport {
  /// The wall clock.
  var now: ContinuousClock.Instant { ContinuousClock.now }
}
