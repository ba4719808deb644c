import Foundation
import Inspector
import Testing

/// Locks, scheduler, timers and the workload, read from the ABI of the real guest.
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

      // Timers fire on every lcpu.
      let a = live.timerQueues
      try await Task.sleep(for: .milliseconds(300))
      let b = try guest.target.liveSnapshot().timerQueues
      try #require(a.count == 4 && b.count == 4)
      #expect(zip(a, b).allSatisfy { $0.fired < $1.fired })
      #expect(Set(b.map(\.lcpu)) == [0, 1, 2, 3])

      // At a stopped VM (consistent records) where some lock is held and some thread waits:
      // holders, waiters and timers agree with the threads and with each lcpu's own clock.
      let stopped = try await Self.stoppedSnapshot(of: guest, where: "a held lock and a waiting thread") {
        snap in
        snap.locks.contains { $0.holderThread != nil }
          && snap.locks.contains { $0.waiters.contains { $0.thread != nil } }
          && snap.timerQueues.allSatisfy { $0.consistency.isConsistent }
          && snap.locks.allSatisfy { $0.consistency.isConsistent }
      }
      let threads = Dictionary(stopped.threads.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
      let held = stopped.locks.filter { $0.holderThread != nil }
      try #require(!held.isEmpty)
      for lock in held {
        let holder = try #require(lock.holderThread)
        let thread = try #require(threads[holder], "\(lock.name) is held by unknown thread \(holder)")
        if let lcpu = lock.holderLCPU { #expect(thread.lcpu == lcpu, "\(lock.name)'s holder runs elsewhere") }
      }
      let waiting = stopped.locks.flatMap { lock in
        lock.waiters.compactMap { w in w.thread.map { (lock, $0) } }
      }
      try #require(!waiting.isEmpty)
      for (lock, id) in waiting {
        let thread = try #require(threads[id], "\(lock.name) has an unknown waiter \(id)")
        #expect(
          thread.blockedOn == lock.address,
          "\(thread.name) waits on \(lock.name) but is blocked on \(thread.blockedOn)")
        #expect(
          [.blockedOnLock, .blockedOnSemaphore, .spinning].contains(thread.state),
          "\(thread.name): \(thread.state)")
        #expect(id != lock.holderThread || lock.kind == .rw, "\(thread.name) waits for a lock it holds")
      }
      for thread in stopped.threads where thread.state == .blockedOnLock || thread.state == .spinning {
        #expect(
          stopped.locks.contains { $0.address == thread.blockedOn },
          "\(thread.name) blocks on an unknown lock")
      }
      try Self.expectRealTimerDeadlines(stopped)

      // Negative controls: the default workload has no wait-for cycle and no misuse.
      #expect(stopped.waitCycles.isEmpty, "a cycle in the default workload: \(stopped.waitCycles)")
      #expect(
        stopped.misusedLocks.isEmpty, "misuse in the default workload: \(stopped.misusedLocks.map(\.name))")
      try await guest.target.resume()
    }
  }

  /// Pauses the VM and takes stopped snapshots (resuming in between) until `condition` holds;
  /// the VM is left paused on the one returned.
  static func stoppedSnapshot(
    of guest: BootedGuest, where what: String, tries: Int = 100, _ condition: (Snapshot) -> Bool
  ) async throws -> Snapshot {
    for _ in 0..<tries {
      try await guest.target.pause()
      let snap = try await guest.target.stoppedSnapshot()
      if condition(snap) { return snap }
      try await guest.target.resume()
      try await Task.sleep(for: .milliseconds(13))
    }
    throw HarnessError("no stopped snapshot with \(what) in \(tries) tries")
  }

  /// Each lcpu's timer queue against its own records: the earliest pending timer is what its
  /// LAPIC is programmed for, the listed timers are sorted and owned by threads of that lcpu,
  /// and the kernel's own tick is due within one tick period of the lcpu's latest tick.
  static func expectRealTimerDeadlines(_ snap: Snapshot) throws {
    let info = try #require(snap.guest)
    let tick = UInt64(info.tickMicroseconds) * UInt64(info.tscPerMs) / 1000
    try #require(tick > 0)
    let threads = Dictionary(snap.threads.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
    try #require(snap.timerQueues.count == snap.lcpus.count && !snap.lcpus.isEmpty)
    for (queue, lcpu) in zip(snap.timerQueues, snap.lcpus) {
      #expect(queue.lcpu == lcpu.index)
      #expect(queue.pending > 0, "lcpu \(queue.lcpu) has no timer, not even its tick")
      #expect(queue.timers.count == min(Int(queue.pending), 16))
      let deadlines = queue.timers.map(\.deadlineTSC)
      #expect(deadlines == deadlines.sorted(), "lcpu \(queue.lcpu)'s timers out of order")
      #expect(queue.nextDeadlineTSC == deadlines.first, "lcpu \(queue.lcpu) programs another deadline")
      // The queue and the LAPIC deadline change together with interrupts off (two records, two
      // writes); a stop can land between the writes only on an lcpu whose RFLAGS.IF is clear.
      let vcpu = snap.vcpus?.first { $0.index == Int(lcpu.index) }
      let interruptsOn = (vcpu?.value(of: "eflags")).map { $0 & 0x200 != 0 } ?? true
      if interruptsOn {
        #expect(
          lcpu.nextDeadlineTSC == queue.nextDeadlineTSC,
          "lcpu \(queue.lcpu)'s record and queue disagree with interrupts on at \(vcpu?.symbol ?? "?")")
      }
      for timer in queue.timers where timer.ownerThread != 0 {
        #expect(
          threads[timer.ownerThread]?.lcpu == queue.lcpu, "lcpu \(queue.lcpu) holds a foreign thread's timer")
      }
      let kernelTicks = queue.timers.filter { $0.ownerThread == 0 }
      #expect(kernelTicks.count == 1, "lcpu \(queue.lcpu): \(kernelTicks.count) kernel ticks queued")
      if let next = kernelTicks.first?.deadlineTSC {
        #expect(
          next > lcpu.lastTickTSC && next - lcpu.lastTickTSC <= 2 * tick,
          "lcpu \(queue.lcpu)'s tick is due \(Int64(bitPattern: next &- lcpu.lastTickTSC)) TSC after its last"
        )
      }
    }
  }

  @Test func theDeadlockScenarioShowsAWaitForCycle() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=deadlock") { guest in
      // The cycles of two consecutive live snapshots (20 ms apart) must agree: a live snapshot
      // reads locks and threads at different instants, so one alone can hold a cycle that
      // never existed; a deadlock stays.
      var previous: [Set<UInt64>] = []
      let snap = try await guest.waitFor("the same ABBA cycle in two snapshots", timeout: .seconds(60)) { snap in
        let cycles = snap.waitCycles.map { Set($0.steps.map(\.thread)) }
        defer { previous = cycles }
        return !cycles.isEmpty && cycles == previous
      }
      #expect(snap.workload?.scenario == "deadlock")
      // Exactly one cycle: two threads, each holding one of deadlock.A and deadlock.B and
      // blocked on the other.
      try #require(snap.waitCycles.count == 1, "\(snap.waitCycles)")
      let cycle = try #require(snap.waitCycles.first)
      try #require(cycle.steps.count == 2, "an ABBA cycle has two edges: \(cycle.steps)")
      #expect(Set(cycle.steps.map(\.lock)) == ["deadlock.A", "deadlock.B"])
      #expect(Set(cycle.steps.map(\.thread)).count == 2)
      let threads = Dictionary(snap.threads.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
      for (i, step) in cycle.steps.enumerated() {
        let next = cycle.steps[(i + 1) % cycle.steps.count]
        let lock = try #require(snap.locks.first { $0.address == step.lockAddress })
        #expect(lock.name == step.lock)
        #expect(lock.holderThread == next.thread, "\(lock.name) is held by the next thread in the cycle")
        let waiter = try #require(threads[step.thread])
        #expect(waiter.state == .blockedOnLock, "\(waiter.name) is \(waiter.state)")
        #expect(waiter.blockedOn == step.lockAddress, "\(waiter.name) is blocked on \(lock.name)")
      }
      // Negative control: a deadlock is not misuse.
      #expect(snap.misusedLocks.isEmpty, "\(snap.misusedLocks.map(\.name))")
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
      let misused = try #require(snap.misusedLocks.first)
      #expect(misused.name == "isr-misuse")
      #expect(misused.misuseIRQUnsafe > 0)
      // Only the scenario's lock is taken irq-unsafely, and misuse is not a deadlock.
      #expect(snap.locks.filter { $0.misuseIRQUnsafe > 0 }.map(\.name) == ["isr-misuse"])
      #expect(snap.waitCycles.isEmpty)
      // The guest is still alive and ticking.
      let a = try guest.target.liveSnapshot()
      try await Task.sleep(for: .milliseconds(200))
      let b = try guest.target.liveSnapshot()
      try #require(a.lcpus.count == 4 && b.lcpus.count == 4)
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
