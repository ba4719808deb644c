import Foundation
import QEMULaunch
import Testing

/// Why a serve test could not go on, with what it saw.
struct ServeTestError: Error, CustomStringConvertible {
  /// What went wrong.
  var description: String
  /// Creates an error.
  init(_ description: String) { self.description = description }
}

/// `smptop serve` as users run it, against the real guest in real QEMU, scraped by a real Prometheus.
@Suite(.serialized) struct PrometheusScrapeTests {
  /// The smptop executable next to the test bundle.
  static func smptop() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = dir.appendingPathComponent("smptop").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    throw ServeTestError("smptop binary not found near \(CommandLine.arguments[0])")
  }

  /// A TCP port nobody listens on right now (bound to port 0, then released).
  static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServeTestError("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
      }
    }
    guard bound else { throw ServeTestError("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  /// `curl` with its HTTP status code on the last line.
  static func curl(_ arguments: [String]) throws -> (status: Int, body: String) {
    let result = try runProcess(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"] + arguments)
    guard result.status == 0 else { throw ServeTestError("curl \(arguments): \(result.stderr)") }
    var lines = result.stdout.components(separatedBy: "\n")
    let status = Int(lines.removeLast()) ?? -1
    return (status, lines.joined(separator: "\n"))
  }

  /// Asks Prometheus' HTTP API; the `result` vector of an instant query.
  static func query(_ port: Int, _ promql: String) throws -> [[String: Any]] {
    let (status, body) = try curl([
      "-G", "http://127.0.0.1:\(port)/api/v1/query", "--data-urlencode", "query=\(promql)",
    ])
    guard status == 200, let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
      let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
    else { throw ServeTestError("query \(promql): \(status) \(body)") }
    return result
  }

  /// The number in a vector element's `value` pair.
  static func number(_ element: [String: Any]) -> Double? {
    ((element["value"] as? [Any])?.last as? String).flatMap(Double.init)
  }

  /// Polls `body` every half second until it returns a value or `seconds` pass.
  static func eventually<T>(_ seconds: Double, _ body: () throws -> T?) async throws -> T? {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
      if let value = try body() { return value }
      try await Task.sleep(for: .milliseconds(500))
    }
    return try body()
  }

  @Test func prometheusScrapesALiveGuestAndSeesItGo() async throws {
    let smp = 2
    let kernel = try GuestKernel.build()
    let dir = "/dev/shm/smptop-serve-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let qemu = try BackgroundProcess([
      "qemu-system-x86_64", "-accel", "tcg", "-smp", String(smp), "-m", "128M", "-kernel", kernel,
      "-object", "memory-backend-file,id=ram0,size=128M,mem-path=\(dir)/ram,share=on",
      "-machine", "pc,memory-backend=ram0", "-qmp", "unix:\(dir)/qmp.sock,server=on,wait=off",
      "-serial", "file:\(dir)/serial.txt", "-display", "none",
    ])
    defer { qemu.signal(SIGKILL) }
    // QEMU creates the QMP socket as it starts; the server reconnects on its own anyway.
    _ = try await Self.eventually(10) {
      FileManager.default.fileExists(atPath: dir + "/qmp.sock") ? true : nil
    }

    let serve = try BackgroundProcess([
      try Self.smptop(), "serve", "--listen", "127.0.0.1:0", "--name", "guest", "--qmp", dir + "/qmp.sock",
      "--memory-file", dir + "/ram", "--kernel", kernel,
    ])
    defer { serve.signal(SIGKILL) }
    let url = try #require(
      try await Self.eventually(20) { () -> String? in
        if let status = serve.exitStatus { throw ServeTestError("serve exited \(status): \(serve.stderr())") }
        for line in serve.stdout().components(separatedBy: "\n") {
          if let start = line.range(of: "http://") { return String(line[start.lowerBound...]) }
        }
        return nil
      }, "serve printed no URL: \(serve.stdout()) \(serve.stderr())")
    let port = try #require(URL(string: url)?.port)

    // The guest publishes its ABI once every lcpu is up: wait for its lock counters.
    let scrape = try #require(
      try await Self.eventually(30) { () -> String? in
        let (status, body) = try Self.curl([url])
        return status == 200 && body.contains("smptop_lock_acquisitions_total{") ? body : nil
      }, "no lock series in the scrape")
    #expect(scrape.contains("smptop_target_up{target=\"guest\"} 1"))

    // promtool (Prometheus' own linter) accepts a real scrape.
    let file = dir + "/scrape.txt"
    try scrape.write(toFile: file, atomically: true, encoding: .utf8)
    let lint = try runProcess(["sh", "-c", "promtool check metrics < '\(file)'"])
    #expect(lint.status == 0, "promtool: \(lint.stdout) \(lint.stderr)")

    // A real Prometheus scraping every second.
    let promPort = try Self.freePort()
    let config = """
      global: {scrape_interval: 1s, evaluation_interval: 1s}
      scrape_configs:
        - job_name: smptop
          static_configs: [{targets: ['127.0.0.1:\(port)']}]
      """
    try config.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
    let prometheus = try BackgroundProcess([
      "prometheus", "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/tsdb",
      "--web.listen-address=127.0.0.1:\(promPort)", "--log.level=warn",
    ])
    defer { prometheus.signal(SIGKILL) }

    let acquiring = try await Self.eventually(25) { () -> Double? in
      if let status = prometheus.exitStatus {
        throw ServeTestError("prometheus exited \(status): \(prometheus.stderr())")
      }
      let v = (try? Self.query(promPort, "sum(rate(smptop_lock_acquisitions_total[5s]))"))?.first.flatMap(
        Self.number)
      return (v ?? 0) > 0 ? v : nil
    }
    #expect((acquiring ?? 0) > 0, "Prometheus computed a positive lock acquisition rate")
    let busy = try Self.query(promPort, "smptop_lcpu_busy_ratio")
    let lcpus = Set(busy.compactMap { ($0["metric"] as? [String: String])?["lcpu"] })
    #expect(lcpus == Set((0..<smp).map(String.init)), "one busy-ratio series per lcpu: \(busy)")
    #expect(busy.allSatisfy { (Self.number($0) ?? -1) >= 0 && (Self.number($0) ?? 2) <= 1 })

    // Bad requests get 4xx, and the server goes on.
    #expect(try Self.curl(["http://127.0.0.1:\(port)/nope"]).status == 404)
    #expect(try Self.curl(["-X", "POST", url]).status == 405)

    // QEMU goes away: the target is down, the server still answers.
    qemu.signal(SIGKILL)
    _ = qemu.wait(timeout: .seconds(10))
    let down = try await Self.eventually(15) { () -> String? in
      let (status, body) = try Self.curl([url])
      return status == 200 && body.contains("smptop_target_up{target=\"guest\"} 0") ? body : nil
    }
    #expect(down != nil, "smptop_target_up went to 0")
    #expect(
      down?.contains("smptop_lock_acquisitions_total") == false, "no stale series of a target that is down")
    #expect(serve.exitStatus == nil, "serve is still running")
    let seen = try await Self.eventually(10) { () -> Double? in
      (try? Self.query(promPort, "smptop_target_up"))?.first.flatMap(Self.number) == 0 ? 0 : nil
    }
    #expect(seen == 0, "Prometheus saw the target go down")
  }
}
