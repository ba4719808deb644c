import Foundation
import Inspector
import Testing

/// The convoy scenario seen in the trace: while one lcpu holds `convoy.mutex` for a long
/// stretch, waiters on the other lcpus queue up behind it, and each of them gets the lock only
/// after that holder's release.
@Suite(.serialized) struct TraceConvoyTests {
  /// What the trace says about queues behind long holds of one lock.
  struct Queues: CustomStringConvertible {
    /// Holds at least the minimum long.
    var longHolds = 0
    /// Long holds with waiters from at least two other lcpus waiting during them.
    var queued = 0
    /// TSC counts spent in queued holds.
    var queuedTSC: UInt64 = 0
    /// Waits on other lcpus during a queued hold that began while it was held.
    var begunDuring = 0
    /// Waits on other lcpus during a queued hold that ended in the window.
    var waits = 0
    /// Of those, waits whose acquisition came after the holder's release.
    var servedAfterRelease = 0
    /// Contended acquisitions whose lock was last acquired, not released, before them.
    var acquiredWithoutRelease = 0
    /// Contended acquisitions in the window.
    var contended = 0
    /// The window, in TSC counts.
    var windowTSC: UInt64 = 1

    /// Share of the window spent in queued holds.
    var queuedShare: Double { Double(queuedTSC) / Double(max(windowTSC, 1)) }

    var description: String {
      "\(longHolds) long holds, \(queued) queued (waiters on ≥ 2 other lcpus; "
        + String(format: "%.0f %% of the window", 100 * queuedShare)
        + "); \(waits) waits behind them (\(begunDuring) begun during the hold), \(servedAfterRelease) "
        + "acquired after the holder's release; \(acquiredWithoutRelease) of \(contended) contended "
        + "acquisitions not after a release"
    }
  }

