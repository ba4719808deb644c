import Foundation
import Inspector
import QEMULaunch
import Testing

/// Issue 8: virtio-net in the real guest, traffic from the host, counters read from the ABI.
@Suite(.serialized) struct VirtioTests {
  /// A UDP port on 127.0.0.1 that nothing listens on right now.
  static func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard ok else { throw HarnessError("no free UDP port") }
    return UInt16(bigEndian: address.sin_port)
  }

  /// Sends `count` datagrams to 127.0.0.1:`port`, one socket each, and counts exact echoes.
  static func echo(count: Int, port: UInt16) -> Int {
    var echoed = 0
    for i in 0..<count {
      let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
      defer { close(fd) }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      address.sin_port = port.bigEndian
      var timeout = timeval(tv_sec: 2, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      let message = Array("smptop datagram \(i)".utf8)
      let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
      }
      guard connected, send(fd, message, message.count, 0) == message.count else { continue }
      var buffer = [UInt8](repeating: 0, count: 2048)
      let n = recv(fd, &buffer, buffer.count, 0)
      if n == message.count && Array(buffer[0..<n]) == message { echoed += 1 }
    }
    return echoed
  }

  @Test func everyDatagramIsEchoedAndCountedPerQueueAndTheIndicesAgreeWithQMP() async throws {
    let port = try Self.freePort()
    let datagrams = 50
    try await BootedGuest.with(
      smp: 4,
      extra: [
        "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,id=nic0",
        "-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:\(port)-:7",
      ]
    ) { guest in
      let up = try await guest.waitFor("the virtio-net driver") { snap in
        snap.virtioDevices.first?.linkUp == true && snap.virtqueues.count >= 2
      }
      let device = try #require(up.virtioDevices.first)
      #expect(device.name.contains("virtio-net") && device.mac.count == 17)
      let rxBefore = up.virtqueues.filter { $0.role == .rx }.reduce(0) { $0 + $1.packets }
      let txBefore = up.virtqueues.filter { $0.role == .tx }.reduce(0) { $0 + $1.packets }

      #expect(Self.echo(count: datagrams, port: port) == datagrams, "every datagram must come back")

      try await guest.target.pause()
      let snap = try await guest.target.stoppedSnapshot()
      let rx = snap.virtqueues.filter { $0.role == .rx }
      let tx = snap.virtqueues.filter { $0.role == .tx }
      #expect(rx.reduce(0) { $0 + $1.packets } - rxBefore >= UInt64(datagrams))
      #expect(tx.reduce(0) { $0 + $1.packets } - txBefore >= UInt64(datagrams))
      try #require(!rx.isEmpty && !tx.isEmpty)
      #expect(snap.virtqueues.allSatisfy { $0.errors == 0 })
      #expect(snap.lcpus.reduce(0) { $0 + $1.irqDevice } > 0 || rx.allSatisfy { $0.polls > 0 })

      // The driver's view of every queue against the device model's, at the same stop. A stop
      // can fall between the device completing a buffer and the driver taking its interrupt,
      // so look for a quiet stop (the only traffic left is a gratuitous ARP a second).
      var mismatches: [String] = []
      for _ in 0..<10 {
        mismatches = []
        let stopped = try await guest.target.stoppedSnapshot()
        let qmp = try #require(await guest.target.virtioState()?.first { $0.name.contains("net") })
        for queue in stopped.virtqueues where queue.role != .ctrl {
          let device = try #require(
            qmp.queues.first { $0.index == Int(queue.index) }, "QMP lacks queue \(queue.index)")
          #expect(device.descriptorTable == queue.descriptorTable && device.usedRing == queue.usedRing)
          if UInt32(device.usedIndex) != queue.usedIndex & 0xffff
            || UInt32(device.usedIndex) != queue.lastUsed & 0xffff
            || (device.lastAvailIndex.map { UInt32($0) != queue.usedIndex & 0xffff } ?? false)
          {
            mismatches.append(
              "queue \(queue.index): device used \(device.usedIndex) last-avail \(device.lastAvailIndex ?? -1), "
                + "driver used \(queue.usedIndex) consumed \(queue.lastUsed)")
          }
        }
        if mismatches.isEmpty { break }
        try await guest.target.resume()
        try await Task.sleep(for: .milliseconds(150))
        try await guest.target.pause()
      }
      #expect(mismatches.isEmpty, "\(mismatches)")
    }
  }

  /// Whether this machine can run the multiqueue tap test (root, /dev/net/tun, iproute2).
  static var canRunTap: Bool {
    getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")
      && QEMUInstanceProbe.hasIP
  }

  /// Under `CI=true` the tap test always runs, so a machine that cannot run it fails instead
  /// of skipping; elsewhere it reports itself skipped.
  static var mustRunTap: Bool { canRunTap || ProcessInfo.processInfo.environment["CI"] == "true" }

  @Test(.enabled(if: VirtioTests.mustRunTap, "needs root, /dev/net/tun and iproute2"))
  func fourQueuePairsOverAMultiqueueTapSpreadTrafficOverRXQueues() async throws {
    try #require(
      Self.canRunTap,
      "the multiqueue tap test needs root, /dev/net/tun and iproute2 (CI=true forbids skipping)")
    let ns = "smptop-test-\(getpid())"
    func ip(_ args: String...) throws {
      let r = try runCommand(["ip"] + args)
      if r.status != 0 { throw HarnessError("ip \(args.joined(separator: " ")): \(r.output)") }
    }
    try ip("netns", "add", ns)
    defer { _ = try? runCommand(["ip", "netns", "del", ns]) }
    try ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    try ip("netns", "exec", ns, "ip", "tuntap", "add", "dev", "vtap0", "mode", "tap", "multi_queue")
    try ip("netns", "exec", ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "vtap0")
    try ip("netns", "exec", ns, "ip", "link", "set", "vtap0", "up")
    try await BootedGuest.with(
      smp: 4, append: "net.ip=192.0.2.2",
      extra: [
        "-netdev", "tap,id=n0,ifname=vtap0,script=no,downscript=no,queues=4",
        "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,vectors=10,id=nic0",
      ], launchPrefix: ["ip", "netns", "exec", ns]
    ) { guest in
      let up = try await guest.waitFor("4 queue pairs") { snap in
        snap.virtioDevices.first?.queuePairs == 4 && snap.virtioDevices.first?.linkUp == true
      }
      #expect(Set(up.virtqueues.filter { $0.role == .rx }.map(\.lcpu)) == [0, 1, 2, 3], "one pair per lcpu")
      // 200 datagrams from 200 source ports, sent from inside the namespace.
      let root = try GuestKernel.sourceRoot()
      let send = try runCommand(
        [
          "ip", "netns", "exec", ns, "python3", root + "/Resources/udp-echo-test.py", "200", "7", "192.0.2.2",
        ],
        timeout: .seconds(300))
      #expect(send.output.contains("sent 200 echoed 200"), "\(send.output.suffix(300))")
      let snap = try guest.target.liveSnapshot()
      let busyRX = snap.virtqueues.filter { $0.role == .rx && $0.packets > 0 }
      #expect(busyRX.count > 1, "traffic on more than one RX queue: \(snap.virtqueues.map(\.packets))")
    }
  }
}

/// Small probes for optional host tools.
enum QEMUInstanceProbe {
  static var hasIP: Bool { QEMUInstance.findExecutable("ip") != nil }
}
