import ArgumentParser
import Inspector

/// `smptop step`: single-step one lcpu while every other lcpu stays stopped.
struct StepCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "step",
    abstract: "Step one lcpu K instructions (the others stay stopped), printing RIP and symbol.",
    discussion: """
      Uses the gdbstub's vCont;s on that vCPU alone (gdb's default stepi lets the other vCPUs \
      run). A halted lcpu (in hlt) is refused: its step could never finish. The VM is resumed \
      afterwards if it was running, unless --stay-stopped.
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "The lcpu (vCPU index) to step.")
  var lcpu: Int

  @Option(help: "Instructions to step.")
  var count = 1

  @Flag(help: "Leave the VM stopped after stepping.")
  var stayStopped = false

  func validate() throws {
    guard target.gdb != nil else { throw ValidationError("stepping needs the gdbstub: give --gdb ADDR") }
    guard lcpu >= 0, count >= 1, count <= 100_000 else {
      throw ValidationError("--lcpu ≥ 0, 1 ≤ --count ≤ 100000")
    }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    do {
      let steps = try await t.step(vcpu: lcpu, count: count, restore: !stayStopped)
      for (i, s) in steps.enumerated() {
        print("\(i + 1)\tlcpu \(s.vcpu)\t0x\(String(s.rip, radix: 16))\t\(s.symbol ?? "?")")
      }
    } catch {
      await t.close()
      throw CLIError(error)
    }
    await t.close()
  }
}
