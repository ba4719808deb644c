import ELFSymbols
import Foundation
import Inspector
import QEMULaunch
import QMP
import Testing

/// Issue 4: the snapshot engine against the real guest in real QEMU.
@Suite(.serialized) struct SnapshotEngineTests {
  @Test func gdbstubAndSharedRAMAgreeAtAStoppedVM() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      try await guest.target.pause()
      #expect(await guest.target.runState() == "paused")
      let viaRAM = try guest.target.liveSnapshot()
      let viaGDB = try await guest.target.stoppedSnapshot()
      #expect(viaGDB.source == .gdbstub)
      #expect(viaRAM.source == .sharedRAM)
      #expect(viaGDB.guest == viaRAM.guest)
      // The same bytes either way. A pause can catch an lcpu mid-update (odd seq): both
      // readers then say "inconsistent", the live one after re-reading (it cannot know the VM
      // is paused), the stopped one at once; every field still agrees.
      func data(_ records: [LCPURecord]) -> [LCPURecord] {
        records.map {
          var r = $0
          r.consistency = .consistent
          return r
        }
      }
      #expect(data(viaGDB.lcpus) == data(viaRAM.lcpus))
      try #require(viaGDB.lcpus.count == 4)
      #expect(viaGDB.lcpus.map(\.consistency.isConsistent) == viaRAM.lcpus.map(\.consistency.isConsistent))
      #expect(viaGDB.locks.map(\.name) == viaRAM.locks.map(\.name))
      #expect(viaGDB.threads.map(\.id) == viaRAM.threads.map(\.id))
      #expect(viaGDB.lcpus.count == 4)
      // The stopped snapshot also carries every vCPU's registers.
      let vcpus = try #require(viaGDB.vcpus)
      #expect(vcpus.count == 4)
      #expect(vcpus.allSatisfy { ($0.value(of: "rip") ?? 0) != 0 && $0.registers.count > 20 })
      #expect(vcpus.allSatisfy { $0.symbol != nil })
      #expect(viaGDB.pauseNanoseconds == 0)  // it was already paused: we added no pause
      // Still paused afterwards: smptop leaves the run state as it found it.
      #expect(await guest.target.runState() == "paused")
    }
  }

  @Test func liveSnapshotsNeverPauseTheGuest() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let qmp = try #require(guest.target.qmp)
      _ = qmp.drainEvents()
      let a = try guest.target.liveSnapshot()
      try await Task.sleep(for: .milliseconds(300))
      let b = try guest.target.liveSnapshot()
      try #require(a.lcpus.count == 4 && b.lcpus.count == 4)
      #expect(zip(a.lcpus, b.lcpus).allSatisfy { $0.ticks < $1.ticks })
      #expect(b.pauseNanoseconds == 0)
      let rates = try #require(SnapshotRates(from: a, to: b))
      try #require(rates.lcpus.count == 4)
      #expect(rates.lcpus.allSatisfy { $0.timerIRQsPerSecond > 0 })
      // No STOP event: nothing paused the VM, and the gdbstub was never touched.
      #expect(!qmp.drainEvents().contains { $0.name == "STOP" })
      #expect(guest.target.gdb == nil)
      #expect(await guest.target.runState() == "running")
    }
  }

  @Test func aStoppedSnapshotOfARunningVMResumesIt() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let snap = try await guest.target.stoppedSnapshot()
      #expect(snap.pauseNanoseconds > 0)
      try #require(snap.lcpus.count == 4)
      #expect(snap.lcpus.allSatisfy { $0.consistency == .consistent })
      #expect(await guest.target.runState() == "running")
      let a = try guest.target.liveSnapshot()
      try await Task.sleep(for: .milliseconds(200))
      let b = try guest.target.liveSnapshot()
      try #require(a.lcpus.count == 4 && b.lcpus.count == 4)
      #expect(zip(a.lcpus, b.lcpus).allSatisfy { $0.ticks < $1.ticks }, "the guest must run again")
    }
  }

  @Test func steppingOneVCPUMovesOnlyItsRIP() async throws {
    // workload=none: the lcpus idle in hlt most of the time, so both a running and a
    // halted vCPU can be caught.
    try await BootedGuest.with(smp: 4, append: "workload=none") { guest in
      // Pause until one vCPU is caught running code (the gdbstub's own word on halted).
      var before: [VCPUState] = []
      var halted: [Int] = []
      for _ in 0..<200 {
        try await guest.target.pause()
        before = try #require(try await guest.target.stoppedSnapshot().vcpus)
        let gdb = try #require(guest.target.gdb)
        let threads = guest.target.vcpuThreads
        let infos = try await gdb.perform { try $0.threadInfo(threads) }
        halted = infos.filter { $0.isHalted == true }.compactMap(\.thread.vcpuIndex)
        if halted.count < 4 && !halted.isEmpty { break }
        try await guest.target.resume()
        try await Task.sleep(for: .milliseconds(7))
      }
      let running = try #require(
        before.first { !halted.contains($0.index) }, "some vCPU should be running code")
      let ripBefore = try #require(running.value(of: "rip"))
      let steps = try await guest.target.step(vcpu: running.index, count: 3)
      #expect(steps.count == 3)
      // The first step leaves the RIP it started from; every step reports the stepped vCPU.
      #expect(
        steps.first?.rip != ripBefore, "the first step did not move from 0x\(String(ripBefore, radix: 16))")
      #expect(steps.allSatisfy { $0.vcpu == running.index })
      let after = try #require(try await guest.target.stoppedSnapshot().vcpus)
      try #require(after.count == 4 && before.count == 4)
      for (b, a) in zip(before, after) {
        if b.index == running.index {
          #expect(a.value(of: "rip") == steps.last?.rip)
          #expect(a.value(of: "rip") != ripBefore)
        } else {
          #expect(a.value(of: "rip") == b.value(of: "rip"), "vCPU \(b.index) must not move")
        }
      }
      // A halted vCPU is stepped into the interrupt that wakes it, not refused or hung on.
      let sleeper = try #require(halted.first, "some vCPU should be halted")
      let woken = try await guest.target.step(vcpu: sleeper, count: 1)
      #expect(woken.first?.woke == true)
      #expect(await guest.target.runState() != "running")
    }
  }

  @Test func genericModeShowsEveryVCPUOfAGuestWithoutTheABI() async throws {
    // Firmware only: no kernel, no ABI — any x86_64 guest looks like this to smptop.
    var config = QEMUConfiguration()
    config.smp = 4
    config.memoryMiB = 64
    config.extraArguments = ["-device", "virtio-net-pci,netdev=n0", "-netdev", "user,id=n0"]
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    var options = TargetOptions()
    options.gdb = qemu.gdbSocketPath
    options.qmp = qemu.qmpSocketPath
    let target = try await Target.open(options)
    #expect(!target.speaksABI)
    let snap = try await target.snapshot()
    #expect(snap.guest == nil)
    let vcpus = try #require(snap.vcpus)
    try #require(vcpus.map(\.index) == [0, 1, 2, 3])
    #expect(vcpus.allSatisfy { $0.value(of: "rip") != nil })
    #expect(snap.runState == "running")
    #expect(snap.virtio?.first?.queues.isEmpty == false)
    await target.close()
  }

  @Test func aQEMUKilledMidSessionIsAClearError() async throws {
    try await BootedGuest.with(smp: 2) { guest in
      _ = try await guest.target.stoppedSnapshot()
      guest.qemu.kill()
      await #expect(throws: TargetError.self) { _ = try await guest.target.stoppedSnapshot() }
    }
  }
}

