import Testing
import Transport

@Suite struct SocketAddressTests {
  @Test(arguments: [
    ("localhost:1234", SocketAddress.tcp(host: "localhost", port: 1234)),
    ("tcp:127.0.0.1:5555", .tcp(host: "127.0.0.1", port: 5555)),
    ("example.org:1", .tcp(host: "example.org", port: 1)),
    ("tcp::1234", .tcp(host: SocketAddress.localhost, port: 1234)),
    (":1", .tcp(host: SocketAddress.localhost, port: 1)),
    (":65535", .tcp(host: SocketAddress.localhost, port: 65535)),
    ("[::1]:9000", .tcp(host: "::1", port: 9000)),
    ("tcp:[fe80::1]:65535", .tcp(host: "fe80::1", port: 65535)),
    ("unix:/run/smptop/gdb.sock", .unix(path: "/run/smptop/gdb.sock")),
    ("unix:relative.sock", .unix(path: "relative.sock")),
    ("/tmp/x/gdb.sock", .unix(path: "/tmp/x/gdb.sock")),
    ("./gdb.sock", .unix(path: "./gdb.sock")),
    // QEMU's listening options after the address: a comma ends the address.
    ("unix:/tmp/q.sock,server=on,wait=off", .unix(path: "/tmp/q.sock")),
    ("/tmp/q.sock,server=on", .unix(path: "/tmp/q.sock")),
    ("tcp::4444,server=on,wait=off", .tcp(host: SocketAddress.localhost, port: 4444)),
    ("tcp:[::1]:4444,server", .tcp(host: "::1", port: 4444)),
    ("127.0.0.1:4444,wait=off", .tcp(host: "127.0.0.1", port: 4444)),
  ])
  func parses(text: String, expected: SocketAddress) throws {
    #expect(try SocketAddress(parsing: text) == expected)
  }

  @Test(arguments: [
    "", ",server=on", "localhost", "qmp.sock", "host:", "host:0", ":0", "host:65536", "host:99999", "host:-1",
    "host:12ab", "host:port", "host:+80", "host:٣", "unix:", "unix:,server=on", "::1:80", "[::1]80", "[::1",
    "[::1:80", "[]:80", "ho st:80", "unix:/" + String(repeating: "a", count: 120),
  ])
  func rejects(text: String) {
    #expect {
      _ = try SocketAddress(parsing: text)
    } throws: { error in
      guard let error = error as? TransportError else { return false }
      return error.code == .invalidAddress && error.message.contains("\"\(text)\"")
    }
  }

  @Test func descriptionRoundTrips() throws {
    for text in ["tcp:localhost:1234", "tcp:[::1]:80", "tcp:10.0.0.1:5", "unix:/tmp/a.sock"] {
      let a = try SocketAddress(parsing: text)
      #expect(a.description == text)
      #expect(try SocketAddress(parsing: a.description) == a)
    }
  }
}
