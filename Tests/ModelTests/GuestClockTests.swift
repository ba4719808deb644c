import Foundation
import Model
import ModelFixtures
import Testing

@Suite struct GuestClockTests {
  /// 2 GHz: 2,000,000 cycles per millisecond.
  let clock = GuestClock(tscPerMs: 2_000_000, bootTSC: 1_000_000, now: 5_000_000_000)

  @Test func cyclesBecomeSecondsAndBack() {
    #expect(clock.seconds(UInt64(2_000_000)) == 0.001)
    #expect(abs((clock.seconds(UInt64(3_000)) ?? 0) - 1.5e-6) < 1e-18)
    #expect(clock.cycles(0.001) == 2_000_000)
    #expect(clock.cycles(-1) == nil)
    #expect(clock.seconds(Double.nan) == nil)
  }

  @Test func untilIsSignedAndSinceRefusesTheFuture() {
    #expect(clock.until(5_004_000_000) == 0.002)
    #expect(clock.until(4_998_000_000) == -0.001)
    #expect(clock.until(0) == nil, "0 means no deadline")
    #expect(clock.since(4_000_000_000) == 0.5)
    #expect(clock.since(6_000_000_000) == nil, "a start after now is not a duration")
    #expect(clock.uptimeSeconds == Double(5_000_000_000 - 1_000_000) / 2e9)
  }

  @Test func anUncalibratedClockKnowsNothing() {
    let c = GuestClock(tscPerMs: 0, bootTSC: 0, now: 123)
    #expect(!c.isCalibrated)
    #expect(c.seconds(UInt64(1000)) == nil)
    #expect(c.until(200) == nil)
    #expect(c.uptimeSeconds == nil)
    #expect(GuestClock(tscPerMs: 1000, bootTSC: 0, now: 0).until(5) == nil, "no tick seen: no now")
  }

  @Test func aSnapshotsClockIsItsNewestTick() throws {
    var snap = Snapshot(
      timeNanoseconds: 1, source: .sharedRAM, guest: try Make.guest(tscPerMs: 1_000_000, bootTSC: 500),
      lcpus: [
        try Make.lcpu(0, lastTick: 7_000), try Make.lcpu(1, lastTick: 9_000), try Make.lcpu(2, lastTick: 3),
      ])
    #expect(snap.clock == GuestClock(tscPerMs: 1_000_000, bootTSC: 500, now: 9_000))
    #expect(abs((snap.uptimeSeconds ?? 0) - 8.5e-6) < 1e-18)
    snap.guest = nil
    #expect(snap.clock.isCalibrated == false)
    #expect(snap.uptimeSeconds == nil)
  }
}
