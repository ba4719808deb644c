import Foundation
import Model
import ModelFixtures
import Testing

@Suite struct LockRowTests {
  static func symbolize(_ a: UInt64) -> String? { a == 0x1000 ? "Mutex.lock()+0x10" : nil }

  @Test func holderWaitersAndTimesAreFormattedOnce() throws {
    var l = try Make.lock("sched", .mutex, address: 0x100)
    l.holderThread = 7
    l.holderLCPU = 1
    l.acquiredTSC = 20_000_000_000 - 3_000_000  // 1.5 ms before now
    l.acquireSite = 0x1000
    l.acquisitions = 1000
    l.contended = 10
    l.waitTotalTSC = 10 * 4_000  // lifetime mean 2 µs
    l.waitMaxTSC = 50_000  // 25 µs
    l.holdMaxTSC = 2_000_000  // 1 ms
    l.waiters = [
      .init(lcpu: nil, thread: 8, sinceTSC: 1), .init(lcpu: 2, thread: nil, sinceTSC: 1),
      .init(lcpu: nil, thread: 99, sinceTSC: 1),
    ]
    l.waiterCount = 5
    l.misuseRecursion = 2
    l.misuseIRQUnsafe = 1
    let snap = try Make.snapshot(
      locks: [l], threads: [try Make.thread(7, "alpha"), try Make.thread(8, "beta")])
    let row = try #require(LockRow.rows(snap, rates: nil, symbolize: Self.symbolize).first)
    let c = row.cells
    #expect(c.holder == "alpha@cpu1")
    #expect(c.held == "1.50ms")
    #expect(c.waiters == "5 beta,cpu2,t99,…")
    #expect(c.misuse == "3 irq-unsafe 1, recursion 2")
    #expect(c.site == "Mutex.lock()+0x10")
    #expect(c.meanWait == "2.0µs", "lifetime mean without rates")
    #expect(c.maxWait == "25µs")
    #expect(c.maxHold == "1.00ms")
    #expect(c.acquisitions == "—" && c.contended == "—" && c.contendedPercent == "—", "no rates yet")
    #expect(c.kind == "mutex")
    #expect(c.marker == " ")
    // ASCII spells the unit and the unknown marker differently, nothing else.
    let ascii = try #require(LockRow.rows(snap, rates: nil, style: .ascii, symbolize: Self.symbolize).first)
    #expect(ascii.cells.maxWait == "25us" && ascii.cells.acquisitions == "-")
    #expect(ascii.cells.waiters == "5 beta,cpu2,t99,>")
  }

  @Test func ratesFillTheRateCells() throws {
    var before = try Make.lock("net", .spin, address: 0x200)
    var idle = try Make.lock("idle", .semaphore, address: 0x300)
    idle.dynamic = true
    idle.acquisitions = 4
    var old = try Make.snapshot(locks: [before, idle])
    old.timeNanoseconds = 1_000_000_000
    before.acquisitions = 12_500
    before.contended = 2_500
    before.waitTotalTSC = 2_500 * 6_000
    var new = try Make.snapshot(locks: [before, idle])
    new.timeNanoseconds = 2_000_000_000
    let rates = try #require(SnapshotRates(from: old, to: new))
    let rows = LockRow.rows(new, rates: rates, symbolize: Self.symbolize)
    #expect(rows[0].cells.acquisitions == "13k", "12.5k rounds half away from zero")
    #expect(rows[0].cells.contended == "2.5k")
    #expect(rows[0].cells.contendedPercent == "20.0")
    #expect(rows[0].cells.meanWait == "3.0µs", "the interval's mean wait")
    #expect(rows[0].cells.holder == "-" && rows[0].cells.site == "-")
    #expect(rows[1].cells.kind == "sem*")
    #expect(rows[1].cells.acquisitions == "0")
    #expect(rows[1].cells.contendedPercent == "-", "no acquisitions in the interval: no share")
    #expect(rows[1].cells.maxHold == "-", "a semaphore has no holder to time")
    #expect(rows.sorted(by: LockRow.byContention).map(\.record.name) == ["net", "idle"])
  }

