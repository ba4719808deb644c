/// Latency measurements of common requests over an open, stopped connection.
///
/// Used by `smptop bench` and printed by the integration tests; timing is reported, never
/// asserted.
public enum GDBRemoteBenchmark {
  /// Median and 90th percentile of one measured operation.
  public struct Measurement: Sendable, Equatable, CustomStringConvertible {
    /// What was measured.
    public var name: String
    /// The median duration.
    public var median: Duration
    /// The 90th percentile.
    public var p90: Duration
    /// How many times it ran.
    public var iterations: Int

    /// The median and 90th percentile of `samples` (at least one).
    init(name: String, samples: [Duration]) {
      let sorted = samples.sorted()
      self.name = name
      self.median = sorted[sorted.count / 2]
      self.p90 = sorted[min(sorted.count - 1, sorted.count * 9 / 10)]
      self.iterations = sorted.count
    }

    /// `name: median / p90 µs (n=…)`.
    public var description: String {
      "\(name): median \(GDBRemoteBenchmark.microseconds(median)) µs, p90 \(GDBRemoteBenchmark.microseconds(p90)) µs (n=\(iterations))"
    }
  }

  static func microseconds(_ d: Duration) -> String {
    let (s, atto) = d.components
    let tenths = (s * 10_000_000 + atto / 100_000_000_000)
    return "\(tenths / 10).\(tenths % 10)"
  }

  /// Times `body` `iterations` times (after two warm-up runs).
  public static func measure(
    _ name: String, iterations: Int, _ body: () throws(GDBRemoteError) -> Void
  ) throws(GDBRemoteError) -> Measurement {
    Measurement(name: name, samples: try timings(iterations: iterations, body))
  }

  /// Every duration of `iterations` runs of `body`, in order, after two warm-up runs.
  static func timings(
    iterations: Int, _ body: () throws(GDBRemoteError) -> Void
  ) throws(GDBRemoteError) -> [Duration] {
    let clock = ContinuousClock()
    for _ in 0..<2 { try body() }
    var samples: [Duration] = []
    samples.reserveCapacity(iterations)
    for _ in 0..<max(1, iterations) {
      let start = clock.now
      try body()
      samples.append(clock.now - start)
    }
    return samples
  }

  /// Measures `g`, all vCPUs' registers sequentially (`Hg`+`g` each, one request at a
  /// time) and pipelined (one write), and a 4 KiB physical read.
  ///
  /// The target must be stopped.
  public static func run(
    on connection: GDBRemoteConnection, memoryAddress: UInt64 = 0xf_0000, iterations: Int = 200
  ) throws(GDBRemoteError) -> [Measurement] {
    let threads = try connection.threads()
    guard let first = threads.first else {
      throw GDBRemoteError(.protocolViolation, "the target has no threads")
    }
    var results: [Measurement] = []
    try connection.selectThread(first)
    results.append(
      try measure("g (\(connection.targetDescription?.registerBytes ?? 0) bytes)", iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.request("g")
      })
    results.append(
      try measure("\(threads.count)×(Hg+g) one at a time", iterations: iterations) {
        () throws(GDBRemoteError) in
        for t in threads {
          _ = try connection.request("Hg\(connection.spelling(t))")
          if let target = connection.targetDescription {
            _ = try RegisterSet(thread: t, target: target, reply: try connection.request("g"))
          }
        }
      })
    results.append(
      try measure("\(threads.count)×(Hg+g) pipelined", iterations: iterations) { () throws(GDBRemoteError) in
        _ = try connection.readBatch(registersOf: threads, memory: [])
      })
    try connection.setPhysicalMemoryMode(true)
    results.append(
      try measure("4 KiB read (2×m…,800 pipelined)", iterations: iterations) { () throws(GDBRemoteError) in
        _ = try connection.readMemory(address: memoryAddress, count: 4096, physical: true)
      })
    results.append(
      try measure("4 KiB read (2×m…,800 one at a time)", iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.readMemory(address: memoryAddress, count: 2048, physical: true)
        _ = try connection.readMemory(address: memoryAddress + 2048, count: 2048, physical: true)
      })
    results.append(
      try measure("snapshot: \(threads.count)×(Hg+g) + 12 KiB, one write", iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.readBatch(
          registersOf: threads,
          memory: [MemoryRange(address: memoryAddress, count: 12 * 1024, space: .physical)])
      })
    return results
  }
}

