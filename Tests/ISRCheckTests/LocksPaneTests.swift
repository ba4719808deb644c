import Dashboard
import ELFSymbols
import Foundation
import ISRCheck
import Inspector
import QEMULaunch
import Testing

/// The locks pane shows static findings beside the run-time misuse counters of the real guest.
@Suite struct LocksPaneTests {
  /// The rendered table line of the lock called `name` of `kind` (the misuse banner above the
  /// table names locks too, but not their kind).
  static func row(_ text: String, _ name: String, _ kind: String) -> String? {
    text.split(separator: "\n").map(String.init).first { line in
      let words = line.split(separator: " ", omittingEmptySubsequences: true)
      return words.contains { $0 == name } && words.contains { $0 == kind }
    }
  }

  @Test func staticFindingsAppearBesideRunTimeCountersOnTheRealGuest() async throws {
    let kernel = try GuestKernel.build()
    let elf = try ELFFile(path: kernel)
    let report = try ISRAnalysis.run(
      elf: elf, rules: try ISRRules(path: GuestRulesPath.path()).resolvingFieldOffsets(elfPath: kernel),
      locator: nil)
    let summary = report.lockSummary
    let isrMisuse = try #require(elf.address(of: "klock_isr_misuse"))
    let workMutex = try #require(elf.address(of: "klock_work_mutex"))
    #expect(summary == [isrMisuse: "irq-unsafe", workMutex: "sleep-in-irq"])

    var config = QEMUConfiguration()
    config.smp = 2
    config.kernel = kernel
    config.append = "workload=isr-misuse"
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    let target = try await Target.open(TargetOptions(qemu))
    // Both counters have counted (lcpu 0's tick tries work.mutex; every tick tries isr-misuse).
    var snapshot: Snapshot?
    let deadline = ContinuousClock.now + .seconds(90)
    while ContinuousClock.now < deadline {
      if let s = try? target.liveSnapshot(),
        s.locks.contains(where: { $0.address == isrMisuse && $0.misuseIRQUnsafe > 0 }),
        s.locks.contains(where: { $0.address == workMutex && $0.misuseSleepInIRQ > 0 })
      {
        snapshot = s
        break
      }
      try await Task.sleep(for: .milliseconds(200))
    }
    await target.close()
    let snap = try #require(snapshot, "the isr-misuse guest never counted both misuses")

    var state = DashboardState()
    state.pane = .locks
    state.staticLockFindings = summary
    let text = render(state: state, snapshot: snap, rates: nil, width: 220, height: 60).text
    let misuseRow = try #require(Self.row(text, "isr-misuse", "spin"), "\(text)")
    let misuseCount = try #require(snap.locks.first { $0.address == isrMisuse }?.misuseTotal)
    #expect(misuseRow.contains("S:irq \(misuseCount) irq-unsafe"), "\(misuseRow)")
    let mutexRow = try #require(Self.row(text, "work.mutex", "mutex"), "\(text)")
    let mutexCount = try #require(snap.locks.first { $0.address == workMutex }?.misuseTotal)
    #expect(mutexRow.contains("S:sleep \(mutexCount) sleep-in-irq"), "\(mutexRow)")
    let spinRow = try #require(Self.row(text, "work.spin", "spin"), "\(text)")
    #expect(!spinRow.contains("S:"))

    // Without static findings no row is marked, and the help legend explains the marker only when
    // there are some.
    state.staticLockFindings = [:]
    #expect(!render(state: state, snapshot: snap, rates: nil, width: 220, height: 60).text.contains("S:"))
    state.helpVisible = true
    #expect(
      !render(state: state, snapshot: snap, rates: nil, width: 220, height: 60).text.contains("isrcheck"))
    state.staticLockFindings = summary
    let help = render(state: state, snapshot: snap, rates: nil, width: 220, height: 60).text
    #expect(help.contains("S:irq, S:sleep = isrcheck found an interrupt path to it"))
  }
}
