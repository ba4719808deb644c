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
    var second: Snapshot
    do {
      first = try await t.snapshot()
      installInterruptHandler()
      _ = await sleepUnlessInterrupted(interval)
      second = try await t.snapshot()
      // Where the waiters wait comes from their backtraces (shared RAM, or a stopped VM).
      await t.addBacktraces(to: &second)
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
      FileHandle.standardOutput.write(try encoder.encode(table.rows.map(LockJSONRow.init)) + Data("\n".utf8))
    } else {
      print(table.text)
      let waits = table.waiterLines(names: ThreadNames(second))
      if !waits.isEmpty { print("waiters:\n" + waits.joined(separator: "\n")) }
    }
  }
}

/// One lock with its rates, as `smptop locks --json` prints it: the row model's numbers, times in
/// microseconds, and the cells as the table shows them.
struct LockJSONRow: Codable {
  var name: String
  var kind: String
  var holder: String
  var acquisitionsPerSecond: Double?
  var contendedPerSecond: Double?
  /// Contended share of the interval's acquisitions (absent without rates or acquisitions).
  var contendedPercent: Double?
  var meanWaitMicroseconds: Double?
  var maxWaitMicroseconds: Double?
  var maxHoldMicroseconds: Double?
  var waiters: UInt32
  /// The waiters the lock record names, each with where it waits (`site`, `location`) when
  /// its backtrace shows it.
  var waiting: [LockRecord.Waiter]
  var misuse: UInt64
  var acquireSite: String?
  var consistent: Bool
  var cells: LockRow.Cells

  /// The JSON form of a row.
  init(_ r: LockRow) {
    name = r.record.name
    kind = r.record.kind.rawValue
    holder = r.cells.holder
    acquisitionsPerSecond = r.acquisitionsPerSecond
    contendedPerSecond = r.contendedPerSecond
    contendedPercent = r.contendedPercent
    meanWaitMicroseconds = r.meanWaitSeconds.map { $0 * 1e6 }
    maxWaitMicroseconds = r.maxWaitSeconds.map { $0 * 1e6 }
    maxHoldMicroseconds = r.maxHoldSeconds.map { $0 * 1e6 }
    waiters = r.record.waiterCount
    waiting = r.record.waiters
    misuse = r.record.misuseTotal
    acquireSite = r.record.acquireSite == 0 ? nil : r.cells.site
    consistent = r.record.consistency.isConsistent
    cells = r.cells
  }
}
