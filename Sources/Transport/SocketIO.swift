// Linux only, like the rest of smptop (QEMU, ncurses, /proc).
import Glibc

/// Descriptor-level socket routines: connect with a deadline, write all, poll with a deadline.
///
/// Every descriptor these routines create is a non-blocking, close-on-exec stream socket.
/// ``StreamSocket`` owns one and adds deadline-bounded reads.
public enum SocketIO {
  /// Connects a stream socket to `address` before `deadline`, trying every resolved address in
  /// turn; returns the descriptor (non-blocking, close-on-exec, `TCP_NODELAY` on TCP).
  ///
  /// - Throws: ``TransportError`` `.connectFailed` naming each address tried and why it failed,
  ///   or `.timedOut` when the deadline passed on the last address tried.
  public static func connect(to address: SocketAddress, deadline: ContinuousClock.Instant)
    throws(TransportError)
    -> Int32
  {
    var failures: [(address: String, error: TransportError)] = []
    for candidate in try resolve(address) {
      do throws(TransportError) {
        return try connect(candidate, deadline: deadline)
      } catch {
        failures.append((candidate.text, error))
      }
    }
    let reasons = failures.map {
      "\($0.address): \($0.error.errno.map(TransportError.text) ?? $0.error.message)"
    }
    let last = failures.last?.error
    let code: TransportError.Code = last?.code == .timedOut ? .timedOut : .connectFailed
    // One address: its errno says why. Several: each with its reason; errno is the last one's.
    if failures.count == 1, let last, let errno = last.errno {
      throw TransportError(code, "cannot connect to \(address)", errno: errno)
    }
    throw TransportError(
      code, "cannot connect to \(address) (" + reasons.joined(separator: "; ") + ")", errno: last?.errno)
  }

  /// One resolved socket address.
  struct Candidate {
    var family: Int32
    var bytes: [UInt8]
    var text: String
  }

