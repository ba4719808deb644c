import Foundation
import Glibc
import Testing
import Transport

/// A real listening socket on loopback (TCP v4 or v6) or on a unix path, closed at deinit.
final class Listener {
  let fd: Int32
  let port: UInt16
  let path: String?

  /// A TCP listener on `host` (`127.0.0.1` or `::1`) on a free port.
  init(tcp host: String, backlog: Int32 = 16) throws {
    let v6 = host.contains(":")
    fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TransportError(.ioFailure, "socket", errno: errno) }
    path = nil
    var storage = sockaddr_storage()
    var length: socklen_t
    if v6 {
      var a = sockaddr_in6()
      a.sin6_family = sa_family_t(AF_INET6)
      _ = inet_pton(AF_INET6, host, &a.sin6_addr)
      withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    } else {
      var a = sockaddr_in()
      a.sin_family = sa_family_t(AF_INET)
      _ = inet_pton(AF_INET, host, &a.sin_addr)
      withUnsafeBytes(of: a) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
    }
    let fd = self.fd
    let bound = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0, listen(fd, backlog) == 0 else {
      close(fd)
      throw TransportError(.ioFailure, "bind/listen on \(host)", errno: errno)
    }
    _ = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    port = withUnsafeBytes(of: storage) { raw in
      // sin_port and sin6_port sit at the same offset, in network order.
      UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
    }
  }

  /// A unix listener at a fresh path under the temporary directory.
  init(unixIn directory: String) throws {
    let p = directory + "/t.sock"
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    port = 0
    path = p
    var a = sockaddr_un()
    a.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &a.sun_path) { raw in
      for (i, b) in p.utf8.enumerated() { raw[i] = b }
    }
    let fd = self.fd
    let bound = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard bound == 0, listen(fd, 16) == 0 else { throw TransportError(.ioFailure, "bind \(p)", errno: errno) }
  }

  /// Accepts one pending connection.
  func accept() -> Int32 { Glibc.accept(fd, nil, nil) }

  deinit {
    close(fd)
    if let path { unlink(path) }
  }
}

/// A fresh private directory for unix sockets.
func temporaryDirectory() throws -> String {
  var template = Array((NSTemporaryDirectory() + "/transport-XXXXXX").utf8CString)
  guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
    throw TransportError(.ioFailure, "mkdtemp", errno: errno)
  }
  return String(cString: made)
}

/// Sends `text` over `socket`, reads it on the accepted side, answers, and reads the answer.
func exchange(_ socket: StreamSocket, with listener: Listener) throws {
  let deadline = ContinuousClock.now + .seconds(10)
  let server = listener.accept()
  #expect(server >= 0)
  defer { close(server) }
  try socket.write(Array("ping".utf8), until: deadline) { _ in }
  var got = [UInt8](repeating: 0, count: 16)
  let n = recv(server, &got, got.count, 0)
  #expect(n == 4 && Array(got[0..<4]) == Array("ping".utf8))
  _ = send(server, "pong", 4, 0)
  #expect(try socket.read(until: deadline) == .data(Array("pong".utf8)))
  close(server)
  #expect(try socket.read(until: deadline) == .endOfFile)
}

@Suite struct ConnectTests {
  let deadline = ContinuousClock.now + .seconds(10)

  @Test func connectsOverIPv4() throws {
    let listener = try Listener(tcp: "127.0.0.1")
    let socket = try StreamSocket.connect(
      to: SocketAddress(parsing: "127.0.0.1:\(listener.port)"), deadline: deadline)
    try exchange(socket, with: listener)
  }

  @Test func connectsOverIPv6() throws {
    let listener = try Listener(tcp: "::1")
    let socket = try StreamSocket.connect(
      to: SocketAddress(parsing: "[::1]:\(listener.port)"), deadline: deadline)
    try exchange(socket, with: listener)
  }

