import Glibc

/// Thin wrappers over POSIX sockets: connect with a timeout, write all bytes, a wake-up pipe.
enum Socket {
  /// Connects a stream socket to `address`, waiting at most `timeout`; returns the descriptor
  /// in non-blocking mode with close-on-exec set.
  static func connect(to address: QMPAddress, timeout: Duration) throws(QMPError) -> Int32 {
    let deadline = ContinuousClock.now + timeout
    switch address {
    case .unix(let path):
      var addr = sockaddr_un()
      addr.sun_family = sa_family_t(AF_UNIX)
      let capacity = MemoryLayout.size(ofValue: addr.sun_path)
      let bytes = Array(path.utf8)
      guard bytes.count < capacity, !bytes.contains(0) else {
        throw QMPError(.invalidAddress, "unix socket path is too long (max \(capacity - 1) bytes): \(path)")
      }
      withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
      }
      let fd = try makeSocket(family: AF_UNIX, address: address)
      let length = socklen_t(MemoryLayout<sockaddr_un>.size)
      let outcome = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connectWithDeadline(fd, $0, length, deadline) }
      }
      if let failure = outcome {
        close(fd)
        throw QMPError(.connectFailed, "cannot connect to \(address)", errno: failure)
      }
      return fd

    case .tcp(let host, let port):
      var hints = addrinfo()
      hints.ai_family = AF_UNSPEC
      hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
      var list: UnsafeMutablePointer<addrinfo>?
      let rc = getaddrinfo(host, String(port), &hints, &list)
      guard rc == 0, let first = list else {
        throw QMPError(.connectFailed, "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
      }
      defer { freeaddrinfo(list) }
      var lastErrno: Int32 = ECONNREFUSED
      var entry: UnsafeMutablePointer<addrinfo>? = first
      while let info = entry {
        entry = info.pointee.ai_next
        guard let sockaddrPointer = info.pointee.ai_addr else { continue }
        let fd = try makeSocket(family: info.pointee.ai_family, address: address)
        if let failure = connectWithDeadline(fd, sockaddrPointer, info.pointee.ai_addrlen, deadline) {
          lastErrno = failure
          close(fd)
          continue
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
      }
      throw QMPError(.connectFailed, "cannot connect to \(address)", errno: lastErrno)
    }
  }

  private static func makeSocket(family: Int32, address: QMPAddress) throws(QMPError) -> Int32 {
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw QMPError(.connectFailed, "socket() failed for \(address)", errno: errno) }
    setNonBlocking(fd)
    return fd
  }

  /// Returns nil on success or the errno of the failure (ETIMEDOUT when the deadline passes).
  private static func connectWithDeadline(
    _ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t, _ deadline: ContinuousClock.Instant
  ) -> Int32? {
    if Glibc.connect(fd, address, length) == 0 { return nil }
    guard errno == EINPROGRESS || errno == EINTR || errno == EAGAIN else { return errno }
    while true {
      let remaining = milliseconds(until: deadline)
      if remaining <= 0 { return ETIMEDOUT }
      var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
      let ready = poll(&entry, 1, remaining)
      if ready < 0 {
        if errno == EINTR { continue }
        return errno
      }
      if ready == 0 { continue }
      var failure: Int32 = 0
      var size = socklen_t(MemoryLayout<Int32>.size)
      if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) < 0 { return errno }
      return failure == 0 ? nil : failure
    }
  }

  /// Writes all of `bytes` to a non-blocking socket, waiting for space until `deadline`.
  /// Returns nil on success or the errno of the failure.
  static func writeAll(_ fd: Int32, _ bytes: [UInt8], deadline: ContinuousClock.Instant) -> Int32? {
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { raw in
        send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
      }
      if written > 0 {
        offset += written
        continue
      }
      if written < 0 && errno == EINTR { continue }
      guard written < 0, errno == EAGAIN || errno == EWOULDBLOCK else { return written == 0 ? EPIPE : errno }
      let remaining = milliseconds(until: deadline)
      if remaining <= 0 { return ETIMEDOUT }
      var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
      _ = poll(&entry, 1, remaining)
    }
    return nil
  }

  static func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
  }

  /// Milliseconds from now until `deadline`, rounded up, clamped to 0...Int32.max.
  static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
    let remaining = ContinuousClock.now.duration(to: deadline)
    if remaining <= .zero { return 0 }
    let (seconds, attoseconds) = remaining.components
    let millis = seconds.multipliedReportingOverflow(by: 1000)
    if millis.overflow { return Int32.max }
    let total = millis.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000_000_000 + 1)
    if total.overflow || total.partialValue > Int64(Int32.max) { return Int32.max }
    return Int32(total.partialValue)
  }
}

/// A non-blocking pipe used to wake the reader thread out of `poll`.
struct WakePipe: Sendable {
  let readEnd: Int32
  let writeEnd: Int32

  init() throws(QMPError) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw QMPError(.connectFailed, "pipe() failed", errno: errno) }
    for fd in fds {
      Socket.setNonBlocking(fd)
      _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }
    readEnd = fds[0]
    writeEnd = fds[1]
  }

  func wake() {
    var byte: UInt8 = 1
    _ = write(writeEnd, &byte, 1)
  }

  func drain() {
    var buffer = [UInt8](repeating: 0, count: 64)
    while read(readEnd, &buffer, buffer.count) > 0 {}
  }

  func close() {
    _ = Glibc.close(readEnd)
    _ = Glibc.close(writeEnd)
  }
}
