import Foundation
import Model
import QEMULaunch
import Testing

@testable import Exposition

@Suite struct ExpositionTests {
  @Test func countersEqualTheGuestsAndResetWhenItsGoBack() throws {
    let exporter = MetricsExporter()
    var snap = try Make.snapshot(seconds: 1, lcpus: [])
    snap.locks = [
      try Make.lock("a", address: 1, acquisitions: 100, contended: 10),
      try Make.lock("dyn", address: 2, acquisitions: 5, contended: 0),
      try Make.lock("dyn", address: 3, acquisitions: 7, contended: 1),
    ]
    exporter.update(target: "g", snapshot: snap)
    var samples = Sample.parse(exporter.render())
    #expect(samples.value("smptop_target_up", ["target": "g"]) == 1)
    #expect(samples.value("smptop_lock_acquisitions_total", ["lock": "a", "kind": "spin"]) == 100)
    #expect(samples.value("smptop_lock_contended_total", ["lock": "a"]) == 10)
    #expect(
      samples.value("smptop_lock_acquisitions_total", ["lock": "dyn"]) == 12, "locks sharing a name add up")
    let wait = try #require(samples.value("smptop_lock_wait_seconds_total", ["lock": "a"]))
    #expect(abs(wait - 10 * 2e-6) < 1e-12)

    snap.locks[0].acquisitions = 250
    snap.locks[2].acquisitions = 1  // freed and made again: the sum went back
    exporter.update(target: "g", snapshot: snap)
    samples = Sample.parse(exporter.render())
    #expect(samples.value("smptop_lock_acquisitions_total", ["lock": "a"]) == 250)
    #expect(samples.value("smptop_lock_acquisitions_total", ["lock": "dyn"]) == 6)