  @Test func readersAndUnreadableLocks() throws {
    var rw = try Make.lock("table", .rw, address: 0x400)
    rw.readers = 1
    var two = try Make.lock("table2", .rw, address: 0x500)
    two.readers = 2
    var bad = try Make.lock("gone", .ticket, address: 0x600)
    bad.consistency = .unreadable(reason: "bad pointer")
    bad.acquisitions = 5
    bad.contended = 1
    bad.waitMaxTSC = 100
    var torn = try Make.lock("torn", .spin, address: 0x700)
    torn.consistency = .inconsistent(retries: 16)
    let rows = LockRow.rows(
      try Make.snapshot(locks: [rw, two, bad, torn]), rates: nil, symbolize: Self.symbolize)
    #expect(rows[0].cells.holder == "1 reader")
    #expect(rows[1].cells.holder == "2 readers")
    #expect(rows[2].cells.holder == "unreadable: bad pointer")
    #expect(
      rows[2].cells.maxWait == "-" && rows[2].maxWaitSeconds == nil, "nothing from an unreadable record")
    #expect(rows[2].cells.marker == "!" && rows[3].cells.marker == "~")
  }

  @Test func oneDeadlockSentenceAndTheTableCarriesIt() throws {
    var a = try Make.lock("lock-A", .mutex, address: 0xA00)
    var b = try Make.lock("lock-B", .mutex, address: 0xB00)
    a.holderThread = 1
    b.holderThread = 2
    let snap = try Make.snapshot(
      locks: [a, b],
      threads: [try Make.thread(1, "alpha", blockedOn: 0xB00), try Make.thread(2, "beta", blockedOn: 0xA00)])
    let cycle = try #require(snap.waitCycles.first)
    let sentence = cycle.sentence(names: ThreadNames(snap))
    #expect(sentence == "deadlock: alpha waits lock-B held by beta waits lock-A held by alpha")
    let table = LockTable(snapshot: snap, rates: nil, top: 1, symbolize: Self.symbolize)
    #expect(table.text.contains(sentence))
    #expect(table.text.contains("(1 more locks: smptop locks --top 0)"))
    let rows = LockRow.rows(snap, rates: nil, symbolize: Self.symbolize)
    #expect(rows.allSatisfy { $0.inCycle })
  }
}

@Suite struct TimerQueueRowTests {
  @Test func latenessDueAndEarliestAreFormattedOnce() throws {
    var q = try Make.decode(
      TimerQueueRecord.self,
      """
      {"lcpu":2,"pending":6,"nextDeadlineTSC":19998000000,"fired":4,"lateTotalTSC":8000,"lateMaxTSC":6000,
       "lateHistogram":[1,0,3,0,0,0,0,0],"timers":[],"consistency":\(Make.ok)}
      """)
    q.timers = [
      .init(deadlineTSC: 20_004_000_000, ownerThread: 7), .init(deadlineTSC: 20_002_000_000, ownerThread: 0),
    ]
    var snap = try Make.snapshot(locks: [], threads: [try Make.thread(7, "alpha")])
    snap.timerQueues = [q]
    let c = try #require(TimerQueueRow.rows(snap, rates: nil).first).cells
    #expect(c.due == "late 1.00ms")
    #expect(c.lateMax == "3.0µs" && c.lateMean == "1.0µs")
    #expect(c.lateness == "<1µs:1 <100µs:3")
    #expect(c.earliest == "kernel 1.00ms, alpha 2.00ms, …", "soonest first, more pending than listed")
    #expect(c.firedPerSecond == "—" && c.fired == "4" && c.pending == "6")
    let ascii = try #require(TimerQueueRow.rows(snap, rates: nil, style: .ascii).first).cells
    #expect(ascii.lateness == "<1us:1 <100us:3" && ascii.earliest.hasSuffix(", >"))
  }
}