/// Recordings: captured live from the real guest, replayed through the same engine.
@Suite(.serialized) struct RecordReplayTests {
  @Test func aRecordingReplaysTheGuestFrameByFrame() async throws {
    let path = NSTemporaryDirectory() + "smptop-rec-\(getpid()).rec"
    defer { try? FileManager.default.removeItem(atPath: path) }
    // Each frame is captured with the VM paused, beside a snapshot of the same frozen memory:
    // what the replay shows must be exactly what the guest showed then.
    var captured: [Snapshot] = []
    let kernel = try await BootedGuest.with(smp: 2) { guest in
      for _ in 0..<3 {
        try await guest.target.pause()
        captured.append(try guest.target.liveSnapshot())
        try RecordedMemory.append([try guest.target.captureFrame()], to: path)
        try await guest.target.resume()
        try await Task.sleep(for: .milliseconds(150))
      }
      return guest.kernel
    }
    var options = TargetOptions()
    options.kernel = kernel
    options.recording = path
    let replay = try await Target.open(options)
    let frames = try (0..<3).map { _ in try replay.liveSnapshot() }
    try #require(frames.count == 3 && captured.count == 3)
    #expect(frames.allSatisfy { $0.source == .recording && $0.lcpus.count == 2 })
    // A pause can freeze a record mid-update (odd sequence word): the live reader marks it
    // inconsistent after its re-reads, the replay of the same bytes marks it at once. The
    // states agree; the re-read counts cannot, so the values are compared without the marks.
    func values(_ value: some Encodable) throws -> String {
      func strip(_ o: Any) -> Any {
        if let d = o as? [String: Any] { return d.filter { $0.key != "consistency" }.mapValues(strip) }
        if let a = o as? [Any] { return a.map(strip) }
        return o
      }
      let json = try JSONSerialization.jsonObject(
        with: JSONEncoder().encode(value), options: .fragmentsAllowed)
      let text = try JSONSerialization.data(
        withJSONObject: strip(json), options: [.sortedKeys, .fragmentsAllowed])
      return String(decoding: text, as: UTF8.self)
    }
    // The comparison sees the values: a record's text is long and differs between frames.
    #expect(
      try values(captured[0].locks).count > 1000 && values(captured[0].lcpus) != values(captured[1].lcpus))
    for (replayed, original) in zip(frames, captured) {
      #expect(replayed.guest == original.guest)
      #expect(
        replayed.lcpus.map(\.consistency.isConsistent) == original.lcpus.map(\.consistency.isConsistent))
      #expect(
        replayed.locks.map(\.consistency.isConsistent) == original.locks.map(\.consistency.isConsistent))
      #expect(try values(replayed.lcpus) == values(original.lcpus))
      #expect(replayed.locks.count == original.locks.count && !original.locks.isEmpty)
      #expect(try values(replayed.locks) == values(original.locks))
      #expect(try values(replayed.threads) == values(original.threads))
      #expect(try values(replayed.timerQueues) == values(original.timerQueues))
      #expect(try values(replayed.workload) == values(original.workload))
      #expect(try values(replayed.allocator) == values(original.allocator))
      // Nearly every record of a paused guest is whole.
      #expect(original.locks.filter(\.consistency.isConsistent).count >= original.locks.count - 2)
    }
    #expect(frames[0].lcpus[0].ticks < frames[1].lcpus[0].ticks)
    #expect(frames[1].lcpus[0].ticks < frames[2].lcpus[0].ticks)
    #expect(frames[2].problems.contains("end of the recording"))
    let rates = try #require(SnapshotRates(from: frames[0], to: frames[1]))
    // Rates come only from records whole in both frames (a pause may freeze one mid-update).
    let wholeInBoth = zip(frames[0].lcpus, frames[1].lcpus).filter {
      $0.consistency.isConsistent && $1.consistency.isConsistent
    }.count
    try #require(wholeInBoth >= 1)
    #expect(rates.lcpus.count == wholeInBoth)
    #expect(rates.lcpus.allSatisfy { $0.timerIRQsPerSecond > 0 })
  }
}