    snap.locks.removeLast(2)
    exporter.update(target: "g", snapshot: snap)
    samples = Sample.parse(exporter.render())
    #expect(
      samples.value("smptop_lock_acquisitions_total", ["lock": "dyn"]) == nil,
      "a lock that is gone has no series")
  }

  @Test func busyRatioComesFromTheBaseline() throws {
    let exporter = MetricsExporter(ratioWindowSeconds: 0)
    let before = try Make.snapshot(
      seconds: 1,
      lcpus: [try Make.lcpu(0, lastTick: 1_000, busy: 0, idle: 0), try Make.lcpu(1, lastTick: 1_000)])
    exporter.update(target: "g", snapshot: before)
    #expect(
      Sample.parse(exporter.render()).filter { $0.name == "smptop_lcpu_busy_ratio" }.isEmpty,
      "no baseline yet")
    let after = try Make.snapshot(
      seconds: 2,
      lcpus: [
        try Make.lcpu(0, lastTick: 2_000, busy: 750, idle: 250),
        try Make.lcpu(1, lastTick: 2_000, busy: 0, idle: 1_000),
      ])
    exporter.update(target: "g", snapshot: after)
    let samples = Sample.parse(exporter.render())
    #expect(samples.value("smptop_lcpu_busy_ratio", ["lcpu": "0"]) == 0.75)
    #expect(samples.value("smptop_lcpu_busy_ratio", ["lcpu": "1"]) == 0)
    #expect(samples.value("smptop_lcpu_interrupts_total", ["lcpu": "1", "kind": "timer"]) == 11)
  }

  @Test func aTargetThatIsDownKeepsOnlyUp() throws {
    let exporter = MetricsExporter()
    var snap = try Make.snapshot(seconds: 1, lcpus: [try Make.lcpu(0, lastTick: 5)])
    snap.locks = [try Make.lock("a", address: 1, acquisitions: 1, contended: 0)]
    exporter.update(target: "one", snapshot: snap)
    exporter.update(target: "two", snapshot: snap)
    exporter.markDown(target: "one")
    let samples = Sample.parse(exporter.render())
    #expect(samples.value("smptop_target_up", ["target": "one"]) == 0)
    #expect(samples.value("smptop_target_up", ["target": "two"]) == 1)
    #expect(!samples.contains { $0.labels["target"] == "one" && $0.name != "smptop_target_up" })
    #expect(samples.value("smptop_lock_acquisitions_total", ["target": "two"]) == 1)
  }

  @Test func latenessHistogramHasTheGuestsCountsAndSum() throws {
    let exporter = MetricsExporter()
    var snap = try Make.snapshot(seconds: 1, lcpus: [])
    // 3 below 1 µs, 5 below 10 µs, 2 below 1 ms, one of 2 s; total 2.0001 s at 1 GHz.
    let counts: [UInt64] = [3, 5, 0, 2, 0, 0, 0, 1]
    snap.timerQueues = [try Make.timers(lcpu: 0, histogram: counts, lateTotalTSC: 2_000_100_000)]
    exporter.update(target: "g", snapshot: snap)
    let samples = Sample.parse(exporter.render())
    let name = "smptop_timer_lateness_seconds"
    #expect(samples.value(name + "_bucket", ["lcpu": "0", "le": "1e-06"]) == 3)
    #expect(samples.value(name + "_bucket", ["lcpu": "0", "le": "1e-05"]) == 8)
    #expect(samples.value(name + "_bucket", ["lcpu": "0", "le": "0.001"]) == 10)
    #expect(samples.value(name + "_bucket", ["lcpu": "0", "le": "1.0"]) == 10)
    #expect(samples.value(name + "_bucket", ["lcpu": "0", "le": "+Inf"]) == 11)
    #expect(samples.value(name + "_count", ["lcpu": "0"]) == 11)
    let sum = try #require(samples.value(name + "_sum", ["lcpu": "0"]))
    #expect(abs(sum - 2.0001) < 1e-9)
  }

  @Test func placedObservationsStayInTheirBuckets() {
    let counts: [UInt64] = [2, 0, 4, 0, 0, 0, 0, 0]
    let bounds = MetricsExporter.latenessBounds
    // Sums from the smallest to the largest the counts allow.
    for sum in [0.0, 1e-6, 2e-4, 4.1e-4] {
      let placed = MetricsExporter.placeObservations(counts, sum: sum)
      #expect(placed.map(\.1) == [2, 4])
      #expect(placed[0].0 >= 0 && placed[0].0 < bounds[0])
      #expect(placed[1].0 >= bounds[1] && placed[1].0 < bounds[2])
      let total = placed.reduce(0) { $0 + $1.0 * Double($1.1) }
      // Between the least (4 × 10 µs) and the most the buckets hold, the sum is kept exactly.
      if sum == 2e-4 { #expect(abs(total - sum) < 1e-15) }
    }
  }

  /// The exposition passes Prometheus' own linter.
  @Test func promtoolAcceptsTheExposition() throws {
    let exporter = MetricsExporter(ratioWindowSeconds: 0)
    var a = try Make.snapshot(seconds: 1, lcpus: [try Make.lcpu(0, lastTick: 1)])
    a.locks = [try Make.lock("sched \"rq\"\\0", address: 1, acquisitions: 3, contended: 1)]
    a.timerQueues = [try Make.timers(lcpu: 0, histogram: [1, 0, 0, 0, 0, 0, 0, 0], lateTotalTSC: 10)]
    exporter.update(target: "g", snapshot: a)
    var b = a
    b.timeNanoseconds += 1_000_000_000
    b.lcpus = [try Make.lcpu(0, lastTick: 1_000, busy: 10, idle: 10)]
    exporter.update(target: "g", snapshot: b)
    exporter.markDown(target: "gone")
    let text = exporter.render()
    let file = NSTemporaryDirectory() + "smptop-exposition-\(getpid()).txt"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    defer { unlink(file) }
    let result = try runProcess(["sh", "-c", "promtool check metrics < '\(file)'"])
    #expect(result.status == 0, "promtool: \(result.stdout) \(result.stderr)\n\(text)")
    // Negative control: promtool does fail on a broken exposition.
    try (text + "smptop_broken{x=\"1\" 1\n").write(toFile: file, atomically: true, encoding: .utf8)
    #expect(try runProcess(["sh", "-c", "promtool check metrics < '\(file)'"]).status != 0)
  }
}
