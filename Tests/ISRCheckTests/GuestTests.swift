import ELFSymbols
import Foundation
import ISRCheck
import QEMULaunch
import Testing

/// The check on the bundled guest, and the CLI's exit statuses.
@Suite struct GuestTests {
  @Test func theDefaultGuestHasExactlyTheDeclaredFindings() throws {
    let kernel = try GuestKernel.build()
    let elf = try ELFFile(path: kernel)
    let rules = try ISRRules(path: GuestRulesPath.path()).resolvingFieldOffsets(elfPath: kernel)
    let locator = try SourceLocator(elfPath: kernel, symbols: elf)
    defer { locator.close() }
    let report = try ISRAnalysis.run(elf: elf, rules: rules, locator: locator)

    let undeclared = report.findings.filter { !$0.expected }.map(\.text)
    #expect(undeclared.isEmpty, "undeclared findings:\n\(undeclared.joined(separator: "\n"))")
    #expect(report.unmatchedExpectations.isEmpty, "\(report.unmatchedExpectations)")

    // The isr-misuse scenario's two paths, found from the IDT stubs through the timer handler.
    let prefix = ["isr_stubs", "isr_common", "isr_dispatch", "Timer.interrupt(_:)", "Workload.timerTick()"]
    let mutex = try #require(report.findings.first { $0.path == prefix + ["Mutex.lock()"] })
    #expect(mutex.kind == .unsafe && mutex.expected)
    #expect(mutex.location?.hasPrefix("Workload.swift:") == true)
    #expect(mutex.lock == "klock_work_mutex" && mutex.lockAddress == elf.address(of: "klock_work_mutex"))
    let spin = try #require(report.findings.first { $0.path == prefix + ["SpinLock.lock()"] })
    #expect(spin.kind == .spinlock && spin.lock == "klock_isr_misuse" && spin.expected)
    // Every unsafe or spinlock finding is one of those two: the rest of the guest is clean.
    #expect(report.findings.filter { $0.kind != .indirect }.count == 2)
    // Calls through pointers reachable from interrupts are listed, each with declared targets.
    let indirect = report.findings.filter { $0.kind == .indirect }
    #expect(indirect.contains { $0.path.contains("IPI.remoteCallInterrupt()") })
    #expect(indirect.allSatisfy { $0.expectedBecause != nil })
  }

  @Test func theIRQSaveFlagIsFoundThroughTheGuestsDebugInformation() throws {
    let kernel = try GuestKernel.build()
    let elf = try ELFFile(path: kernel)
    let parsed = try ISRRules(path: GuestRulesPath.path())
    // Unresolved, the check refuses to run rather than call every lock plain.
    #expect(throws: ISRCheckError.self) { try ISRAnalysis.run(elf: elf, rules: parsed, locator: nil) }
    let rules = try parsed.resolvingFieldOffsets(elfPath: kernel)
    let field = try #require(rules.irqsaveFlag)
    let offset = try #require(field.offset)
    func flags(_ symbol: String) throws -> UInt32 {
      let bytes = try elf.bytes(atVirtualAddress: try #require(elf.address(of: symbol)) + offset, count: 4)
      return bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    // sync_data.c: console and dynamic-locks are IRQ-save; work.spin and isr-misuse are plain.
    #expect(try flags("klock_console") & field.mask != 0)
    #expect(try flags("klock_dynamic_registry") & field.mask != 0)
    #expect(try flags("klock_work_spin") & field.mask == 0)
    #expect(try flags("klock_isr_misuse") & field.mask == 0)
    #expect(throws: ISRCheckError.self) {
      try ISRRules(text: "entry isr_stubs # x\nirqsave-flag klock.no_such_member 0x1 # y\n")
        .resolvingFieldOffsets(elfPath: kernel)
    }
  }

  /// Runs the smptop binary that `swift build --build-tests` put next to the test bundle.
  static func smptop(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var binary: String?
    for _ in 0..<4 {
      let candidate = directory.appendingPathComponent("smptop").path
      if FileManager.default.isExecutableFile(atPath: candidate) {
        binary = candidate
        break
      }
      directory = directory.deletingLastPathComponent()
    }
    let path = try #require(binary, "smptop binary not found near \(CommandLine.arguments[0])")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
      process.terminationStatus, String(decoding: output, as: UTF8.self),
      String(decoding: error, as: UTF8.self)
    )
  }

  @Test func theCommandExitsZeroWhenEveryFindingIsDeclared() throws {
    let kernel = try GuestKernel.build()
    let result = try Self.smptop(["isrcheck", kernel, "--rules", GuestRulesPath.path()])
    #expect(result.status == 0, "\(result.output)\(result.error)")
    #expect(result.output.contains("Workload.timerTick() → Mutex.lock() [klock_work_mutex] (Workload.swift:"))
  }

  @Test func theCommandExitsOneOnAnUndeclaredFindingAndPrintsJSON() throws {
    let elf = try Fixture.build()
    let rules = URL(fileURLWithPath: elf).deletingLastPathComponent().appendingPathComponent("rules.txt").path
    try Fixture.rules.write(toFile: rules, atomically: true, encoding: .utf8)
    let text = try Self.smptop(["isrcheck", elf, "--rules", rules])
    #expect(text.status == 1)
    #expect(
      text.output.contains(
        "isr_stubs → isr_common → isr_dispatch → timer_interrupt → tick_helper → mutex_lock (fixture.c:\(Fixture.line("unsafe-call")))"
      ))
    let json = try Self.smptop(["isrcheck", elf, "--rules", rules, "--json"])
    #expect(json.status == 1)
    let object = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
    let findings = try #require(object?["findings"] as? [[String: Any]])
    #expect(findings.count == 4)
    #expect(findings.allSatisfy { $0["expected"] as? Bool == false })
  }

  @Test func unreadableInputGetsOneLineAndTheDocumentedStatus() throws {
    let notELF = try Self.smptop(["isrcheck", GuestRulesPath.path(), "--rules", GuestRulesPath.path()])
    #expect(notELF.status == 6)
    #expect(notELF.error.hasPrefix("smptop: cannot read") && notELF.error.split(separator: "\n").count == 1)
    let missing = try Self.smptop(["isrcheck", "/nonexistent.elf", "--rules", GuestRulesPath.path()])
    #expect(missing.status == 6)
    let badRules = try Self.smptop(["isrcheck", "/nonexistent.elf", "--rules", "/nonexistent.rules"])
    #expect(badRules.status == 2)
    #expect(badRules.error.contains("cannot open rules file"))
  }
}
