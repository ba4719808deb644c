import ArgumentParser
import ELFSymbols
import Foundation
import ISRCheck
import QEMULaunch

/// `smptop isrcheck`: the static ISR-safety check of a guest ELF.
struct ISRCheckCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "isrcheck",
    abstract: "Check statically that no interrupt handler can reach a sleeping lock or another unsafe call.",
    discussion: """
      Builds the call graph of KERNEL.elf from its machine code, walks it from every interrupt and
      exception entry, and prints one finding per path (shortest first) to a function that must
      not run in interrupt context, an indirect call, or a plain spinlock that is also taken
      outside interrupts. The rules (entries, unsafe functions, intended findings) are read from
      Resources/isr-rules.txt of the source tree unless --rules names another file.
      Exit status: 0 when every finding is declared expected, 1 when one is not,
      2 usage, 6 the ELF is unreadable.
      """)

  @Argument(help: "The guest ELF (default: the bundled guest, built if needed).")
  var kernel: String?

  @Option(help: "The rules file (default: Resources/isr-rules.txt of the source tree).")
  var rules: String?

  @Flag(help: "Print JSON: {findings: [...], ...}.")
  var json = false

  @Flag(help: "Skip file:line lookups (no llvm-symbolizer needed).")
  var noLines = false

  func run() throws {
    let elfPath: String
    if let kernel {
      elfPath = kernel
    } else {
      do { elfPath = try GuestKernel.build() } catch let error as QEMULaunchError {
        throw CLIError(error.message, code: .build)
      }
    }
    let rulesPath: String
    if let rules {
      rulesPath = rules
    } else {
      do { rulesPath = try GuestKernel.sourceRoot() + "/Resources/isr-rules.txt" } catch {
        throw CLIError("no rules file: pass --rules FILE (\(error))", code: .usage)
      }
    }
    let ruleSet: ISRRules
    do { ruleSet = try ISRRules(path: rulesPath) } catch { throw CLIError(error.message, code: .usage) }
    let elf: ELFFile
    do { elf = try ELFFile(path: elfPath) } catch {
      throw CLIError("cannot read \(elfPath): \(error.description)", code: .symbols)
    }
    var locator: SourceLocator?
    var warning: String?
    if !noLines {
      do { locator = try SourceLocator(elfPath: elfPath, symbols: elf) } catch {
        warning = "\(error.message); findings have no file:line"
      }
    }
    let report: ISRReport
    do {
      let rules = try ruleSet.resolvingFieldOffsets(elfPath: elfPath)
      report = try ISRAnalysis.run(elf: elf, rules: rules, locator: locator)
    } catch {
      throw CLIError("\(elfPath): \(error.message)", code: .symbols)
    }
    locator?.close()
    if let warning { FileHandle.standardError.write(Data("smptop: \(warning)\n".utf8)) }
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      do { FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8)) } catch {
        throw CLIError("cannot encode the report: \(error)", code: .usage)
      }
    } else {
      print(Self.text(report))
    }
    if !report.allExpected { throw ExitCode(1) }
  }

  /// The static findings per lock for the dashboard: the check of `elf` (read from `path`) under
  /// the source tree's rules, or nothing when there is no ELF, no rules file, or the ELF is not
  /// this kind of guest.
  static func lockSummary(elf: ELFFile?, path: String?) -> [UInt64: String] {
    guard let elf, let path, let root = try? GuestKernel.sourceRoot(),
      let rules = try? ISRRules(path: root + "/Resources/isr-rules.txt").resolvingFieldOffsets(elfPath: path),
      let report = try? ISRAnalysis.run(elf: elf, rules: rules, locator: nil)
    else { return [:] }
    return report.lockSummary
  }

  /// The report as text: one finding per line, then a summary.
  static func text(_ report: ISRReport) -> String {
    var lines = report.findings.map { finding in
      (finding.expected ? "expected  " : "FINDING   ") + "\(finding.kind.rawValue): " + finding.text
    }
    let open = report.findings.filter { !$0.expected }.count
    lines.append(
      "\(report.findings.count) finding\(report.findings.count == 1 ? "" : "s"), \(open) not declared; "
        + "\(report.reachableFunctions) of \(report.functions) functions reachable from interrupt entries, "
        + "\(report.callSites) call sites")
    if !report.unresolvedSpinlocks.isEmpty {
      lines.append(
        "note: \(report.unresolvedSpinlocks.count) spinlock call(s) in interrupt context on a lock the code "
          + "computes at run time, not judged (--json lists them under unresolvedSpinlocks)")
    }
    for stale in report.unmatchedExpectations {
      lines.append("note: expected rule matched nothing (\(stale))")
    }
    return lines.joined(separator: "\n")
  }
}
