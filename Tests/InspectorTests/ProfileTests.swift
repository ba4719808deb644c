import InspectABI
import Testing

@testable import Inspector

/// The profile drain over synthetic rings (the trace tests' RingImage with sample records) and
/// the model's counts, folded stacks and window.
@Suite struct ProfileTests {
  static let stride = MemoryLayout<smptop_prof_sample>.stride

  static func image(lcpus: Int, capacity: Int, live: Bool = true) -> RingImage {
    RingImage(
      lcpus: lcpus, capacity: capacity, live: live, table: SMPTOP_TABLE_PROFILE.rawValue,
      recordStride: stride,
      profHz: 1000)
  }

  /// Names 0x1000... as function A, 0x2000... as B, 0x3000... as C, else "?".
  static func name(_ a: UInt64) -> String {
    switch a >> 12 {
    case 1: "A"
    case 2: "B"
    case 3: "C"
    default: "?"
    }
  }

  @Test func drainsSamplesWithTheirFramesAndFlags() {
    let image = Self.image(lcpus: 2, capacity: 8)
    var drain = ProfileDrain(rootAddress: RingImage.root)
    let first = drain.drain(image)
    #expect(first.present && first.hz == 1000 && first.samples.isEmpty && first.problems.isEmpty)
    image.sample(0, tsc: 10, rip: 0x3010, frames: [0x2020, 0x1030])
    image.sample(1, tsc: 11, rip: 0x5000, frames: [], idle: true, thread: 0)
    let batch = drain.drain(image)
    #expect(batch.problems.isEmpty && batch.totalLost == 0)
    try? #require(batch.samples.count == 2)
    let s = batch.samples[0]
    #expect(s.lcpu == 0 && s.rip == 0x3010 && s.frames == [0x2020, 0x1030] && !s.idle && s.thread == 1)
    #expect(s.stack == [0x102F, 0x201F, 0x3010], "outermost first, return addresses moved into their call")
    #expect(batch.samples[1].idle && batch.samples[1].lcpu == 1)
  }

  @Test func overwrittenAndTornSamplesAreLost() {
    let image = Self.image(lcpus: 1, capacity: 8, live: false)
    var drain = ProfileDrain(rootAddress: RingImage.root)
    _ = drain.drain(image)
    for t in 0..<20 { image.sample(0, tsc: UInt64(t), rip: 0x1000, frames: [0x2000]) }
    // A depth beyond the frames a sample holds is garbage: torn, not decoded.
    let ring = image.ring(0)
    let slot = ring.records + UInt64((19 % 8) * Self.stride)
    image.put(slot + 26, [0xFF, 0x00])
    let batch = drain.drain(image)
    #expect(batch.samples.count == 7)
    #expect(batch.totalLost == 13, "12 overwritten + 1 torn")
    #expect(batch.problems.contains { $0.description.hasPrefix("profile ring 0:") })
    #expect(drain.totalLost == 13 && drain.totalSamples == 7)
  }

  @Test func aGuestWithoutProfileRingsSaysSo() {
    let image = RingImage(lcpus: 2, capacity: 8)  // trace rings only, prof_hz 0
    var drain = ProfileDrain(rootAddress: RingImage.root)
    let batch = drain.drain(image)
    #expect(!batch.present && batch.hz == 0 && batch.problems.isEmpty)
  }

  @Test func selfAndTotalCountsFoldedStacksAndIdleApart() {
    let image = Self.image(lcpus: 2, capacity: 64)
    var drain = ProfileDrain(rootAddress: RingImage.root, startAtOldest: true)
    // lcpu 0: A -> B -> C (running C) x3, A -> B (running B) x1, idle x2
    for t in 0..<3 { image.sample(0, tsc: UInt64(t), rip: 0x3000, frames: [0x2001, 0x1001]) }
    image.sample(0, tsc: 3, rip: 0x2000, frames: [0x1001])
    for t in 4..<6 { image.sample(0, tsc: UInt64(t), rip: 0x9000, frames: [], idle: true, thread: 0) }
    // lcpu 1: B -> B (recursion) running B x2
    for t in 0..<2 { image.sample(1, tsc: UInt64(t), rip: 0x2000, frames: [0x2001]) }
    var model = ProfileModel()
    let batch = drain.drain(image)
    model.add(batch, tscPerMs: 1000)
    #expect(model.count() == 8 && model.count(lcpu: 0) == 6)

    let r0 = model.report(lcpu: 0, name: Self.name)
    #expect(r0.samples == 6 && r0.periods == 6 && r0.idle == 2 && r0.busy == 4)
    #expect(r0.rows.map(\.name) == ["C", "B", "A"])
    #expect(r0.rows.map(\.selfCount) == [3, 1, 0])
    #expect(r0.rows.map(\.totalCount) == [3, 4, 4])
    #expect(abs(r0.percent(r0.rows[0].selfCount) - 50) < 0.01)

    let all = model.report(name: Self.name)
    #expect(
      all.rows.first { $0.name == "B" } == ProfileRow(name: "B", selfCount: 3, totalCount: 6),
      "recursion counts once")

