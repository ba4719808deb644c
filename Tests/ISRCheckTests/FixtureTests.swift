import ELFSymbols
import Foundation
import ISRCheck
import Testing

/// The check against a kernel fixture built in the test with clang and ld.lld.
@Suite struct FixtureTests {
  /// The fixture's report under `rules` (the base rules plus `extra` lines).
  static func report(extra: String = "") throws -> (ISRReport, String) {
    let path = try Fixture.build()
    let elf = try ELFFile(path: path)
    let rules = try ISRRules(text: Fixture.rules + "\n" + extra)
    let locator = try SourceLocator(elfPath: path, symbols: elf)
    defer { locator.close() }
    return (try ISRAnalysis.run(elf: elf, rules: rules, locator: locator), path)
  }

  @Test func theUnsafeCallFromTheTimerHandlerIsFoundWithItsPathAndLine() throws {
    let (report, _) = try Self.report()
    let unsafe = report.findings.filter { $0.kind == .unsafe }
    let timer = try #require(unsafe.first { $0.path.last == "mutex_lock" })
    #expect(
      timer.path == [
        "isr_stubs", "isr_common", "isr_dispatch", "timer_interrupt", "tick_helper", "mutex_lock",
      ])
    #expect(timer.location == "fixture.c:\(Fixture.line("unsafe-call"))")
    #expect(
      timer.text.hasPrefix(
        "isr_stubs → isr_common → isr_dispatch → timer_interrupt → tick_helper → mutex_lock ("))
    #expect(!timer.expected)
    #expect(!report.allExpected)
    // The thread's own mutex_lock call is not in interrupt context.
    #expect(unsafe.filter { $0.path.last == "mutex_lock" }.count == 1)
  }

  @Test func aCallThroughAFunctionPointerIsReportedAsUnknown() throws {
    let (report, _) = try Self.report()
    let indirect = report.findings.filter {
      $0.kind == .indirect && $0.path.contains("ipi_interrupt") && !$0.path.contains("run_once")
    }
    #expect(indirect.count == 1)
    let finding = try #require(indirect.first)
    #expect(finding.path.dropLast() == ["isr_stubs", "isr_common", "isr_dispatch", "ipi_interrupt"])
    #expect(finding.path.last?.hasPrefix("<indirect: call") == true)
    #expect(finding.location == "fixture.c:\(Fixture.line("indirect-call"))")
    #expect(!finding.expected)
  }

  @Test func onlyThePlainSpinlockSharedWithAThreadIsAFinding() throws {
    let (report, _) = try Self.report()
    let spin = report.findings.filter { $0.kind == .spinlock }
    // irqsave_lock (flag bit set) and isr_only_lock (never taken by the thread) are fine.
    #expect(spin.map(\.lock) == ["plain_lock"])
    #expect(spin.first?.path == ["isr_stubs", "isr_common", "isr_dispatch", "timer_interrupt", "spin_lock"])
    #expect(spin.first?.location == "fixture.c:\(Fixture.line("plain-lock"))")
  }

  @Test func aFunctionCalledThroughAnArgumentIsFollowedWhenDeclared() throws {
    let (without, _) = try Self.report()
    #expect(
      without.findings.contains { $0.kind == .indirect && $0.path.contains("run_once") && !$0.expected })
    #expect(!without.findings.contains { $0.path.last == "sleep_wait" })

    let (with, _) = try Self.report(extra: "calls-argument run_once rdi  # run_once calls its argument")
    let sleep = try #require(with.findings.first { $0.path.last == "sleep_wait" })
    #expect(
      sleep.path == ["isr_stubs", "isr_common", "isr_dispatch", "timer_interrupt", "once_init", "sleep_wait"])
    let covered = try #require(
      with.findings.first {
        $0.path.dropLast().last == "run_once" && $0.path.last != "<indirect: rdi>"
      })
    #expect(covered.kind == .indirect && covered.expected)
    // Where the argument is not a function the code names (a variable), that call is unknown.
    let unknown = try #require(with.findings.first { $0.path.last == "<indirect: rdi>" })
    #expect(
      unknown.path == [
        "isr_stubs", "isr_common", "isr_dispatch", "ipi_interrupt", "run_once", "<indirect: rdi>",
      ])
    #expect(!unknown.expected && unknown.location == "fixture.c:\(Fixture.line("unknown-argument"))")
  }

  @Test func declarationsThatMatchNothingAreListedAndDeclareNothing() throws {
    let (report, _) = try Self.report(
      extra: """
        indirect ipi_interrupt -> no_such_function   # a target that is gone
        calls-argument no_such_once rdi               # a function that is gone
        """)
    #expect(report.unmatchedExpectations.count == 2, "\(report.unmatchedExpectations)")
    #expect(report.unmatchedExpectations.contains { $0.contains("no target function") })
    let hook = report.findings.filter { $0.path.contains("ipi_interrupt") && $0.kind == .indirect }
    #expect(!hook.isEmpty && hook.allSatisfy { !$0.expected })
  }

  @Test func declaredFindingsPassAndStaleDeclarationsAreListed() throws {
    let (report, _) = try Self.report(
      extra: """
        expected tick_helper -> mutex_lock            # the demonstration
        expected timer_interrupt -> spin_lock plain_lock  # shared on purpose
        expected ipi_interrupt -> <indirect>          # hook set by the test
        expected run_once -> <indirect>               # the once initializer
        expected thread_main -> mutex_lock            # never a finding: a thread
        """)
    #expect(report.allExpected, "\(report.findings.filter { !$0.expected }.map(\.text))")
    #expect(report.unmatchedExpectations.count == 1)
    #expect(report.unmatchedExpectations.first?.contains("thread_main -> mutex_lock") == true)
  }

  @Test func anotherArchitectureIsRefusedNotMisread() throws {
    let elf = try ELFFile(path: try Fixture.buildForAArch64())
    do {
      _ = try CallGraph(elf: elf)
      Issue.record("an AArch64 object was decoded as x86-64")
    } catch {
      #expect(error.code == .elf && error.message.contains("not x86-64"))
    }
  }

  @Test func findingsComeShortestPathFirst() throws {
    let (report, _) = try Self.report()
    let lengths = report.findings.map(\.path.count)
    #expect(lengths == lengths.sorted())
    #expect(report.findings.count == 4)
  }
}

