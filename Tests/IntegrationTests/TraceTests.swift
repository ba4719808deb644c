import Foundation
import Inspector
import Testing

/// The per-lcpu trace rings of the real guest, drained live from the shared RAM file.
@Suite(.serialized) struct TraceTests {
  /// A stopped VM whose lock records are all consistent: no lcpu is between a `contended`
  /// count and its trace record (both are written inside the lock record's seq).
  /// `meanwhile` runs after every refused try, with the guest running again (to keep draining).
  static func quietStop(_ guest: BootedGuest, meanwhile: () -> Void = {}) async throws -> Snapshot {
    for _ in 0..<100 {
      try await guest.target.pause()
      let snap = try await guest.target.stoppedSnapshot()
      if snap.locks.allSatisfy({ $0.consistency.isConsistent }) { return snap }
      try await guest.target.resume()
      meanwhile()
      try await Task.sleep(for: .milliseconds(7))
    }
    throw HarnessError("no stopped snapshot with every lock record consistent in 100 tries")
  }

  /// Sum of `contended` over the locks, by lock address.
  static func contended(_ snap: Snapshot) -> [UInt64: UInt64] {
    Dictionary(snap.locks.map { ($0.address, $0.contended) }, uniquingKeysWith: { a, _ in a })
  }

  @Test func contendedAcquisitionsInTheTraceMatchTheLockCounters() async throws {
    try await BootedGuest.with(smp: 4, append: "trace=all") { guest in
      _ = try await guest.waitFor("contention", timeout: .seconds(60)) { snap in
        snap.locks.contains { $0.contended > 0 }
      }
      let memory = try #require(guest.target.sharedMemory)
      let root = try #require(guest.target.rootAddress)

      // Window start: a quiet stop; the drain starts at each ring's head there.
      let before = try await Self.quietStop(guest)
      var drain = TraceDrain(rootAddress: root)
      let first = drain.drain(memory)
      #expect(first.enabled == .all, "trace=all sets every class: \(first.enabled)")
      #expect(first.problems.isEmpty, "\(first.problems)")
      try #require(drain.positions.count == 4, "one ring per lcpu: \(drain.positions)")
      try await guest.target.resume()

      // Drain live at 50 Hz for about a second, never stopping the guest (often enough that
      // nothing is lost on a loaded host, so the counts below are compared exactly).
      var events: [TraceEvent] = []
      var lost: UInt64 = 0
      var problems: [TraceProblem] = []
      var slowest = Duration.zero
      for _ in 0..<50 {
        try await Task.sleep(for: .milliseconds(20))
        let t0 = ContinuousClock.now
        let batch = drain.drain(memory)
        slowest = max(slowest, ContinuousClock.now - t0)
        events += batch.events
        lost += batch.totalLost
        problems += batch.problems
      }
      // Window end: another quiet stop (draining between tries), and what the rings hold up to there.
      let after = try await Self.quietStop(guest) {
        let batch = drain.drain(memory)
        events += batch.events
        lost += batch.totalLost
        problems += batch.problems
      }
      let last = drain.drain(memory)
      events += last.events
      lost += last.totalLost
      problems += last.problems
      try await guest.target.resume()

      #expect(problems.isEmpty, "\(problems)")
      let c0 = Self.contended(before)
      let increase = Self.contended(after).reduce(UInt64(0)) { sum, entry in
        sum + entry.value - (c0[entry.key] ?? 0)
      }
      let traced = UInt64(events.filter(\.contended).count)
      let mix = Dictionary(grouping: events, by: \.kind).mapValues(\.count).sorted { $0.value > $1.value }
      print(
        "trace window: \(events.count) events, \(traced) contended acquisitions, counters +\(increase), lost \(lost), slowest drain \(slowest); \(mix)"
      )
      try #require(increase > 0, "the workload contends within the window")
      // Every contended count is traced, unless a record was lost (and then the loss says so).
      #expect(traced <= increase)
      #expect(traced + lost >= increase, "traced \(traced) + lost \(lost) < counters' increase \(increase)")
      if lost == 0 { #expect(traced == increase) }
      // Negative control: the counters of a lock the trace never mentions did not move.
      let tracedLocks = Set(events.filter(\.contended).map(\.object))
      for (address, value) in Self.contended(after) where !tracedLocks.contains(address) && lost == 0 {
        #expect(value == c0[address] ?? 0, "lock 0x\(String(address, radix: 16)) contended untraced")
      }

      // Timestamps are monotonic per ring, and positions have no gaps when nothing was lost.
      for ring in Set(events.map(\.ring)) {
        let mine = events.filter { $0.ring == ring }
        #expect(
          zip(mine, mine.dropFirst()).allSatisfy { $0.tsc <= $1.tsc }, "lcpu \(ring)'s TSCs go backwards")
        if lost == 0 {
          #expect(zip(mine, mine.dropFirst()).allSatisfy { $0.position + 1 == $1.position })
        }
      }

      // Every acquisition of an owned lock (spin, ticket, rw, mutex) is released on the same
      // lcpu before it is acquired again there; a release may open the window and an
      // acquisition may close it.
      let kinds = Dictionary(after.locks.map { ($0.address, $0.kind) }, uniquingKeysWith: { a, _ in a })
      let lockEvents = events.filter {
        ($0.kind == .lockAcquired || $0.kind == .lockReleased) && kinds[$0.object] != nil
          && kinds[$0.object] != .semaphore
      }.sorted { ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position) }
      var held: [String: Bool] = [:]
      var pairs = 0
      var violations: [String] = []
      for e in lockEvents {
        let key = "\(e.object)/\(e.lcpu)"
        if e.kind == .lockAcquired {
          if held[key] == true { violations.append("acquired twice: \(key) at \(e.tsc)") }
          held[key] = true
        } else {
          if held[key] == true {
            pairs += 1
          } else if held[key] == false {
            violations.append("released twice: \(key) at \(e.tsc)")
          }
          held[key] = false
        }
      }
      if lost == 0 { #expect(violations.isEmpty, "\(violations.prefix(5))") }
      #expect(pairs > 0)
      for kind in [TraceKind.irqEnter, .irqExit, .contextSwitch, .timerFired, .lockContend] {
        #expect(events.contains { $0.kind == kind }, "no \(kind) event in the window")
      }
    }
  }

