import GDBRemote
import Inspector
import Testing

/// The registers-only stopped snapshot (model from shared RAM while the VM is stopped) against
/// the one that reads the model through the gdbstub, at the same paused VM.
@Suite(.serialized) struct BenchStoppedPathTests {
  /// A snapshot without what differs by construction between two reads: time, cost, source.
  private func content(_ s: Snapshot) -> Snapshot {
    var c = s
    c.timeNanoseconds = 0
    c.costNanoseconds = 0
    c.readNanoseconds = 0
    c.pauseNanoseconds = 0
    c.source = .gdbstub
    return c
  }

  @Test func registersOnlyEqualsGDBStubMemoryAtAPausedVM() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let target = guest.target
      try await target.pause()
      let viaRAM = try await target.stoppedSnapshot(model: .sharedRAM)
      let viaGDB = try await target.stoppedSnapshot(model: .gdbstub)
      #expect(viaRAM.problems.isEmpty, "\(viaRAM.problems)")
      #expect(viaGDB.problems.isEmpty, "\(viaGDB.problems)")
      try #require(viaRAM.lcpus.count == 4 && viaGDB.lcpus.count == 4)
      let vcpus = try #require(viaRAM.vcpus)
      #expect(vcpus.count == 4)
      #expect(vcpus.allSatisfy { ($0.value(of: "rip") ?? 0) != 0 && $0.registers.count > 20 })
      // Records with their consistency marks, registers, halted flags and symbols: all equal.
      #expect(viaRAM.guest == viaGDB.guest)
      #expect(viaRAM.lcpus == viaGDB.lcpus)
      #expect(viaRAM.locks == viaGDB.locks)
      #expect(viaRAM.threads == viaGDB.threads)
      #expect(viaRAM.workload == viaGDB.workload)
      #expect(viaRAM.allocator == viaGDB.allocator)
      #expect(viaRAM.vcpus == viaGDB.vcpus)
      #expect(content(viaRAM) == content(viaGDB))
      #expect(viaRAM.pauseNanoseconds == 0 && viaGDB.pauseNanoseconds == 0)

      // Negative control: the same comparison tells two different stops apart.
      try await target.resume()
      try await Task.sleep(for: .milliseconds(300))
      try await target.pause()
      let later = try await target.stoppedSnapshot(model: .sharedRAM)
      #expect(content(later) != content(viaRAM))
      #expect(zip(later.lcpus, viaRAM.lcpus).allSatisfy { $0.ticks > $1.ticks })
      #expect(await target.runState() == "paused")
    }
  }

  @Test func registersOnlySnapshotOfARunningVMResumesIt() async throws {
    try await BootedGuest.with(smp: 2) { guest in
      let target = guest.target
      _ = try await target.stoppedSnapshot()  // attaching stops and resumes the VM once
      let snap = try await target.stoppedSnapshot()
      #expect(snap.problems.isEmpty, "\(snap.problems)")
      #expect(snap.pauseNanoseconds > 0)
      let vcpus = try #require(snap.vcpus)
      #expect(vcpus.count == 2 && vcpus.allSatisfy { !$0.registers.isEmpty })
      let timing = try #require(target.lastStopTiming)
      #expect(timing.stop > 0 && timing.model > 0 && timing.registers > 0)
      #expect(target.gdb?.runState == .running)
      // The guest runs on: its lcpus keep ticking after the snapshot.
      let a = try target.liveSnapshot()
      try await Task.sleep(for: .milliseconds(300))
      let b = try target.liveSnapshot()
      #expect(zip(a.lcpus, b.lcpus).allSatisfy { $0.ticks < $1.ticks })
      #expect(await target.runState() == "running")
    }
  }
}
