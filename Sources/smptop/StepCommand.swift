import ArgumentParser
import ELFSymbols
import Inspector

/// `smptop step`: single-step one lcpu (instructions or one source line) while every other lcpu stays stopped.
struct StepCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "step",
    abstract: "Step one lcpu K instructions, or one source line (the others stay stopped).",
    discussion: """
      Uses the gdbstub's vCont;s on that vCPU alone (gdb's default stepi lets the other vCPUs \
      run), with interrupts and timers masked. A halted lcpu (in hlt), or one about to execute \
      hlt, steps with interrupts and timers on for that step only and stops at the first \
      instruction of the handler that woke it (marked "woke"), waiting at most 3 s. --line steps \
      until the source line at RIP changes (at most --limit instructions). The VM is resumed \
      afterwards if it was running, unless --stay-stopped.
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "The lcpu (vCPU index) to step.")
  var lcpu: Int

  @Option(help: "Instructions to step.")
  var count = 1

  @Flag(help: "Step until the source line changes (needs the kernel ELF with DWARF).")
  var line = false

  @Option(help: "With --line: the most instructions to step before giving up.")
  var limit = 10_000

  @Flag(help: "Leave the VM stopped after stepping.")
  var stayStopped = false

  func validate() throws {
    guard target.gdb != nil else { throw ValidationError("stepping needs the gdbstub: give --gdb ADDR") }
    guard lcpu >= 0, count >= 1, count <= 100_000 else {
      throw ValidationError("--lcpu ≥ 0, 1 ≤ --count ≤ 100000")
    }
    guard limit >= 1, limit <= 1_000_000 else { throw ValidationError("1 ≤ --limit ≤ 1000000") }
    if line && target.kernel == nil {
      throw ValidationError("--line needs the kernel ELF: give --kernel PATH")
    }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    do {
      if line {
        let r = try await t.stepLine(vcpu: lcpu, limit: limit, restore: !stayStopped)
        print("from\tlcpu \(r.vcpu)\t\(Self.describe(r.from))")
        print("to\tlcpu \(r.vcpu)\t\(Self.describe(r.to))")
        print(
          r.lineChanged
            ? "line changed after \(r.instructions) instructions"
            : "line unchanged after \(r.instructions) instructions (the --limit)")
      } else {
        let steps = try await t.step(vcpu: lcpu, count: count, restore: !stayStopped)
        for (i, s) in steps.enumerated() {
          print("\(i + 1)\tlcpu \(s.vcpu)\t\(Self.describe(s))")
        }
      }
    } catch {
      await t.close()
      throw CLIError(error)
    }
    await t.close()
  }

  /// One step's RIP, symbol, source line and whether an interrupt woke the lcpu, tab-separated.
  static func describe(_ s: StepRecord) -> String {
    var text = "0x\(String(s.rip, radix: 16))\t\(s.symbol ?? "?")"
    if let where_ = s.location?.shortLocation { text += "\t\(where_)" }
    if s.woke { text += "\twoke (interrupt)" }
    return text
  }
}
