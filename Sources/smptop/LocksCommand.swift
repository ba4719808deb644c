import ArgumentParser
import Foundation
import Inspector

/// `smptop locks`: the lock contention table, sorted, from two snapshots an interval apart.
struct LocksCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "locks",
    abstract: "Print the lock contention table (sorted by contention), wait-for cycles and misuse.",
    discussion: """
      Takes two snapshots --interval seconds apart (live from shared RAM when --memory-file is \
      given, else through the gdbstub) and ranks locks by contended acquisitions per second.
      """)

  @OptionGroup var target: TargetArguments

  @Option(help: "Show the N most contended locks (0 = all).")
  var top = 20

  @Option(help: "Seconds between the two snapshots the rates come from.")
  var interval: Double = 1

  @Flag(help: "Print JSON.")
  var json = false

  func validate() throws {
    guard top >= 0, interval > 0, interval <= 3600 else {
      throw ValidationError("--top ≥ 0, 0 < --interval ≤ 3600")
    }
  }

  func run() async throws {
    let t: Target
    do { t = try await Target.open(target.options) } catch { throw CLIError(error) }
    let first: Snapshot
    let second: Snapshot
    do {
      first = try await t.snapshot()
      installInterruptHandler()
      _ = await sleepUnlessInterrupted(interval)
      second = try await t.snapshot()
    } catch {
      await t.close()
      throw CLIError(error)
    }
    await t.close()
    guard second.guest != nil else {
      throw CLIError("this guest has no inspection ABI, so it publishes no locks", code: .abi)
    }
    let rates = SnapshotRates(from: first, to: second)
    let table = LockTable(snapshot: second, rates: rates, top: top, symbolize: t.symbolize)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      FileHandle.standardOutput.write(try encoder.encode(table.rows) + Data("\n".utf8))
    } else {
      print(table.text)
    }
  }
}

/// The contention table: one row per lock, most contended first.
struct LockTable {
  /// One lock with its rates, as printed and as JSON.
  struct Row: Codable {
    var name: String
    var kind: String
    var holder: String
    var acquisitionsPerSecond: Double?
    var contendedPerSecond: Double?
    var contendedPercent: Double
    var meanWaitMicroseconds: Double?
    var maxWaitMicroseconds: Double
    var maxHoldMicroseconds: Double
    var waiters: UInt32
    var misuse: UInt64
    var acquireSite: String?
    var consistent: Bool
  }

  var rows: [Row]
  var cycles: [WaitCycle]
  var threadNames: [UInt64: String]

  init(snapshot: Snapshot, rates: SnapshotRates?, top: Int, symbolize: (UInt64) -> String?) {
    let perUs = Double(snapshot.guest?.tscPerMs ?? 0) / 1000
    func us(_ tsc: Double) -> Double { perUs > 0 ? tsc / perUs : 0 }
    threadNames = Dictionary(snapshot.threads.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
    let names = threadNames
    let byAddress = Dictionary((rates?.locks ?? []).map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
    var rows = snapshot.locks.map { lock -> Row in
      let r = byAddress[lock.address]
      var holder = "-"
      if let thread = lock.holderThread {
        holder = names[thread] ?? "thread \(thread)"
        if let lcpu = lock.holderLCPU { holder += "@\(lcpu)" }
      } else if let lcpu = lock.holderLCPU {
        holder = "lcpu \(lcpu)"
      } else if lock.kind == .rw && lock.readers > 0 {
        holder = "\(lock.readers) readers"
      }
      return Row(
        name: lock.name, kind: lock.kind.rawValue, holder: holder,
        acquisitionsPerSecond: r?.acquisitionsPerSecond,
        contendedPerSecond: r?.contendedPerSecond,
        contendedPercent: r?.contendedPercent ?? lock.contendedPercent,
        meanWaitMicroseconds: r?.meanWaitTSC.map(us), maxWaitMicroseconds: us(Double(lock.waitMaxTSC)),
        maxHoldMicroseconds: us(Double(lock.holdMaxTSC)), waiters: lock.waiterCount, misuse: lock.misuseTotal,
        acquireSite: lock.isHeld && lock.acquireSite != 0 ? symbolize(lock.acquireSite) : nil,
        consistent: lock.consistency.isConsistent)
    }
    rows.sort {
      ($0.contendedPerSecond ?? 0, $0.contendedPercent, $0.acquisitionsPerSecond ?? 0)
        > ($1.contendedPerSecond ?? 0, $1.contendedPercent, $1.acquisitionsPerSecond ?? 0)
    }
    self.rows = top > 0 ? Array(rows.prefix(top)) : rows
    self.cycles = snapshot.waitCycles
  }

  var text: String {
    func f(_ v: Double?, _ format: String = "%.0f") -> String { v.map { String(format: format, $0) } ?? "-" }
    var lines = [
      SnapshotText.pad("LOCK", 24, left: true) + " " + SnapshotText.pad("KIND", 9, left: true) + " "
        + SnapshotText.pad("HOLDER", 16, left: true) + " " + SnapshotText.pad("ACQ/s", 9) + " "
        + SnapshotText.pad("CONT/s", 8) + " " + SnapshotText.pad("CONT%", 6) + " "
        + SnapshotText.pad("WAITµs", 8)
        + " " + SnapshotText.pad("MAXWAIT", 8) + " " + SnapshotText.pad("MAXHOLD", 8) + " "
        + SnapshotText.pad("WAITERS", 7) + " " + SnapshotText.pad("MISUSE", 6) + "  SITE"
    ]
    for r in rows {
      lines.append(
        SnapshotText.pad(String(r.name.prefix(24)), 24, left: true) + " "
          + SnapshotText.pad(r.kind, 9, left: true) + " "
          + SnapshotText.pad(String(r.holder.prefix(16)), 16, left: true) + " "
          + SnapshotText.pad(f(r.acquisitionsPerSecond), 9)
          + " " + SnapshotText.pad(f(r.contendedPerSecond), 8) + " "
          + SnapshotText.pad(f(r.contendedPercent, "%.1f"), 6)
          + " " + SnapshotText.pad(f(r.meanWaitMicroseconds, "%.1f"), 8) + " "
          + SnapshotText.pad(f(r.maxWaitMicroseconds), 8) + " "
          + SnapshotText.pad(f(r.maxHoldMicroseconds), 8) + " "
          + SnapshotText.pad(String(r.waiters), 7) + " "
          + SnapshotText.pad(r.misuse > 0 ? "\(r.misuse)!" : "0", 6)
          + "  " + (r.acquireSite ?? "") + (r.consistent ? "" : " (torn)"))
    }
    if rows.isEmpty { lines.append("(the guest publishes no locks)") }
    for cycle in cycles {
      let text = cycle.steps.map { "\(threadNames[$0.thread] ?? "thread \($0.thread)") waits for \($0.lock)" }
        .joined(separator: " → ")
      lines.append("DEADLOCK: " + text + " (held by the next)")
    }
    return lines.joined(separator: "\n")
  }
}
