import Glibc

/// A non-blocking pipe used to wake the reader thread out of `poll`.
struct WakePipe: Sendable {
  let readEnd: Int32
  let writeEnd: Int32

  init() throws(QMPError) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw QMPError(.connectFailed, "pipe() failed", errno: errno) }
    for fd in fds {
      let flags = fcntl(fd, F_GETFL)
      if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
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