/// The rules parser.
@Suite struct RulesTests {
  @Test func everyDirectiveNeedsAComment() {
    #expect(throws: ISRCheckError.self) { try ISRRules(text: "entry isr_stubs\n") }
    let above = try? ISRRules(text: "# the stubs\nentry isr_stubs\n")
    #expect(above?.entries.first?.reason == "the stubs")
  }

  @Test func errorsNameTheLine() {
    do {
      _ = try ISRRules(text: "entry a # x\n\nfrobnicate b # y\n", source: "r.txt")
      Issue.record("no error")
    } catch {
      #expect(error.message.hasPrefix("r.txt:3: unknown directive `frobnicate`"))
    }
    #expect(throws: ISRCheckError.self) { try ISRRules(text: "unsafe a # no entry\n") }
    #expect(throws: ISRCheckError.self) { try ISRRules(text: "entry a # x\nexpected a b # bad\n") }
    #expect(throws: ISRCheckError.self) { try ISRRules(text: "entry a # x\nirqsave-flag a.b.c 1 # bad\n") }
    #expect(throws: ISRCheckError.self) { try ISRRules(text: "entry a # x\nirqsave-flag k.f 0 # no bit\n") }
  }

  @Test func theBundledRulesParse() throws {
    let rules = try ISRRules(path: GuestRulesPath.path())
    #expect(rules.entries.map(\.pattern) == ["isr_stubs"])
    #expect(rules.unsafe.contains { $0.pattern == "Mutex.lock()" })
    #expect(rules.irqsaveFlag?.member?.type == "klock" && rules.irqsaveFlag?.member?.field == "init_flags")
    #expect(rules.irqsaveFlag?.offset == nil && rules.irqsaveFlag?.mask == 1)
  }
}

/// Where the bundled rules file is.
enum GuestRulesPath {
  static func path() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Resources/isr-rules.txt").path
  }
}