    let merged = model.folded(perLCPU: false, name: Self.name)
    #expect(merged == ["A;B 1", "A;B;C 3", "B;B 2", "idle 2"])
    let perLCPU = model.folded(perLCPU: true, name: Self.name)
    #expect(perLCPU == ["lcpu0;A;B 1", "lcpu0;A;B;C 3", "lcpu0;idle 2", "lcpu1;B;B 2"])
    let total = perLCPU.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
    #expect(total == batch.samples.count, "the folded counts add up to the samples drained (1 period each)")
  }

  @Test func aLateSampleCountsForThePeriodsItSkipped() {
    let image = Self.image(lcpus: 1, capacity: 16)
    var drain = ProfileDrain(rootAddress: RingImage.root, startAtOldest: true)
    image.sample(0, tsc: 1, rip: 0x3000, frames: [0x1001], periods: 7)
    image.sample(0, tsc: 2, rip: 0x9000, frames: [], idle: true, thread: 0)
    image.sample(0, tsc: 3, rip: 0x2000, frames: [0x1001], periods: 2)
    image.sample(0, tsc: 4, rip: 0x2000, frames: [], periods: 5000)  // more than the guest ever skips: torn
    var model = ProfileModel()
    let batch = drain.drain(image)
    #expect(batch.samples.map(\.periods) == [7, 1, 2] && batch.totalLost == 1)
    model.add(batch, tscPerMs: 1000)
    let r = model.report(name: Self.name)
    #expect(r.samples == 3 && r.periods == 10 && r.idle == 1 && r.busy == 9)
    #expect(r.rows.first == ProfileRow(name: "C", selfCount: 7, totalCount: 7))
    #expect(abs(r.percent(7) - 70) < 0.01)
    #expect(model.folded(perLCPU: false, name: Self.name) == ["A;B 2", "A;C 7", "idle 1"])
  }

  @Test func unseenSamplesCountForTheirStateUnderOneName() {
    let image = Self.image(lcpus: 1, capacity: 16)
    var drain = ProfileDrain(rootAddress: RingImage.root, startAtOldest: true)
    image.sample(0, tsc: 1, rip: 0x3000, frames: [0x1001], periods: 2)
    // Deadlines that passed while busy, taken by an interrupt that found the lcpu idle: the
    // guest writes them without a stack; whatever rip or frames the record holds are ignored.
    image.sample(0, tsc: 1, rip: 0x2000, frames: [0x1001], thread: 0, periods: 3, unseen: true)
    image.sample(0, tsc: 2, rip: 0x9000, frames: [], idle: true, thread: 0)
    image.sample(0, tsc: 3, rip: 0, frames: [], idle: true, thread: 0, periods: 4, unseen: true)
    let batch = drain.drain(image)
    #expect(batch.problems.isEmpty)
    #expect(batch.samples.map(\.unseen) == [false, true, false, true])
    #expect(batch.samples[1].stack == [ProfileSample.unseenAddress] && batch.samples[1].frames.isEmpty)
    var model = ProfileModel()
    model.add(batch, tscPerMs: 1000)
    let name = { (a: UInt64) in a == ProfileSample.unseenAddress ? ProfileSample.unseenName : Self.name(a) }
    let r = model.report(name: name)
    #expect(r.samples == 4 && r.periods == 10 && r.idle == 5 && r.busy == 5)
    #expect(r.rows.first == ProfileRow(name: "[unseen]", selfCount: 3, totalCount: 3))
    #expect(model.folded(perLCPU: false, name: name) == ["A;C 2", "[unseen] 3", "idle 5"])
  }

  @Test func frameNamesCannotBreakTheFoldedFormat() {
    var model = ProfileModel()
    var batch = ProfileBatch()
    batch.samples = [
      ProfileSample(lcpu: 0, position: 0, tsc: 1, thread: 1, idle: false, rip: 0x1000, frames: [])
    ]
    model.add(batch, tscPerMs: 1000)
    #expect(model.folded(perLCPU: false) { _ in "a;b\nc" } == ["a:b c 1"])
    #expect(model.folded(perLCPU: false) { _ in "" } == ["? 1"])
  }

  @Test func theWindowKeepsTheLastSecondsAndLossStays() {
    var model = ProfileModel(windowSeconds: 1)
    var batch = ProfileBatch()
    // tscPerMs 1000: one second = 1_000_000 counts.
    batch.samples = (0..<30).map { k in
      ProfileSample(
        lcpu: UInt32(k % 2), position: UInt64(k / 2), tsc: UInt64(k) * 100_000, thread: 1, idle: false,
        rip: 0x1000, frames: [])
    }
    batch.lost = [1: 5]
    model.add(batch, tscPerMs: 1000)
    // Newest 2_900_000: the window starts at 1_900_000 (samples 19...29).
    #expect(model.count() == 11)
    #expect(model.samples.values.allSatisfy { $0.allSatisfy { $0.tsc >= 1_900_000 } })
    #expect(model.lostCount() == 5 && model.lostCount(lcpu: 1) == 5 && model.lostCount(lcpu: 0) == 0)
  }
}
