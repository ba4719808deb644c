import ELFSymbols
import Foundation
import Inspector
import Testing

/// Issue 2: the guest boots every lcpu in real QEMU, proven from the ABI in guest memory.
@Suite(.serialized) struct GuestBootTests {
  @Test(arguments: [1, 2, 4, 8])
  func everyLCPUComesOnlineTicksAndMovesBetweenIdleAndBusy(smp: Int) async throws {
    try await BootedGuest.with(smp: smp) { guest in
      let first = try await guest.waitUntilRunning()
      let info = try #require(first.guest)
      #expect(info.lcpusPresent == UInt64(smp))
      #expect(info.lcpusOnline == UInt64(smp))
      #expect(first.lcpus.count == smp)
      #expect(first.lcpus.map(\.index) == (0..<smp).map(UInt32.init))
      #expect(info.tscPerMs > 0 && info.tickMicroseconds > 0)

      // Every lcpu must tick on its own timer, and be seen both IDLE and BUSY, with its
      // idle and busy cycle counters both advancing.
      var seenIdle = Set<UInt32>()
      var seenBusy = Set<UInt32>()
      let last = try await guest.waitFor("idle and busy on every lcpu", timeout: .seconds(60)) { snap in
        for l in snap.lcpus {
          if l.state == .idle { seenIdle.insert(l.index) }
          if l.state == .busy { seenBusy.insert(l.index) }
        }
        return seenIdle.count == smp && seenBusy.count == smp
          && zip(first.lcpus, snap.lcpus).allSatisfy { a, b in
            b.ticks > a.ticks + 5 && b.cyclesIdle > a.cyclesIdle && b.cyclesBusy > a.cyclesBusy
          }
      }
      try #require(last.lcpus.count == smp)
      #expect(last.lcpus.allSatisfy { $0.irqTimer > 0 && $0.lastTickRIP != 0 })
      #expect(last.lcpus.allSatisfy { $0.consistency.isConsistent })
      // The RIP each tick interrupted lies in the kernel's code.
      #expect(last.lcpus.allSatisfy { $0.lastTickRIP >= info.textStart && $0.lastTickRIP < info.textEnd })
    }
  }

  @Test func q35BootsToo() async throws {
    try await BootedGuest.with(smp: 4, machine: "q35") { guest in
      let snap = try await guest.waitUntilRunning()
      #expect(snap.guest?.lcpusOnline == 4)
    }
  }

  @Test func anExceptionOnAnAPLeavesAPanicRecordWithABacktraceInTheKernel() async throws {
    try await BootedGuest.with(smp: 4, append: "panic=2 panic.kind=pf") { guest in
      // A record caught mid-write reads as inconsistent: wait for the complete one.
      let snap = try await guest.waitFor("lcpu 2 to panic and halt") {
        $0.lcpus.count == 4 && $0.lcpus[2].panic?.consistency == .consistent && $0.lcpus[2].state == .halted
      }
      let lcpu = snap.lcpus[2]
      let panic = try #require(lcpu.panic)
      #expect(lcpu.state == .halted)
      #expect(lcpu.errorCode == 15)  // vector 14 + 1
      #expect(panic.vector == 14)
      #expect(panic.consistency == .consistent)
      let info = try #require(snap.guest)
      #expect(panic.rip >= info.textStart && panic.rip < info.textEnd)
      #expect(panic.backtrace.count >= 2)
      #expect(panic.backtrace.allSatisfy { $0 >= info.textStart && $0 < info.textEnd })
      // The frames resolve to kernel symbols in the ELF.
      let elf = try ELFFile(path: guest.kernel)
      #expect(panic.backtrace.allSatisfy { elf.lookup($0) != nil })
      // The other lcpus keep running.
      let others = snap.lcpus.filter { $0.index != 2 }
      try #require(others.count == 3)
      #expect(others.allSatisfy { $0.state == .idle || $0.state == .busy })
      #expect(guest.qemu.serialOutput().contains("lcpu 2"))

      // The halted lcpu stays inside its exception handler: a stopped snapshot's walk from its
      // vCPU's registers goes through the interrupt entry (the root's isr_return) into the
      // faulting context, which the guest recorded on its own: the faulting RIP, then the
      // return addresses of its panic record.
      let isr = try #require(info.isrReturn, "the root publishes isr_return")
      #expect(
        elf.lookup(isr)?.name == "isr_common",
        "isr_return lies in isr_common: \(String(describing: elf.lookup(isr)))")
      var stopped = try await guest.target.stoppedSnapshot()
      await guest.target.addBacktraces(to: &stopped, locate: false)
      let vcpu = try #require(stopped.vcpus?.first { $0.index == Int(lcpu.apicID) })
      let frames = try #require(vcpu.backtrace?.frames.map(\.address), "vCPU \(vcpu.index)'s backtrace")
      let entry = try #require(frames.firstIndex(of: isr), "the walk meets isr_return: \(frames)")
      let after = Array(frames[(entry + 1)...])
      #expect(after.first == panic.rip, "the interrupted instruction follows the entry: \(frames)")
      let recorded = panic.backtrace.prefix(3)
      #expect(
        Array(after.dropFirst().prefix(recorded.count)) == Array(recorded),
        "then the faulting context's callers")
    }
  }
}
