import Foundation
import Inspector
import Testing

/// Issue 6: locks, scheduler, timers and the workload, read from the ABI of the real guest.
@Suite(.serialized) struct LocksSchedulerTests {
  @Test func defaultWorkloadShowsContentionTimersAndAPassingSelfCheck() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      // Let the workload run, then look at a stopped (fully consistent) snapshot.
      let live = try await guest.waitFor("contention and self-checks", timeout: .seconds(60)) { snap in
        (snap.workload?.checks ?? 0) > 0 && snap.locks.contains { $0.contended > 0 }
          && snap.timerQueues.count == 4 && snap.timerQueues.allSatisfy { $0.fired > 0 }
      }
      let workload = try #require(live.workload)
      #expect(
        workload.checkFailures == 0,
        "self-check: expected \(workload.expected), observed \(workload.observed)")
      #expect(
        workload.ops.count == 4 && workload.ops.allSatisfy { $0 > 0 }, "every lcpu does work: \(workload.ops)"
      )
      // Every lock kind is exercised.
      let kinds = Set(live.locks.filter { $0.acquisitions > 0 }.map(\.kind))
      for kind in [LockKind.spin, .ticket, .rw, .mutex, .semaphore] {
        #expect(kinds.contains(kind), "no \(kind) lock was used")
      }
      #expect(live.locks.contains { $0.contended > 0 && $0.waitTotalTSC > 0 })
      #expect(!live.threads.isEmpty)
      #expect(Set(live.threads.map(\.lcpu)).count == 4, "threads on every lcpu")

      // Timers fire on every lcpu, each with its own deadlines.
      let a = live.timerQueues
      try await Task.sleep(for: .milliseconds(300))
      let b = try guest.target.liveSnapshot().timerQueues
      #expect(zip(a, b).allSatisfy { $0.fired < $1.fired })
      #expect(Set(b.map(\.lcpu)) == [0, 1, 2, 3])
      #expect(Set(b.map(\.nextDeadlineTSC)).count > 1, "each lcpu programs its own deadline")

      // At a stopped VM holders and waiters agree with the threads.
      try await guest.target.pause()
      let stopped = try await guest.target.stoppedSnapshot()
      let threads = Dictionary(stopped.threads.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
      for lock in stopped.locks {
        if let holder = lock.holderThread {
          #expect(threads[holder] != nil, "\(lock.name) is held by unknown thread \(holder)")
        }
        for waiter in lock.waiters {
          if let t = waiter.thread, let thread = threads[t] {
            #expect(
              thread.blockedOn == lock.address,
              "\(thread.name) waits on \(lock.name) but is blocked on \(thread.blockedOn)")
          }
          #expect(waiter.thread != lock.holderThread || lock.kind == .rw || lock.holderThread == nil)
        }
      }
      for thread in stopped.threads where thread.state == .blockedOnLock || thread.state == .spinning {
        #expect(
          stopped.locks.contains { $0.address == thread.blockedOn },
          "\(thread.name) blocks on an unknown lock")
      }
    }
  }

  @Test func theDeadlockScenarioShowsAWaitForCycle() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=deadlock") { guest in
      let snap = try await guest.waitFor("an ABBA cycle", timeout: .seconds(60)) { !$0.waitCycles.isEmpty }
      let cycle = try #require(snap.waitCycles.first)
      #expect(cycle.steps.count >= 2)
      #expect(Set(cycle.steps.map(\.lockAddress)).count == cycle.steps.count)
      #expect(snap.workload?.scenario == "deadlock")
      // It stays stuck: the same cycle a moment later.
      try await Task.sleep(for: .milliseconds(500))
      #expect(
        try guest.target.liveSnapshot().waitCycles.first?.steps.map(\.thread).sorted()
          == cycle.steps.map(\.thread).sorted())
    }
  }

  @Test func theISRMisuseScenarioIsCounted() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=isr-misuse") { guest in
      let snap = try await guest.waitFor("a counted misuse", timeout: .seconds(60)) {
        $0.locks.contains { $0.misuseIRQUnsafe > 0 }
      }
      #expect(snap.misusedLocks.first?.misuseIRQUnsafe ?? 0 > 0)
      // The guest is still alive and ticking.
      let a = try guest.target.liveSnapshot()
      try await Task.sleep(for: .milliseconds(200))
      let b = try guest.target.liveSnapshot()
      #expect(zip(a.lcpus, b.lcpus).allSatisfy { $0.ticks < $1.ticks })
    }
  }

  @Test func theConvoyScenarioQueuesWaitersBehindOneHolder() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=convoy") { guest in
      // Hold and wait maxima are written when a hold ends: wait for one to have ended.
      let snap = try await guest.waitFor("a convoy", timeout: .seconds(60)) { snap in
        snap.locks.contains { $0.isHeld && $0.waiterCount >= 2 && $0.holdMaxTSC > 0 }
      }
      let lock = try #require(snap.locks.first { $0.isHeld && $0.waiterCount >= 2 && $0.holdMaxTSC > 0 })
      #expect(lock.holdMaxTSC > lock.waitMaxTSC / 100)
      #expect(snap.workload?.scenario == "convoy")
    }
  }
}