  @Test func connectsOverAUnixSocket() throws {
    let directory = try temporaryDirectory()
    defer { rmdir(directory) }
    let listener = try Listener(unixIn: directory)
    let socket = try StreamSocket.connect(
      to: SocketAddress(parsing: "unix:\(directory)/t.sock"), deadline: deadline)
    try exchange(socket, with: listener)
    let bare = try StreamSocket.connect(to: SocketAddress(parsing: "\(directory)/t.sock"), deadline: deadline)
    #expect(bare.isOpen)
  }

  /// `:port` reaches a server on either loopback address: both are tried.
  @Test(arguments: ["127.0.0.1", "::1"])
  func colonPortTriesBothLoopbacks(host: String) throws {
    let listener = try Listener(tcp: host)
    let socket = try StreamSocket.connect(to: SocketAddress(parsing: ":\(listener.port)"), deadline: deadline)
    try exchange(socket, with: listener)
  }

  /// A closed port is refused at once, and the error names every address tried.
  @Test func closedPortFailsWithConnectionRefused() throws {
    // Bind then close: the port is free, and nothing listens on it.
    let port = try Listener(tcp: "127.0.0.1").port
    #expect {
      _ = try SocketIO.connect(to: SocketAddress(parsing: ":\(port)"), deadline: .now + .seconds(60))
    } throws: { error in
      guard let error = error as? TransportError else { return false }
      return error.code == .connectFailed && error.message.contains("127.0.0.1:\(port): Connection refused")
        && error.message.contains("[::1]:\(port): Connection refused")
        && error.message.contains("tcp:localhost:\(port)") && error.errno == ECONNREFUSED
    }
  }

  @Test func missingUnixSocketFails() throws {
    #expect {
      _ = try SocketIO.connect(to: .unix(path: "/nonexistent/smptop.sock"), deadline: .now + .seconds(60))
    } throws: { error in
      guard let error = error as? TransportError else { return false }
      return error.code == .connectFailed && error.errno == ENOENT
        && error.description == "cannot connect to unix:/nonexistent/smptop.sock: No such file or directory"
    }
  }

  /// A listener whose accept queue is full drops new SYNs: the connect gets no answer, and
  /// the deadline ends it with `.timedOut` (not a hang, not a refusal).
  @Test func deadlineEndsAConnectThatGetsNoAnswer() throws {
    let listener = try Listener(tcp: "127.0.0.1", backlog: 0)
    let address = SocketAddress.tcp(host: "127.0.0.1", port: listener.port)
    var held: [Int32] = []
    defer { held.forEach { close($0) } }
    var outcome: TransportError?
    // The queue holds backlog + 1 connections; the first connect beyond that is never answered.
    for _ in 0..<8 {
      do {
        held.append(try SocketIO.connect(to: address, deadline: .now + .milliseconds(300)))
      } catch {
        outcome = error
        break
      }
    }
    #expect(held.count >= 1)
    #expect(outcome?.code == .timedOut)
    #expect(outcome?.message.contains("127.0.0.1:\(listener.port)") == true)
  }

  @Test func writeToAClosedPeerSaysSo() throws {
    let listener = try Listener(tcp: "127.0.0.1")
    let fd = try SocketIO.connect(to: .tcp(host: "127.0.0.1", port: listener.port), deadline: deadline)
    defer { close(fd) }
    let server = listener.accept()
    // Unread data at close makes the kernel send a reset.
    #expect(send(fd, "x", 1, 0) == 1)
    usleep(50_000)
    close(server)
    #expect {
      for _ in 0..<100 { try SocketIO.writeAll(fd, [UInt8](repeating: 0, count: 4096), deadline: deadline) }
    } throws: { error in
      (error as? TransportError)?.code == .connectionClosed
    }
  }

  @Test func readOnAClosedSocketIsNotConnected() throws {
    let listener = try Listener(tcp: "::1")
    let socket = try StreamSocket.connect(to: .tcp(host: "::1", port: listener.port), deadline: deadline)
    socket.close()
    #expect(!socket.isOpen)
    #expect {
      _ = try socket.read(until: deadline)
    } throws: { error in
      (error as? TransportError)?.code == .notConnected
    }
  }
}
