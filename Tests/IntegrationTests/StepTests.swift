import ELFSymbols
import Foundation
import GDBRemote
import Inspector
import QEMULaunch
import Testing

/// Stepping against the real guest in real QEMU: a halted lcpu wakes into its interrupt
/// handler, a source-line step moves to another line (as binutils `addr2line` reads it), and
/// no other vCPU moves.
@Suite(.serialized) struct StepTests {
  /// The RIP of every vCPU, read at a stopped VM.
  static func rips(_ target: Target) async throws -> [Int: UInt64] {
    let vcpus = try #require(try await target.stoppedSnapshot().vcpus)
    var result: [Int: UInt64] = [:]
    for v in vcpus { result[v.index] = v.value(of: "rip") }
    return result
  }

  /// Pauses the VM until some vCPU is `wanted` (halted or running code); its index.
  static func catchVCPU(_ guest: BootedGuest, halted wanted: Bool) async throws -> Int {
    for _ in 0..<200 {
      try await guest.target.pause()
      _ = try await guest.target.stoppedSnapshot()
      let gdb = try #require(guest.target.gdb)
      let threads = guest.target.vcpuThreads
      let infos = try await gdb.perform { try $0.threadInfo(threads) }
      if let hit = infos.first(where: { ($0.isHalted == true) == wanted }), let index = hit.thread.vcpuIndex {
        return index
      }
      try await guest.target.resume()
      try await Task.sleep(for: .milliseconds(7))
    }
    throw HarnessError("never caught a vCPU \(wanted ? "halted" : "running code")")
  }

  /// `file:line` of `address` as binutils `addr2line` reads the ELF's DWARF.
  /// binutils' answer for the line at `address`: the innermost frame of `addr2line -i` that has
  /// a line (compiler-made code has line 0 in its innermost frame), as `path:line`; `??` when
  /// no frame has one.
  static func addr2line(_ elf: String, _ address: UInt64) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/addr2line")
    p.arguments = ["-i", "-e", elf, "0x" + String(address, radix: 16)]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    // `file:line (discriminator N)`: the discriminator tells basic blocks of one line apart.
    let frames = String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
      line.range(of: " (discriminator ").map { String(line[..<$0.lowerBound]) } ?? String(line)
    }
    return frames.first { !$0.hasPrefix("??") && !$0.hasSuffix(":0") && !$0.hasSuffix(":?") } ?? "??"
  }

  @Test func aHaltedLCPUStepsIntoItsInterruptHandlerAndTheFlagsComeBack() async throws {
    try await BootedGuest.with(smp: 4, append: "workload=none") { guest in
      let sleeper = try await Self.catchVCPU(guest, halted: true)
      let gdb = try #require(guest.target.gdb)
      let defaultFlags = try await gdb.perform { try $0.singleStepFlags() }
      #expect(defaultFlags == 0x7, "QEMU 7.2's default: ENABLE|NOIRQ|NOTIMER")
      let before = try await Self.rips(guest.target)
      let start = ContinuousClock.now
      let steps = try await guest.target.step(vcpu: sleeper, count: 1)
      #expect(ContinuousClock.now - start <= Target.wakeTimeout)
      let step = try #require(steps.first)
      #expect(step.woke)
      // The first instruction of one of the 256 interrupt stubs (16 bytes apart).
      let elf = try ELFFile(path: guest.kernel)
      let stubs = try #require(elf.address(of: "isr_stubs"))
      #expect(step.rip >= stubs && step.rip < stubs + 256 * 16 && (step.rip - stubs) % 16 == 0)
      #expect(elf.lookup(step.rip)?.name == "isr_stubs")
      let after = try await Self.rips(guest.target)
      #expect(after[sleeper] == step.rip)
      for (index, rip) in before where index != sleeper {
        #expect(after[index] == rip, "vCPU \(index) must not move while vCPU \(sleeper) steps")
      }
      // The flags are QEMU's default again: the next step of a busy vCPU masks interrupts.
      #expect(try await gdb.perform { try $0.singleStepFlags() } == defaultFlags)
      // More steps from the handler go on through it with interrupts masked.
      let more = try await guest.target.step(vcpu: sleeper, count: 3)
      #expect(more.count == 3 && more.allSatisfy { !$0.woke })
      #expect(try await gdb.perform { try $0.singleStepFlags() } == defaultFlags)
    }
  }

  @Test func theStepCommandStepsAHaltedLCPUFromTheBuiltBinary() async throws {
    let smptop = try DashboardEndToEndTests.smptopBinary()
    try await BootedGuest.with(smp: 2, append: "workload=none") { guest in
      let elf = try ELFFile(path: guest.kernel)
      let stubs = try #require(elf.address(of: "isr_stubs"))
      let gdbPath = try #require(guest.qemu.gdbSocketPath)
      var woke = false
      // QEMU's QMP socket takes one client (the test's target holds it): the gdbstub alone.
      // An idle lcpu is in hlt nearly all the time; try a few times to catch it there.
      for _ in 0..<10 where !woke {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: smptop)
        p.arguments = [
          "step", "--gdb", gdbPath, "--kernel", guest.kernel,
          "--lcpu", "1", "--count", "3",
        ]
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "smptop step failed: \(errors)")
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 3, "one line per step: \(lines)")
        guard let first = lines.first, first.hasSuffix("woke (interrupt)") else { continue }
        let fields = first.split(separator: "\t")
        let rip = try #require(fields.count > 2 ? UInt64(fields[2].dropFirst(2), radix: 16) : nil)
        #expect(rip >= stubs && rip < stubs + 256 * 16 && (rip - stubs) % 16 == 0)
        #expect(fields[3].hasPrefix("isr_stubs"))
        woke = true
      }
      #expect(woke, "never caught lcpu 1 halted")
      // smptop left the VM running, as it found it.
      #expect(await guest.target.runState() == "running")
    }
  }

  @Test func aLineStepOfABusyLCPUMovesToAnotherLineAndNothingElseMoves() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      var done = false
      for _ in 0..<10 where !done {
        let busy = try await Self.catchVCPU(guest, halted: false)
        let before = try await Self.rips(guest.target)
        let startRIP = try #require(before[busy])
        guard !(try Self.addr2line(guest.kernel, startRIP)).hasPrefix("??") else {
          try await guest.target.resume()
          continue
        }
        let r = try await guest.target.stepLine(vcpu: busy, limit: 2000)
        // A spin on a lock held by a stopped vCPU never leaves its line: try another moment.
        guard r.lineChanged else {
          try await guest.target.resume()
          continue
        }
        #expect(r.from.rip == startRIP)
        let from = try Self.addr2line(guest.kernel, r.from.rip)
        let to = try Self.addr2line(guest.kernel, r.to.rip)
        #expect(!to.hasPrefix("??"))
        #expect(from != to, "the line must change: \(from) → \(to)")
        let fromLine = try #require(r.from.location)
        let toLine = try #require(r.to.location)
        #expect(
          from.hasSuffix("/\(fromLine.shortLocation ?? "-")")
            || from.hasSuffix(fromLine.shortLocation ?? "-"),
          "\(from) vs \(fromLine)")
        #expect(to.hasSuffix(toLine.shortLocation ?? "-"), "\(to) vs \(toLine)")
        let after = try await Self.rips(guest.target)
        #expect(after[busy] == r.to.rip)
        for (index, rip) in before where index != busy {
          #expect(after[index] == rip, "vCPU \(index) must not move while vCPU \(busy) steps a line")
        }
        done = true
      }
      #expect(done, "never caught a busy lcpu on a source line whose step finished")
    }
  }
}
