import InspectABI
import Testing

@testable import Inspector

@Suite struct RatesTests {
  func snapshot(at seconds: Double, _ edit: (inout [smptop_lcpu]) -> Void) throws -> Snapshot {
    var records = Images.lcpus(2)
    edit(&records)
    var snap = try SnapshotEngine(
      memory: Images.memory(root: Images.root(lcpus: 2), lcpus: records), rootAddress: Images.rootAddress
    ).snapshot()
    snap.timeNanoseconds = UInt64(seconds * 1e9)
    return snap
  }

  @Test func ratesAndBusyShareBetweenTwoSnapshots() throws {
    let a = try snapshot(at: 1) { r in
      r[0].irq_timer = 100
      r[0].cycles_busy = 1000
      r[0].cycles_idle = 1000
      r[0].state = UInt32(SMPTOP_LCPU_IDLE.rawValue)
      r[0].state_since_tsc = 2_000_001_000
    }
    let b = try snapshot(at: 3) { r in
      r[0].irq_timer = 300
      r[0].cycles_busy = 4000  // +3000 busy
      r[0].cycles_idle = 1000  // +0 closed idle, but IDLE since 2_000_000_000: +1000 open
      r[0].state = UInt32(SMPTOP_LCPU_IDLE.rawValue)
      r[0].state_since_tsc = 2_000_000_000
    }
    let rates = try #require(SnapshotRates(from: a, to: b))
    #expect(rates.intervalSeconds == 2)
    #expect(rates.lcpus[0].timerIRQsPerSecond == 100)
    #expect(rates.lcpus[0].busyPercent == 75)
    #expect(!rates.counterReset)
  }

  @Test func countersGoingBackwardsAreAResetNotANegativeRate() throws {
    let a = try snapshot(at: 1) { $0[1].irq_ipi = 500 }
    let b = try snapshot(at: 2) { $0[1].irq_ipi = 5 }
    let rates = try #require(SnapshotRates(from: a, to: b))
    #expect(rates.counterReset)
    #expect(rates.lcpus[1].ipisPerSecond == 0)
    #expect(SnapshotRates(from: b, to: a) == nil)
  }
}
