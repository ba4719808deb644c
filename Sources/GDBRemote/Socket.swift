// Linux only, like the rest of smptop (QEMU, ncurses, /proc).
import Glibc

/// A connected, non-blocking stream socket with deadline-bounded reads and writes.
///
/// Internal to the module. Not thread-safe: owned by one ``GDBRemoteConnection``.
final class StreamSocket {
  typealias ReadOutcome = TransportReadOutcome

  private(set) var descriptor: Int32
  private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

  var isOpen: Bool { descriptor >= 0 }

  /// Adopts a connected stream socket; makes it non-blocking and close-on-exec.
  init(adopting descriptor: Int32) throws(GDBRemoteError) {
    guard descriptor >= 0 else {
      throw GDBRemoteError(.invalidArgument, "invalid file descriptor \(descriptor)")
    }
    self.descriptor = descriptor
    let flags = fcntl(descriptor, F_GETFL)
    guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
      let e = errno
      throw GDBRemoteError(
        .ioFailure, "cannot make the socket non-blocking: \(StreamSocket.text(e))", errno: e)
    }
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
  }

  deinit { close() }

  func close() {
    if descriptor >= 0 {
      _ = Glibc.close(descriptor)
      descriptor = -1
    }
  }

  static func text(_ code: Int32) -> String {
    guard let s = strerror(code) else { return "errno \(code)" }
    return String(cString: s)
  }

  // MARK: Connecting

  /// Connects to `address` before `deadline`.
  static func connect(to address: GDBAddress, deadline: ContinuousClock.Instant) throws(GDBRemoteError)
    -> StreamSocket
  {
    switch address.endpoint {
    case .unix(let path):
      return try connectUnix(path: path, address: address, deadline: deadline)
    case .tcp(let host, let port):
      return try connectTCP(host: host, port: port, address: address, deadline: deadline)
    }
  }

  private static func connectUnix(path: String, address: GDBAddress, deadline: ContinuousClock.Instant)
    throws(GDBRemoteError) -> StreamSocket
  {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else {
      let e = errno
      throw GDBRemoteError(.connectFailed, "socket(AF_UNIX): \(text(e))", errno: e)
    }
    let s = try StreamSocket(adopting: fd)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
      throw GDBRemoteError(.invalidAddress, "socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
    }
    try s.finishConnect(rc: rc, address: address, deadline: deadline)
    return s
  }

  private static func connectTCP(
    host: String, port: UInt16, address: GDBAddress, deadline: ContinuousClock.Instant
  ) throws(GDBRemoteError) -> StreamSocket {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_ADDRCONFIG
    var list: UnsafeMutablePointer<addrinfo>? = nil
    let rc = getaddrinfo(host, String(port), &hints, &list)
    guard rc == 0, let first = list else {
      let why = rc == 0 ? "no addresses" : String(cString: gai_strerror(rc))
      throw GDBRemoteError(.connectFailed, "cannot resolve \(host): \(why)")
    }
    defer { freeaddrinfo(list) }
    var lastError = GDBRemoteError(.connectFailed, "no usable address for \(host)")
    var current: UnsafeMutablePointer<addrinfo>? = first
    while let info = current {
      current = info.pointee.ai_next
      let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
      guard fd >= 0 else {
        let e = errno
        lastError = GDBRemoteError(.connectFailed, "socket(): \(text(e))", errno: e)
        continue
      }
      do throws(GDBRemoteError) {
        let s = try StreamSocket(adopting: fd)
        var one: Int32 = 1
        // Small request/response packets: never wait for Nagle's algorithm.
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let r = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen)
        try s.finishConnect(rc: r, address: address, deadline: deadline)
        return s
      } catch {
        lastError = error
      }
    }
    throw lastError
  }

  private func finishConnect(rc: Int32, address: GDBAddress, deadline: ContinuousClock.Instant)
    throws(GDBRemoteError)
  {
    if rc == 0 { return }
    let e = errno
    guard e == EINPROGRESS || e == EINTR || e == EAGAIN else {
      throw GDBRemoteError(.connectFailed, "cannot connect to \(address): \(StreamSocket.text(e))", errno: e)
    }
    guard try wait(for: Int16(POLLOUT), until: deadline) else {
      throw GDBRemoteError(.timeout, "connecting to \(address) timed out")
    }
    var soError: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &soError, &len)
    guard soError == 0 else {
      throw GDBRemoteError(
        .connectFailed, "cannot connect to \(address): \(StreamSocket.text(soError))", errno: soError)
    }
  }

  // MARK: Waiting

  private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
    let remaining = deadline - ContinuousClock.now
    if remaining <= .zero { return 0 }
    let (s, atto) = remaining.components
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: ms)
  }

  /// Waits until one of `events` is ready; false on timeout. Errors and hang-ups count as
  /// ready (the following read or write reports them).
  private func wait(for events: Int16, until deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> Bool
  {
    try pollEvents(events, until: deadline) != 0
  }

  /// Polls for `events`; returns the returned events (0 on timeout).
  private func pollEvents(_ events: Int16, until deadline: ContinuousClock.Instant) throws(GDBRemoteError)
    -> Int16
  {
    guard descriptor >= 0 else { throw GDBRemoteError(.notConnected, "the connection is closed") }
    while true {
      var pfd = pollfd(fd: descriptor, events: events, revents: 0)
      let rc = poll(&pfd, 1, StreamSocket.milliseconds(until: deadline))
      if rc < 0 {
        let e = errno
        if e == EINTR { continue }
        throw GDBRemoteError(.ioFailure, "poll: \(StreamSocket.text(e))", errno: e)
      }
      return rc == 0 ? 0 : pfd.revents
    }
  }

  // MARK: Reading and writing

  /// Reads what is available, waiting until `deadline` for at least one byte.
  func read(until deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> ReadOutcome {
    guard descriptor >= 0 else { throw GDBRemoteError(.notConnected, "the connection is closed") }
    while true {
      let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
      if n > 0 { return .data(Array(buffer[0..<n])) }
      if n == 0 { return .endOfFile }
      let e = errno
      if e == EINTR { continue }
      if e == ECONNRESET { return .endOfFile }
      guard e == EAGAIN || e == EWOULDBLOCK else {
        throw GDBRemoteError(.ioFailure, "recv: \(StreamSocket.text(e))", errno: e)
      }
      guard try wait(for: Int16(POLLIN), until: deadline) else { return .timedOut }
    }
  }

  /// Writes all of `bytes` before `deadline`. While the peer is not accepting bytes, data
  /// it sends is read and passed to `received`, so that a peer that blocks writing its
  /// replies to us cannot deadlock a large pipelined write.
  func write(
    _ bytes: [UInt8], until deadline: ContinuousClock.Instant, received: (ReadOutcome) -> Void
  ) throws(GDBRemoteError) {
    guard descriptor >= 0 else { throw GDBRemoteError(.notConnected, "the connection is closed") }
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return send(descriptor, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
      }
      if n > 0 {
        offset += n
        continue
      }
      let e = errno
      if n < 0 && e == EINTR { continue }
      if n < 0 && (e == EPIPE || e == ECONNRESET) {
        throw GDBRemoteError(
          .connectionClosed, "the peer closed the connection while we were writing", errno: e)
      }
      guard n < 0 && (e == EAGAIN || e == EWOULDBLOCK) else {
        throw GDBRemoteError(.ioFailure, "send: \(StreamSocket.text(e))", errno: e)
      }
      let ready = try pollEvents(Int16(POLLOUT) | Int16(POLLIN), until: deadline)
      if ready == 0 {
        throw GDBRemoteError(.timeout, "the peer did not accept \(bytes.count - offset) more bytes in time")
      }
      if ready & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
        let outcome = try read(until: ContinuousClock.now)
        received(outcome)
        if case .endOfFile = outcome {
          throw GDBRemoteError(.connectionClosed, "the peer closed the connection while we were writing")
        }
      }
    }
  }
}