  @Test func theDeadlockTraceShowsBothWaitsStartingAndNeverEnding() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=deadlock trace=locks") { guest in
      // Drain from boot (the abba threads wait 200 ms before taking their locks), so the
      // waits' first records are kept.
      var drain: TraceDrain?
      var events: [TraceEvent] = []
      var lost: UInt64 = 0
      var cycle: WaitCycle?
      let deadline = ContinuousClock.now + .seconds(90)
      while ContinuousClock.now < deadline {
        if drain == nil, let root = guest.target.rootAddress {
          drain = TraceDrain(rootAddress: root, startAtOldest: true)
        }
        if var d = drain, let memory = guest.target.sharedMemory {
          let batch = d.drain(memory)
          drain = d
          events += batch.events
          lost += batch.totalLost
          #expect(batch.problems.isEmpty, "\(batch.problems)")
        }
        if cycle == nil, let snap = try? guest.target.liveSnapshot(), let c = snap.waitCycles.first {
          cycle = c
        }
        if cycle != nil { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      let found = try #require(cycle, "no ABBA cycle")
      // A little longer: the waits must still not end.
      for _ in 0..<5 {
        try await Task.sleep(for: .milliseconds(100))
        if var d = drain, let memory = guest.target.sharedMemory {
          let batch = d.drain(memory)
          drain = d
          events += batch.events
          lost += batch.totalLost
        }
      }
      print("deadlock trace: \(events.count) events, lost \(lost)")
      for step in found.steps {
        let waits = events.filter {
          $0.kind == .lockContend && $0.object == step.lockAddress && $0.arg == step.thread
        }
        let acquired = events.filter {
          $0.kind == .lockAcquired && $0.object == step.lockAddress && $0.arg == step.thread
        }
        let start = try #require(
          waits.last, "\(step.lock): thread \(step.thread)'s wait start is in the trace")
        #expect(
          !acquired.contains { $0.tsc >= start.tsc }, "\(step.lock): thread \(step.thread)'s wait never ends")
      }
      // Negative control: the other thread of the cycle did acquire the lock it is waited on.
      for (i, step) in found.steps.enumerated() {
        let holder = found.steps[(i + 1) % found.steps.count].thread
        #expect(
          events.contains { $0.kind == .lockAcquired && $0.object == step.lockAddress && $0.arg == holder })
      }
    }
  }
}