extension GDBRemoteBenchmark {
  /// One register-read choice measured by ``registerChoices(on:threads:busy:iterations:)``.
  public struct Choice: Sendable {
    /// Its timing.
    public var measurement: Measurement
    /// Requests sent per round.
    public var packets: Int
    /// Every round's duration, in order.
    public var samples: [Duration]
  }

  /// Times `body` like ``measure(_:iterations:_:)`` and keeps every sample.
  static func sampled(
    _ name: String, packets: Int, iterations: Int, _ body: () throws(GDBRemoteError) -> Void
  ) throws(GDBRemoteError) -> Choice {
    let samples = try timings(iterations: iterations, body)
    return Choice(measurement: Measurement(name: name, samples: samples), packets: packets, samples: samples)
  }

  /// The ways QEMU 7.2's stub can deliver the registers of `threads`, each timed at a stopped
  /// target: raw `Hg`+`g` pipelined (the floor; first in the result), the same decoded,
  /// one request at a time, `p` for RIP alone or for the 18 general registers instead of `g`,
  /// only the `busy` threads (the ABI says the rest are halted in the idle loop), and `g`
  /// without `Hg` for one vCPU (what a second `Hg` costs).
  ///
  /// The target must be stopped and its description fetched (QEMU answers `p` only then).
  public static func registerChoices(
    on connection: GDBRemoteConnection, threads: [ThreadID], busy: [ThreadID], iterations: Int = 200
  ) throws(GDBRemoteError) -> [Choice] {
    guard let first = threads.first else {
      throw GDBRemoteError(.protocolViolation, "the target has no threads")
    }
    let n = threads.count
    let select = threads.map { "Hg\(connection.spelling($0))" }
    var results: [Choice] = []
    results.append(
      try sampled("\(n)×(Hg+g) pipelined, raw (floor)", packets: 2 * n, iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.pipeline(select.flatMap { [$0, "g"] })
      })
    results.append(
      try sampled("\(n)×(Hg+g) pipelined, decoded", packets: 2 * n, iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.readBatch(registersOf: threads, memory: [])
      })
    for window in [8, 16] where n > window {
      results.append(
        try sampled(
          "\(n)×(Hg+g) pipelined in writes of \(window) vCPUs", packets: 2 * n, iterations: iterations
        ) {
          () throws(GDBRemoteError) in
          var start = 0
          while start < n {
            let end = min(n, start + window)
            _ = try connection.pipeline(select[start..<end].flatMap { [$0, "g"] })
            start = end
          }
        })
    }
    results.append(
      try sampled("\(n)×(Hg+g) one at a time", packets: 2 * n, iterations: iterations) {
        () throws(GDBRemoteError) in
        for s in select {
          _ = try connection.request(s)
          _ = try connection.request("g")
        }
      })
    results.append(
      try sampled("\(n)×(Hg+p rip) pipelined", packets: 2 * n, iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.pipeline(select.flatMap { [$0, "p10"] })
      })
    let general = (0...17).map { "p" + String($0, radix: 16) }
    results.append(
      try sampled("\(n)×(Hg+18×p: GPRs, rip, eflags) pipelined", packets: 19 * n, iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.pipeline(select.flatMap { [$0] + general })
      })
    let busySelect = busy.map { "Hg\(connection.spelling($0))" }
    results.append(
      try sampled(
        "\(busy.count) busy×(Hg+g) pipelined (idle skipped)", packets: 2 * busy.count, iterations: iterations
      ) { () throws(GDBRemoteError) in
        _ = try connection.pipeline(busySelect.flatMap { [$0, "g"] })
      })
    try connection.selectThread(first)
    results.append(
      try sampled("1×g, vCPU already selected", packets: 1, iterations: iterations) {
        () throws(GDBRemoteError) in
        _ = try connection.request("g")
      })
    results.append(
      try sampled("1×(Hg+g) pipelined", packets: 2, iterations: iterations) { () throws(GDBRemoteError) in
        _ = try connection.pipeline([select[0], "g"])
      })
    return results
  }
}