/// The gdbstub client against the real guest and its ELF: memory read through QEMU equals
/// the file's bytes for `.rodata` objects.
@Suite(.serialized) struct GuestMemoryAgainstELFTests {
  @Test func rodataReadThroughTheGdbstubEqualsTheELFFile() async throws {
    try await BootedGuest.with(smp: 2) { guest in
      let elf = try ELFFile(path: guest.kernel)
      let rodata = try #require(elf.section(named: ".rodata"))
      #expect(rodata.size > 1000)
      // The AP start-up trampoline: a .rodata symbol pair the kernel copies below 1 MiB.
      let start = try #require(elf.address(of: "ap_trampoline_start"))
      let end = try #require(elf.address(of: "ap_trampoline_end"))
      #expect(end > start && rodata.address <= start && end <= rodata.address + rodata.size)
      try await guest.target.pause()
      _ = try await guest.target.stoppedSnapshot()  // attaches the gdbstub
      let gdb = try #require(guest.target.gdb)
      for (address, count) in [(rodata.address, Int(rodata.size)), (start, Int(end - start))] {
        let fromFile = try elf.bytes(atVirtualAddress: address, count: count)
        let virtual = try await gdb.perform { try $0.readMemory(address: address, count: count) }
        let physical = try await gdb.perform {
          try $0.readMemory(address: address, count: count, physical: true)
        }
        #expect(virtual == fromFile, "\(count) bytes at 0x\(String(address, radix: 16)) differ from the ELF")
        #expect(physical == fromFile, "the guest is identity-mapped")
      }
    }
  }
}
