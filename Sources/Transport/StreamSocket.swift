import Glibc

/// A connected, non-blocking stream socket with deadline-bounded reads and writes.
///
/// Owns its descriptor and closes it on ``close()`` or when released. Not thread-safe: one owner.
public final class StreamSocket {
  /// The result of one read.
  public enum ReadOutcome: Sendable, Equatable {
    /// Bytes arrived.
    case data([UInt8])
    /// The peer closed (or reset) the connection.
    case endOfFile
    /// Nothing arrived before the deadline.
    case timedOut
  }

  /// The socket descriptor; -1 once closed.
  public private(set) var descriptor: Int32
  private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

  /// Whether the socket is still open.
  public var isOpen: Bool { descriptor >= 0 }

  /// Adopts a connected stream socket; makes it non-blocking and close-on-exec.
  public init(adopting descriptor: Int32) throws(TransportError) {
    guard descriptor >= 0 else {
      throw TransportError(.notConnected, "invalid file descriptor \(descriptor)")
    }
    self.descriptor = descriptor
    try SocketIO.setNonBlocking(descriptor)
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
  }

  /// Connects to `address` before `deadline` (see ``SocketIO/connect(to:deadline:)``).
  public static func connect(to address: SocketAddress, deadline: ContinuousClock.Instant)
    throws(TransportError)
    -> StreamSocket
  {
    try StreamSocket(adopting: SocketIO.connect(to: address, deadline: deadline))
  }

  deinit { close() }

  /// Closes the socket; later reads and writes fail with `.notConnected`.
  public func close() {
    if descriptor >= 0 {
      _ = Glibc.close(descriptor)
      descriptor = -1
    }
  }

  /// Reads what is available, waiting until `deadline` for at least one byte.
  public func read(until deadline: ContinuousClock.Instant) throws(TransportError) -> ReadOutcome {
    guard descriptor >= 0 else { throw TransportError(.notConnected, "the socket is closed") }
    while true {
      let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
      if n > 0 { return .data(Array(buffer[0..<n])) }
      if n == 0 { return .endOfFile }
      let e = errno
      if e == EINTR { continue }
      if e == ECONNRESET { return .endOfFile }
      guard e == EAGAIN || e == EWOULDBLOCK else { throw TransportError(.ioFailure, "recv()", errno: e) }
      guard try SocketIO.poll(descriptor, events: Int16(POLLIN), until: deadline) != 0 else {
        return .timedOut
      }
    }
  }

  /// Writes all of `bytes` before `deadline`. While the peer is not accepting bytes, data
  /// it sends is read and passed to `received`, so that a peer that blocks writing its
  /// replies to us cannot deadlock a large pipelined write.
  public func write(
    _ bytes: [UInt8], until deadline: ContinuousClock.Instant, received: (ReadOutcome) -> Void
  ) throws(TransportError) {
    var offset = 0
    while offset < bytes.count {
      if try SocketIO.send(descriptor, bytes, from: &offset) { continue }
      let ready = try SocketIO.poll(descriptor, events: Int16(POLLOUT) | Int16(POLLIN), until: deadline)
      if ready == 0 {
        throw TransportError(.timedOut, "the peer did not accept \(bytes.count - offset) more bytes in time")
      }
      if ready & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
        let outcome = try read(until: ContinuousClock.now)
        received(outcome)
        if case .endOfFile = outcome {
          throw TransportError(.connectionClosed, "the peer closed the connection while we were writing")
        }
      }
    }
  }
}