  /// Measures queues behind holds of the exclusive lock `lock` of at least `minimumHold` TSC counts.
  static func queues(_ events: [TraceEvent], lock: UInt64, minimumHold: UInt64) -> Queues {
    let mine = events.filter { $0.object == lock }.sorted {
      ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position)
    }
    var q = Queues()
    q.windowTSC = (events.map(\.tsc).max() ?? 0) - (events.map(\.tsc).min() ?? 0)
    // Waits: contend-begin to the same thread's next acquisition on that lcpu (nil: still waiting).
    struct Waiter: Hashable {
      var thread: UInt64
      var lcpu: UInt32
    }
    var openWait: [Waiter: UInt64] = [:]
    var waits: [(lcpu: UInt32, from: UInt64, to: UInt64?)] = []
    // Holds: an acquisition and the next release on the same lcpu.
    var openHold: [UInt32: UInt64] = [:]
    var holds: [(lcpu: UInt32, from: UInt64, to: UInt64)] = []
    var lastWasRelease: Bool?
    for e in mine {
      let who = Waiter(thread: e.arg, lcpu: e.lcpu)
      switch e.kind {
      case .lockContend:
        if openWait[who] == nil { openWait[who] = e.tsc }
      case .lockAcquired:
        if let from = openWait.removeValue(forKey: who) { waits.append((e.lcpu, from, e.tsc)) }
        if e.contended {
          q.contended += 1
          if lastWasRelease == false { q.acquiredWithoutRelease += 1 }
        }
        openHold[e.lcpu] = e.tsc
        lastWasRelease = false
      case .lockReleased:
        if let from = openHold.removeValue(forKey: e.lcpu) { holds.append((e.lcpu, from, e.tsc)) }
        lastWasRelease = true
      default: break
      }
    }
    for (w, from) in openWait { waits.append((w.lcpu, from, nil)) }
    for hold in holds where hold.to - hold.from >= minimumHold {
      q.longHolds += 1
      let behind = waits.filter { w in
        w.lcpu != hold.lcpu && w.from < hold.to && (w.to.map { $0 > hold.from } ?? true)
      }
      guard Set(behind.map(\.lcpu)).count >= 2 else { continue }
      q.queued += 1
      q.queuedTSC += hold.to - hold.from
      q.begunDuring += behind.filter { $0.from >= hold.from }.count
      for w in behind {
        guard let to = w.to else { continue }
        q.waits += 1
        if to >= hold.to { q.servedAfterRelease += 1 }
      }
    }
    return q
  }

  /// Boots `append`, drains the trace for about two seconds, and measures the queues behind
  /// holds of 10 ms or more of every exclusive lock (spin, ticket, mutex), by lock name.
  static func measure(append: String) async throws -> [String: Queues] {
    try await BootedGuest.with(smp: 4, append: append) { guest in
      _ = try await guest.waitFor("contention", timeout: .seconds(60)) { snap in
        snap.locks.contains { $0.contended > 0 }
      }
      let memory = try #require(guest.target.sharedMemory)
      let root = try #require(guest.target.rootAddress)
      var drain = TraceDrain(rootAddress: root)
      _ = drain.drain(memory)
      var events: [TraceEvent] = []
      var lost: UInt64 = 0
      for _ in 0..<100 {
        try await Task.sleep(for: .milliseconds(20))
        let batch = drain.drain(memory)
        events += batch.events
        lost += batch.totalLost
        #expect(batch.problems.isEmpty, "\(batch.problems)")
      }
      #expect(lost == 0, "drained at 50 Hz, nothing is lost")
      let perMs = max(drain.tscPerMs, 1)
      let snap = try guest.target.liveSnapshot()
      var result: [String: Queues] = [:]
      for lock in snap.locks where [.spin, .ticket, .mutex].contains(lock.kind) {
        result[lock.name] = queues(events, lock: lock.address, minimumHold: 10 * perMs)
      }
      print("\(append): \(events.count) events, lost \(lost)")
      for (name, q) in result.sorted(by: { $0.value.queuedTSC > $1.value.queuedTSC }).prefix(4) {
        print("  \(name): \(q)")
      }
      return result
    }
  }

  @Test func theConvoyTraceShowsTheQueueFormingBehindOneHolder() async throws {
    let locks = try await Self.measure(append: "workload=convoy trace=locks")
    let q = try #require(locks["convoy.mutex"], "convoy.mutex is among the guest's locks")
    // convoy.holder keeps the mutex for 20 ms stretches: the window holds many of them, and
    // behind them waiters on at least two other lcpus queue up for much of the window ...
    // (A run: 60 holds of 10 ms or more, all queued, 92 % of the window.)
    #expect(q.queued >= 10, "\(q)")
    #expect(q.queuedShare >= 0.7, "\(q)")
    #expect(q.begunDuring > 0, "waits begin while the holder holds it: \(q)")
    // ... and every one of them acquires only after the holder's release.
    #expect(q.waits > 0 && q.servedAfterRelease == q.waits, "\(q)")
    #expect(q.contended > 0 && q.acquiredWithoutRelease == 0, "\(q)")
  }

  @Test func theDefaultWorkloadFormsNoSuchQueue() async throws {
    // Negative control: the default workload's locks contend all the time, and its sleeping
    // mutexes do queue now and then behind a holder that was switched out (a run: work.rmutex
    // 24 %, work.mutex 18 % of the window, the spin and ticket locks 1 %), but no lock spends
    // most of the window with a queue behind one long hold, as convoy.mutex does.
    let locks = try await Self.measure(append: "trace=locks")
    try #require(!locks.isEmpty)
    for (name, q) in locks {
      #expect(q.queuedShare < 0.5, "\(name): \(q)")
      #expect(q.servedAfterRelease == q.waits, "\(name): \(q)")
      #expect(q.acquiredWithoutRelease == 0, "\(name): \(q)")
    }
    #expect(locks.values.contains { $0.contended > 0 }, "the default workload contends")
  }
}
