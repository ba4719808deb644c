import ArgumentParser
import Exposition
import Foundation
import Inspector
import QEMULaunch

/// Workloads the bundled guest can boot into (`--scenario`).
enum Scenario: String, ExpressibleByArgument, CaseIterable {
  /// Threads on every lcpu hammer shared counters under every lock kind, producers and
  /// consumers, readers and writers, sleepers, allocation churn.
  case `default`
  /// Two threads take two locks in opposite order: an ABBA wait-for cycle.
  case deadlock
  /// A lock taken in the timer interrupt and elsewhere with interrupts on (counted misuse).
  case isrMisuse = "isr-misuse"
  /// One long holder, many waiters.
  case convoy
  /// Wake-ups that land between a waiter's block and its re-check (run-queue self-checks).
  case wakeRace = "wake-race"
  /// Timer interrupts that re-enter ticket and rw locks their own lcpu waits for or reads.
  case irqReentry = "irq-reentry"
  /// lcpu 1 panics holding the console lock while lcpu 2 holds the lock's record guard.
  case panicConsole = "panic-console"
  /// The default workload with the lock-free (NBBS) buddy allocator.
  case lockfree
  /// lcpu 1 takes a page fault half a second after boot (a panic record to look at).
  case panic
  /// Over 1 000 dynamic locks with churning holders, for the dashboard at scale (with --smp 64).
  case scale

  /// Kernel command-line words for the scenario.
  var append: String? {
    switch self {
    case .default: nil
    case .deadlock: "workload=deadlock"
    case .isrMisuse: "workload=isr-misuse"
    case .convoy: "workload=convoy"
    case .wakeRace: "workload=wake-race"
    case .irqReentry: "workload=irq-reentry"
    case .panicConsole: "workload=panic-console"
    case .lockfree: "alloc=lockfree"
    case .panic: "panic=1 panic.kind=pf"
    case .scale: "workload=scale"
    }
  }
}

/// Waits (up to 60 s) until a freshly booted guest has published its inspection ABI, so the
/// first batch snapshot is not an error about a guest that is still booting.
func waitForABI(_ target: Target) async {
  for _ in 0..<600 {
    if (try? target.liveSnapshot()) != nil { return }
    try? await Task.sleep(for: .milliseconds(100))
  }
}

/// `smptop run`: boot the bundled unikernel in QEMU and inspect it.
struct RunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Build the bundled unikernel if needed, boot it in QEMU (TCG) and inspect it.",
    discussion: """
      QEMU's gdbstub, QMP socket, serial log and shared RAM file live in a private 0700 \
      directory that is removed on exit, and QEMU is shut down when smptop exits.

      Scriptable: smptop run --smp 4 --headless --after 3 --json
      """)

  @Option(help: "Number of lcpus (1...64).")
  var smp = 4

  @Option(help: "Guest workload.")
  var scenario: Scenario = .default

  @Option(help: "Extra kernel command line words (see Sources/Kernel/CommandLine.swift).")
  var append: String?

  @Option(name: .customLong("memory"), help: "Guest RAM in MiB.")
  var memoryMiB = 128

  @Option(help: "Machine type: pc or q35.")
  var machine = "pc"

  @Option(help: "Boot this ELF instead of the bundled guest.")
  var kernel: String?

  @Option(
    help: ArgumentHelp(
      "How TCG runs the vCPUs: multi (a host thread each) or single (one thread, in turn); QEMU's default (multi) if not given.",
      discussion:
        "multi lets vCPUs truly overlap; single makes every stop (space, stepping, --stopped snapshots) far quicker with many vCPUs on few host cores (README, Benchmarks)."
    ))
  var tcgThreads: TCGThreads?

  @Option(
    help: """
      Add a virtio-net NIC on QEMU user networking; the guest's UDP echo (port 7) is forwarded \
      from 127.0.0.1:PORT on the host (e.g. --net 15555).
      """)
  var net: UInt16?

  @Flag(help: "No interactive display: wait --after seconds, print one snapshot, shut down.")
  var headless = false

  @Option(help: "Seconds to let the guest run before the headless snapshot.")
  var after: Double = 2

  @Flag(help: "Take the headless snapshot through the gdbstub (adds every vCPU's registers).")
  var stopped = false

  @Option(
    help: """
      Also serve Prometheus metrics of the guest at http://HOST:PORT/metrics while it runs       (loopback only; see smptop serve).
      """)
  var serve: String?

  @OptionGroup var display: DisplayArguments

  func validate() throws {
    if let serve {
      guard let address = ListenAddress(parsing: serve), address.isLoopback else {
        throw ValidationError("--serve takes a loopback HOST:PORT or :PORT (got \(serve))")
      }
    }
    guard (1...64).contains(smp) else { throw ValidationError("--smp must be 1...64") }
    guard ["pc", "q35"].contains(machine) else { throw ValidationError("--machine must be pc or q35") }
    guard memoryMiB >= 32, memoryMiB <= 65536 else {
      throw ValidationError("--memory must be 32...65536 MiB")
    }
    guard after >= 0 else { throw ValidationError("--after must be ≥ 0") }
  }

  func run() async throws {
    let elf: String
    do { elf = try kernel ?? GuestKernel.build() } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .build)
    }
    var config = QEMUConfiguration()
    config.smp = smp
    config.tcgThreads = tcgThreads
    config.memoryMiB = memoryMiB
    config.machine = machine
    config.kernel = elf
    config.append = [scenario.append, append].compactMap { $0 }.joined(separator: " ")
    if let port = net {
      config.extraArguments += [
        "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,id=nic0",
        "-netdev", "user,id=n0,hostfwd=udp:127.0.0.1:\(port)-:7",
      ]
    }
    let qemu: QEMUInstance
    do { qemu = try QEMUInstance.launch(config) } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .qemu)
    }
    defer { qemu.shutdown() }
    let target: Target
    do { target = try await Target.open(TargetOptions(qemu)) } catch { throw CLIError(error) }
    let server = serve.flatMap(ListenAddress.init(parsing:)).map { address in
      // The dashboard owns QMP (QEMU takes one client); the exporter reads the RAM file only and
      // learns that QEMU is gone from the process itself.
      var options = TargetOptions(qemu)
      options.qmp = nil
      options.gdb = nil
      let live = LiveTarget(options: options, alive: { qemu.isRunning })
      return Task {
        try await serveMetrics(
          [ScrapeSource(name: "guest") { await live.snapshot() }], on: address, standalone: false)
      }
    }
    defer { server?.cancel() }

    do {
      if headless {
        installInterruptHandler()
        _ = await sleepUnlessInterrupted(after)
        var snap = try await snapshot(target, stopped: stopped)
        snap.problems += qemu.isRunning ? [] : ["QEMU exited with status \(qemu.exitStatus ?? -1)"]
        try Output.print(snap, json: display.json, symbolize: target.symbolize)
        await target.close()
        if snap.lcpus.contains(where: { $0.panic != nil }) {
          throw CLIError("the guest panicked (see the panic records above)", code: .guest)
        }
      } else {
        if display.batch || display.json { await waitForABI(target) }
        try await display.show(target, machine: machine)
        await target.close()
      }
    } catch {
      await target.close()
      throw error
    }
  }

  private func snapshot(_ target: Target, stopped: Bool) async throws -> Snapshot {
    do {
      return try await SnapshotCommand.snapshotWithBacktraces(
        target, stopped: stopped, virtio: nil, backtraces: true)
    } catch { throw CLIError(error) }
  }
}