  /// The socket addresses to try for `address`, in order.
  static func resolve(_ address: SocketAddress) throws(TransportError) -> [Candidate] {
    switch address.endpoint {
    case .unix(let path):
      var addr = sockaddr_un()
      addr.sun_family = sa_family_t(AF_UNIX)
      let bytes = Array(path.utf8)
      guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: addr.sun_path), !bytes.contains(0) else {
        throw TransportError(.invalidAddress, "cannot use \"\(path)\" as a unix socket path")
      }
      withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
      }
      let length = MemoryLayout<sa_family_t>.size + bytes.count + 1
      let raw = withUnsafeBytes(of: &addr) { Array($0.prefix(length)) }
      return [Candidate(family: AF_UNIX, bytes: raw, text: path)]
    case .tcp(let host, let port):
      // `:port` means this machine on either loopback, whatever /etc/hosts says of localhost.
      if host == SocketAddress.localhost {
        return try lookup("127.0.0.1", port: port, numeric: true) + lookup("::1", port: port, numeric: true)
      }
      return try lookup(host, port: port, numeric: false)
    }
  }

  private static func lookup(_ host: String, port: UInt16, numeric: Bool) throws(TransportError)
    -> [Candidate]
  {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = numeric ? AI_NUMERICHOST : 0
    var list: UnsafeMutablePointer<addrinfo>? = nil
    let rc = getaddrinfo(host, String(port), &hints, &list)
    guard rc == 0, let first = list else {
      let why = rc == 0 ? "no addresses" : String(cString: gai_strerror(rc))
      throw TransportError(.connectFailed, "cannot resolve \(host): \(why)")
    }
    defer { freeaddrinfo(list) }
    var result: [Candidate] = []
    var current: UnsafeMutablePointer<addrinfo>? = first
    while let info = current {
      current = info.pointee.ai_next
      guard let sa = info.pointee.ai_addr else { continue }
      let bytes = Array(UnsafeRawBufferPointer(start: sa, count: Int(info.pointee.ai_addrlen)))
      var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
      let numericName =
        getnameinfo(sa, info.pointee.ai_addrlen, &name, socklen_t(name.count), nil, 0, NI_NUMERICHOST) == 0
        ? String(cString: name) : host
      let text = info.pointee.ai_family == AF_INET6 ? "[\(numericName)]:\(port)" : "\(numericName):\(port)"
      if !result.contains(where: { $0.bytes == bytes }) {
        result.append(Candidate(family: info.pointee.ai_family, bytes: bytes, text: text))
      }
    }
    return result
  }

  private static func connect(_ candidate: Candidate, deadline: ContinuousClock.Instant)
    throws(TransportError)
    -> Int32
  {
    let fd = socket(candidate.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TransportError(.connectFailed, "socket()", errno: errno) }
    do throws(TransportError) {
      try setNonBlocking(fd)
      if candidate.family != AF_UNIX {
        var one: Int32 = 1
        // Small request/response messages: never wait for Nagle's algorithm.
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
      }
      let rc = candidate.bytes.withUnsafeBytes { raw in
        Glibc.connect(fd, raw.baseAddress?.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
      }
      if rc != 0 {
        let e = errno
        guard e == EINPROGRESS || e == EINTR else {
          throw TransportError(.connectFailed, "connect()", errno: e)
        }
        guard try poll(fd, events: Int16(POLLOUT), until: deadline) != 0 else {
          throw TransportError(.timedOut, "no answer before the deadline")
        }
        var failure: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else {
          throw TransportError(.connectFailed, "getsockopt(SO_ERROR)", errno: errno)
        }
        guard failure == 0 else { throw TransportError(.connectFailed, "connect()", errno: failure) }
      }
      return fd
    } catch {
      Glibc.close(fd)
      throw error
    }
  }

  /// Makes `fd` non-blocking.
  public static func setNonBlocking(_ fd: Int32) throws(TransportError) {
    let flags = fcntl(fd, F_GETFL)
    guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
      throw TransportError(.ioFailure, "cannot make descriptor \(fd) non-blocking", errno: errno)
    }
  }

  /// Waits until one of `events` is ready on `fd` or `deadline` passes; returns the ready
  /// events, 0 on timeout. Errors and hang-ups count as ready (the next read or write says why).
  public static func poll(_ fd: Int32, events: Int16, until deadline: ContinuousClock.Instant)
    throws(TransportError) -> Int16
  {
    guard fd >= 0 else { throw TransportError(.notConnected, "the socket is closed") }
    while true {
      var entry = pollfd(fd: fd, events: events, revents: 0)
      let rc = Glibc.poll(&entry, 1, milliseconds(until: deadline))
      if rc < 0 {
        let e = errno
        if e == EINTR { continue }
        throw TransportError(.ioFailure, "poll()", errno: e)
      }
      if rc == 0 && ContinuousClock.now < deadline { continue }
      return rc == 0 ? 0 : entry.revents
    }
  }

  /// Writes all of `bytes` to the non-blocking socket `fd`, waiting for space until `deadline`.
  ///
  /// - Throws: `.connectionClosed` when the peer is gone, `.timedOut` when it stops accepting
  ///   bytes, `.ioFailure` otherwise.
  public static func writeAll(_ fd: Int32, _ bytes: [UInt8], deadline: ContinuousClock.Instant)
    throws(TransportError)
  {
    var offset = 0
    while offset < bytes.count {
      if try send(fd, bytes, from: &offset) { continue }
      guard try poll(fd, events: Int16(POLLOUT), until: deadline) != 0 else {
        throw TransportError(.timedOut, "the peer did not accept \(bytes.count - offset) more bytes in time")
      }
    }
  }

  /// Sends what the socket accepts of `bytes[offset...]` and advances `offset`; false when the
  /// socket accepts nothing now (it would block).
  static func send(_ fd: Int32, _ bytes: [UInt8], from offset: inout Int) throws(TransportError) -> Bool {
    guard fd >= 0 else { throw TransportError(.notConnected, "the socket is closed") }
    while true {
      let start = offset
      let n = bytes.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return Glibc.send(fd, base + start, raw.count - start, Int32(MSG_NOSIGNAL))
      }
      if n > 0 {
        offset += n
        return true
      }
      let e = errno
      if n < 0 && e == EINTR { continue }
      if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return false }
      if n == 0 || e == EPIPE || e == ECONNRESET {
        throw TransportError(
          .connectionClosed, "the peer closed the connection while we were writing", errno: e)
      }
      throw TransportError(.ioFailure, "send()", errno: e)
    }
  }

  /// Milliseconds from now until `deadline`, rounded up, clamped to 0...Int32.max.
  public static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
    let remaining = ContinuousClock.now.duration(to: deadline)
    if remaining <= .zero { return 0 }
    let (seconds, attoseconds) = remaining.components
    let millis = seconds.multipliedReportingOverflow(by: 1000)
    if millis.overflow { return Int32.max }
    let total = millis.partialValue.addingReportingOverflow(
      (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    if total.overflow || total.partialValue > Int64(Int32.max) { return Int32.max }
    return Int32(total.partialValue)
  }
}
