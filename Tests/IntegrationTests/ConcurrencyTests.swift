import ELFSymbols
import Foundation
import GDBRemote
import Inspector
import Testing

/// The guest's concurrency guarantees, checked on the real guest in real QEMU: wake-ups that
/// race a waiter's re-check, interrupt handlers re-entering ticket and rw locks, and a short
/// soak of the default workload read live.
@Suite(.serialized) struct ConcurrencyTests {
  /// Sum of a scheduler counter over every lcpu of a snapshot.
  static func total(_ snap: Snapshot, _ counter: (SchedulerCounters) -> UInt64) -> UInt64 {
    snap.lcpus.reduce(0) { $0 + ($1.scheduler.map(counter) ?? 0) }
  }

  @Test func wakeUpsBetweenBlockAndRecheckLeaveTheRunQueuesIntact() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=wake-race") { guest in
      // Every wake.waiter is woken between its block() and its re-check, every round.
      let start = try await guest.waitFor("run-queue self-checks on every lcpu", timeout: .seconds(60)) {
        snap in
        snap.lcpus.count == 4 && snap.lcpus.allSatisfy { ($0.scheduler?.runqChecks ?? 0) >= 50 }
          && snap.threads.filter { $0.name.hasPrefix("wake.waiter") }.count == 4
      }
      #expect(start.workload?.scenario == "wake-race")
      try await Task.sleep(for: .seconds(3))
      let end = try guest.target.liveSnapshot()
      for lcpu in end.lcpus {
        let s = try #require(lcpu.scheduler)
        #expect(
          s.runqCheckFailures == 0,
          "lcpu \(lcpu.index): \(s.runqCheckFailures) of \(s.runqChecks) run-queue self-checks failed")
        #expect(
          s.runqChecks > (start.lcpus[Int(lcpu.index)].scheduler?.runqChecks ?? 0), "checks keep running")
      }
      // The waiters keep going: no thread was cut out of a run queue.
      let before = Dictionary(start.threads.map { ($0.id, $0.ops) }, uniquingKeysWith: { a, _ in a })
      for t in end.threads where t.name.hasPrefix("wake.") || t.name.hasPrefix("spin.") {
        #expect(t.ops > before[t.id] ?? 0, "\(t.name) made no progress (\(t.state))")
      }
      // wake.waiter.0's one attempt to sleep holding a spin lock: refused and counted once.
      #expect(Self.total(end, \.sleepInAtomic) == 1)
      #expect(end.workload?.checkFailures == 0)
    }
  }

  @Test func reentrantHandlersAreRefusedAndCountedInsteadOfDeadlocking() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=irq-reentry") { guest in
      func lock(_ snap: Snapshot, _ name: String) -> LockRecord? { snap.locks.first { $0.name == name } }
      // lcpu 1's timer handler takes reentry.ticket and reads reentry.rw while its own thread
      // waits for that ticket or reads with a writer pending: refused and counted.
      let start = try await guest.waitFor("counted re-entries", timeout: .seconds(60)) { snap in
        (lock(snap, "reentry.ticket")?.misuseIRQUnsafe ?? 0) > 20
          && (lock(snap, "reentry.rw")?.misuseIRQUnsafe ?? 0) > 20
      }
      try await Task.sleep(for: .seconds(2))
      let end = try guest.target.liveSnapshot()
      // lcpu 1 still takes its ticks (a deadlocked handler would have stopped them) ...
      #expect(end.lcpus[1].ticks > start.lcpus[1].ticks + 20, "lcpu 1 stopped ticking")
      #expect(end.lcpus[1].state != .halted)
      // ... and both locks keep changing hands, also in lcpu 1's handler.
      for name in ["reentry.ticket", "reentry.rw"] {
        let a = try #require(lock(start, name))
        let b = try #require(lock(end, name))
        #expect(b.acquisitions > a.acquisitions, "\(name) is stuck")
        #expect(b.misuseIRQUnsafe > a.misuseIRQUnsafe, "\(name): no more counted re-entries")
      }
      let before = Dictionary(start.threads.map { ($0.id, $0.ops) }, uniquingKeysWith: { a, _ in a })
      for t in end.threads where t.name.hasPrefix("reentry.") {
        #expect(t.ops > before[t.id] ?? 0, "\(t.name) made no progress (\(t.state))")
      }
    }
  }

  @Test func thePanicPathWaitsForAnotherLCPUsRecordGuardInsteadOfBreakingIt() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=panic-console") { guest in
      // guard.victim panics holding the console lock while guard.holder (another lcpu) holds
      // the lock's record guard for 200 ms and watches the record's seq; the panic report then
      // takes the console lock and releases it.
      let snap = try await guest.waitFor("the panic and the guard check", timeout: .seconds(60)) { snap in
        snap.lcpus.count == 4 && snap.lcpus[1].state == .halted && snap.lcpus[1].consistency == .consistent
          && snap.threads.contains { $0.name == "guard.holder" && $0.ops > 0 }
          && snap.locks.contains { $0.name == "console" && !$0.isHeld && $0.consistency == .consistent }
      }
      #expect(snap.workload?.scenario == "panic-console")
      #expect(snap.workload?.checkFailures == 0, "the console lock record had two writers")
      let panic = try #require(snap.lcpus[1].panic)
      #expect(panic.vector == 6 && panic.consistency == .consistent)
      try await Task.sleep(for: .milliseconds(500))
      let later = try guest.target.liveSnapshot()
      #expect(later.lcpus.filter { $0.index != 1 }.allSatisfy { $0.state != .halted })
    }
  }

  @Test func aHalfWrittenPanicRecordIsNeverAcceptedByTheLiveReader() async throws {
    // Started paused: a breakpoint in Panic.backtrace, which runs in the middle of the panic
    // record's write, stops the VM there.
    try await BootedGuest.with(smp: 2, append: "panic=1 panic.kind=ud", waitForRunning: false, extra: ["-S"])
    {
      guest in
      let elf = try #require(guest.target.elf)
      let backtrace = try #require(elf.symbols.first { $0.name.contains("5PanicO9backtrace") })
      let gdb = try GDBRemoteConnection.connect(to: .unix(path: try #require(guest.qemu.gdbSocketPath)))
      defer { gdb.close() }
      try gdb.handshake()
      let at = String(backtrace.value, radix: 16)
      #expect(String(decoding: try gdb.request("Z0,\(at),1"), as: UTF8.self) == "OK")
      try gdb.continue()
      let stop = try #require(try gdb.waitForStop(timeout: .seconds(60)), "the panic never came")
      #expect(stop.signal == 5)
      // Stopped inside the write: the live reader must not accept lcpu 1's record.
      let torn = try guest.target.liveSnapshot()
      #expect(torn.lcpus[1].consistency != .consistent, "a half-written panic record was accepted")
      // Let it finish: the record is complete and consistent.
      #expect(String(decoding: try gdb.request("z0,\(at),1"), as: UTF8.self) == "OK")
      try gdb.continue()
      let done = try await guest.waitFor("the complete panic record") { snap in
        snap.lcpus.count == 2 && snap.lcpus[1].consistency == .consistent && snap.lcpus[1].state == .halted
      }
      let panic = try #require(done.lcpus[1].panic)
      #expect(panic.vector == 6 && panic.consistency == .consistent && !panic.backtrace.isEmpty)
    }
  }

  @Test func theSoakScriptPassesAShortRunOfTheDefaultWorkload() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let smptop = try DashboardEndToEndTests.smptopBinary()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [
      root.appendingPathComponent("Resources/soak-guest.sh").path, "--smp", "4", "--seconds", "20",
      "--interval", "0.5", "--smptop", smptop,
    ]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    #expect(process.terminationStatus == 0, "soak-guest.sh:\n\(text)")
    #expect(text.contains("soak: PASS: smp=4"), "\(text)")
    #expect(text.contains("inconsistent_records=0 "), "\(text)")
  }
}
