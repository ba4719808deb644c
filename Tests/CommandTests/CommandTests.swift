import Foundation
import QEMULaunch
import QMP
import Testing

/// Every subcommand of the built binary, run as a user runs it, against the real guest.
@Suite(.serialized) struct CommandTests {
  /// The keys the README's JSON table documents, per object (`panic` is documented as absent
  /// unless an lcpu panicked; `vcpus` and `virtio` come with --stopped and --virtio).
  static let documented: [String: [String]] = [
    "": [
      "timeNanoseconds", "source", "guest", "lcpus", "runState", "problems", "locks", "threads",
      "timerQueues",
      "workload", "allocator", "virtioDevices", "virtqueues", "costNanoseconds", "readNanoseconds",
      "pauseNanoseconds",
    ],
    "guest": [
      "abiVersion", "buildID", "bootStage", "features", "bootTSC", "tscPerMs", "lapicPerMs",
      "tickMicroseconds",
      "lcpusPresent", "lcpusOnline", "ramBytes", "kernelStart", "kernelEnd", "textStart", "textEnd",
      "shutdownCode", "commandLine", "isrReturn",
    ],
    "lcpus": [
      "index", "apicID", "state", "rawState", "busyDepth", "errorCode", "irqTimer", "irqIPI", "irqDevice",
      "irqSpurious", "ipiSent", "ipiReceived", "remoteCalls", "ticks", "cyclesIdle", "cyclesBusy",
      "currentThread", "nextDeadlineTSC", "lastTickRIP", "lastTickTSC", "stackBottom", "stackTop",
      "workLoops",
      "stateSinceTSC", "consistency",
    ],
    "locks": [
      "name", "kind", "flags", "address", "dynamic", "stateWord", "holderLCPU", "holderThread", "readers",
      "acquireSite", "acquiredTSC", "acquisitions", "contended", "trylockFailures", "waitTotalTSC",
      "waitMaxTSC",
      "holdTotalTSC", "holdMaxTSC", "misuseIRQUnsafe", "misuseSleepInIRQ", "misuseRecursion",
      "misuseBadUnlock",
      "waiterCount", "pendingWriters", "waiters", "consistency", "acquireSiteLocation",
    ],
    "waiters": ["lcpu", "thread", "sinceTSC"],
    "threads": [
      "id", "name", "state", "lcpu", "blockedOn", "wakeTSC", "cpuTSC", "switches", "ops", "consistency",
      "recordAddress", "stackBottom", "stackTop", "savedRSP", "tickRIP", "tickRBP", "tickRSP", "tickTSC",
      "backtrace",
    ],
    "backtrace": ["origin", "frames"],
    "frames": ["address", "isReturnAddress", "trusted", "location"],
    "location": ["function", "file", "line", "inlined", "inlinedInto"],
    "timerQueues": [
      "pending", "nextDeadlineTSC", "fired", "lateTotalTSC", "lateMaxTSC", "lateHistogram", "timers",
    ],
    "timers": ["deadlineTSC", "ownerThread"],
    "workload": ["scenario", "checks", "checkFailures", "expected", "observed", "ops"],
    "allocator": [
      "mode", "pagesManaged", "pagesFree", "largestFreeOrder", "lcpuAllocs", "lcpuFrees", "orders",
    ],
    "orders": [
      "order", "blockBytes", "freeBlocks", "usedBlocks", "allocs", "frees", "splits", "merges", "failures",
      "casRetries",
    ],
    "virtioDevices": ["name", "mac", "features", "queuePairs", "linkUp", "msix"],
    "virtqueues": [
      "device", "index", "role", "lcpu", "size", "freeDescriptors", "availIndex", "usedIndex", "lastUsed",
      "packets", "bytes", "errors", "drops", "kicks", "interrupts", "polls",
    ],
    "vcpus": ["index", "halted", "registers", "symbol", "backtrace"],
    "registers": ["name", "value"],
    "virtio": ["name", "path", "statuses", "guestFeatures", "queues"],
    "queues": ["index", "size", "lastAvailIndex", "shadowAvailIndex", "usedIndex", "inUse"],
  ]

  /// The documented keys missing from `object` (lists: the union over their elements).
  static func missing(_ group: String, in value: Any?) -> [String] {
    let present: Set<String> =
      (value as? [String: Any]).map { Set($0.keys) } ?? JSON.keys(of: value)
    return (documented[group] ?? []).filter { !present.contains($0) }
  }

  /// The key names the README writes in backticks, its short forms expanded: `kernelStart/End`
  /// names kernelStart and kernelEnd, `lateHistogram[8]` names lateHistogram, and a prefix
  /// ending in `…` (the four `misuse…` counters) is returned apart.
  static func readmeKeys(_ readme: String) -> (names: Set<String>, prefixes: [String]) {
    var names = Set<String>()
    var prefixes: [String] = []
    for (i, piece) in readme.components(separatedBy: "`").enumerated() where i % 2 == 1 {
      var token = piece
      if let bracket = token.firstIndex(of: "[") { token = String(token[..<bracket]) }
      if token.hasSuffix("…") {
        prefixes.append(String(token.dropLast()))
        continue
      }
      let parts = token.split(separator: "/").map(String.init)
      guard let first = parts.first else { continue }
      names.insert(first)
      // "stackBottom/Top": the second word replaces the first one's last camel-case word.
      let stem = first.prefix { !$0.isUppercase }
      for part in parts.dropFirst() { names.insert(stem + part) }
    }
    return (names, prefixes)
  }

  @Test func theREADMEDocumentsEveryKeyThisTestChecks() throws {
    let readme = try String(contentsOfFile: SMPTopBinary.repositoryRoot + "/README.md", encoding: .utf8)
    let (names, prefixes) = Self.readmeKeys(readme)
    for (group, keys) in Self.documented {
      for key in keys + (group.isEmpty ? [] : [group]) {
        #expect(
          names.contains(key) || prefixes.contains { key.hasPrefix($0) },
          "the README's JSON table does not mention \(key)")
      }
    }
  }

  /// `run --tcg-threads single`: every lcpu comes up and a stopped snapshot reads every vCPU.
  @Test func runWithSingleThreadedTCGBootsEveryLCPUAndStops() throws {
    let kernel = try GuestKernel.build()
    let result = try SMPTopBinary.run([
      "run", "--headless", "--json", "--after", "2", "--smp", "3", "--tcg-threads", "single", "--stopped",
      "--kernel", kernel,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let snap = try #require(try JSON.parse(result.stdout) as? [String: Any])
    let guest = try #require(snap["guest"] as? [String: Any])
    #expect(guest["lcpusOnline"] as? Int == 3)
    let vcpus = snap["vcpus"] as? [[String: Any]] ?? []
    #expect(vcpus.count == 3)
    #expect(vcpus.allSatisfy { !($0["registers"] as? [Any] ?? []).isEmpty }, "registers come from a stop")
  }

  @Test func runRefusesAnUnknownTCGThreading() throws {
    let result = try SMPTopBinary.run(["run", "--headless", "--tcg-threads", "dual"])
    #expect(result.status != 0)
    #expect(result.stderr.contains("dual"), "\(result.stderr)")
  }

  /// `run --headless --json` on the deadlock scenario with a NIC: every documented key is
  /// present (the deadlock keeps locks held and waited for, so holder and waiter keys show).
  @Test func runHeadlessJSONHasEveryDocumentedKey() throws {
    let kernel = try GuestKernel.build()
    let port = 20_000 + Int(getpid() % 20_000)
    let result = try SMPTopBinary.run([
      "run", "--headless", "--json", "--after", "3", "--smp", "2", "--scenario", "deadlock", "--net",
      String(port),
      "--stopped", "--kernel", kernel,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let snap = try #require(try JSON.parse(result.stdout) as? [String: Any])
    #expect(Self.missing("", in: snap) == [])
    for group in [
      "guest", "lcpus", "locks", "threads", "timerQueues", "workload", "allocator", "virtioDevices",
      "virtqueues", "vcpus",
    ] {
      #expect(snap[group] != nil, "\(group) absent")
      if let list = snap[group] as? [Any] { #expect(!list.isEmpty, "\(group) is empty") }
      #expect(Self.missing(group, in: snap[group]) == [], "\(group)")
    }
    let locks = snap["locks"] as? [[String: Any]] ?? []
    #expect(Self.missing("waiters", in: locks.flatMap { $0["waiters"] as? [Any] ?? [] }) == [])
    let queues = snap["timerQueues"] as? [[String: Any]] ?? []
    #expect(Self.missing("timers", in: queues.flatMap { $0["timers"] as? [Any] ?? [] }) == [])
    let orders = (snap["allocator"] as? [String: Any])?["orders"]
    #expect(Self.missing("orders", in: orders) == [])
    let vcpus = snap["vcpus"] as? [[String: Any]] ?? []
    #expect(vcpus.count == 2)
    #expect(Self.missing("registers", in: vcpus.flatMap { $0["registers"] as? [Any] ?? [] }) == [])
    // Every thread's backtrace and every vCPU's: frames with a source location each.
    let threads = snap["threads"] as? [[String: Any]] ?? []
    let backtraces = (threads + vcpus).compactMap { $0["backtrace"] as? [String: Any] }
    #expect(backtraces.count == threads.count + vcpus.count)
    #expect(Self.missing("backtrace", in: backtraces) == [])
    let frames = backtraces.flatMap { $0["frames"] as? [Any] ?? [] }
    #expect(Self.missing("frames", in: frames) == [])
    #expect(Self.missing("location", in: frames.compactMap { ($0 as? [String: Any])?["location"] }) == [])
    #expect(snap["source"] as? String == "gdbstub")
    #expect((snap["workload"] as? [String: Any])?["scenario"] as? String == "deadlock")
  }

  /// snapshot, --stopped, --virtio, locks, step, record and replay against a QEMU started with
  /// the README's own command line (plus a NIC for the virtio view).
  @Test func attachingCommandsAgainstTheREADMEsQEMU() async throws {
    let qemu = try await OwnQEMU(
      smp: 4, extra: ["-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mq=on", "-netdev", "user,id=n0"])

    // snapshot --json: live from shared RAM, every lcpu, the VM left running.
    let live = try qemu.snapshot()
    #expect(live["source"] as? String == "shared-ram")
    #expect((live["lcpus"] as? [Any])?.count == 4)
    #expect(live["runState"] as? String == "running")
    #expect(live["vcpus"] == nil, "a live snapshot reads no registers")

    // --stopped: every vCPU's registers, and the VM running again afterwards.
    let stopped = try qemu.snapshot(["--stopped"])
    #expect(stopped["source"] as? String == "gdbstub")
    let vcpus = try #require(stopped["vcpus"] as? [[String: Any]])
    #expect(vcpus.count == 4)
    for vcpu in vcpus {
      let names = (vcpu["registers"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
      #expect(names.contains("rip") && names.contains("rsp"), "vcpu \(vcpu["index"] ?? "?"): \(names)")
    }
    #expect(try qemu.snapshot()["runState"] as? String == "running")

    // --virtio: QEMU's own view of the NIC's queues.
    let virtio = try #require(try qemu.snapshot(["--virtio"])["virtio"] as? [[String: Any]])
    #expect(!virtio.isEmpty)
    #expect(Self.missing("virtio", in: virtio) == [])
    let queues = virtio.flatMap { $0["queues"] as? [Any] ?? [] }
    #expect(!queues.isEmpty)
    #expect(Self.missing("queues", in: queues) == [])

    try locksAgreeWithTheSnapshot(qemu)
    try stepMovesOneRunningLCPU(qemu)
    try await recordThenReplay(qemu)
    try batchErrorStartsItsOwnLine(qemu)
  }

  /// `locks --json`: sorted by contention, one row per lock the snapshot lists.
  func locksAgreeWithTheSnapshot(_ qemu: OwnQEMU) throws {
    let result = try SMPTopBinary.run(["locks", "--json", "--top", "0", "--interval", "1"] + qemu.target)
    #expect(result.status == 0, "\(result.stderr)")
    let rows = try #require(try JSON.parse(result.stdout) as? [[String: Any]])
    try #require(!rows.isEmpty)
    for key in [
      "name", "kind", "holder", "acquisitionsPerSecond", "contendedPerSecond", "contendedPercent",
      "meanWaitMicroseconds", "maxWaitMicroseconds", "maxHoldMicroseconds", "waiters", "misuse",
    ] {
      #expect(rows.contains { $0[key] != nil }, "no row has \(key)")
    }
    let keys = rows.map {
      (($0["contendedPerSecond"] as? Double) ?? 0, ($0["contendedPercent"] as? Double) ?? 0)
    }
    for (a, b) in zip(keys, keys.dropFirst()) {
      #expect(a.0 > b.0 || (a.0 == b.0 && a.1 >= b.1), "rows out of order: \(a) before \(b)")
    }
    // The default workload's locks are busy: rates were computed and some lock was contended.
    #expect(rows.contains { ($0["acquisitionsPerSecond"] as? Double ?? 0) > 0 })
    #expect(rows.contains { ($0["contendedPerSecond"] as? Double ?? 0) > 0 })
    let snapshotNames = (try qemu.snapshot()["locks"] as? [[String: Any]] ?? []).compactMap {
      $0["name"] as? String
    }
    #expect(rows.compactMap { $0["name"] as? String }.sorted() == snapshotNames.sorted())
  }

  /// `step` on a running lcpu prints one line per instruction, moves that lcpu only, and
  /// leaves the VM running.
  func stepMovesOneRunningLCPU(_ qemu: OwnQEMU) throws {
    var stepped: CommandResult?
    var refusals: [String] = []
    for _ in 0..<40 where stepped == nil {
      let lcpus = try qemu.snapshot()["lcpus"] as? [[String: Any]] ?? []
      guard let busy = lcpus.first(where: { $0["state"] as? String == "BUSY" })?["index"] as? Int else {
        continue
      }
      let result = try SMPTopBinary.run(["step", "--lcpu", String(busy), "--count", "3"] + qemu.target)
      if result.status == 0 {
        stepped = result
      } else {
        refusals.append("\(result.status): \(result.stderr)")
      }
    }
    let result = try #require(stepped, "no step succeeded: \(refusals.suffix(3))")
    let lines = result.stdout.split(separator: "\n")
    #expect(lines.count == 3)
    var lcpu: String?
    for (i, line) in lines.enumerated() {
      let fields = line.split(separator: "\t")
      // RIP, symbol, source line; a fifth field marks a step that ran into `hlt` and woke.
      try #require(fields.count == 4 || (fields.count == 5 && fields[4] == "woke (interrupt)"), "\(line)")
      #expect(fields[0] == "\(i + 1)")
      #expect(fields[2].hasPrefix("0x") && UInt64(fields[2].dropFirst(2), radix: 16) != nil)
      #expect(lcpu == nil || lcpu == String(fields[1]), "every step is on the same lcpu")
      lcpu = String(fields[1])
    }
    #expect(try qemu.snapshot()["runState"] as? String == "running")
  }

  /// `record` then `replay --json`: on a running guest the frames move forward; on a paused
  /// one every replayed frame equals the snapshot taken of the same memory.
  func recordThenReplay(_ qemu: OwnQEMU) async throws {
    let file = qemu.directory + "/live.rec"
    let recorded = try SMPTopBinary.run(
      ["record", "--out", file, "--interval", "0.3", "--count", "4"] + qemu.target)
    #expect(recorded.status == 0, "\(recorded.stderr)")
    #expect(recorded.stderr.contains("recorded 4 frames"))
    let replayed = try SMPTopBinary.run(["replay", file, "--kernel", qemu.kernel, "--json"])
    #expect(replayed.status == 0, "\(replayed.stderr)")
    let frames = try JSON.objects(replayed.stdout)
    #expect(frames.count == 4)
    #expect(frames.allSatisfy { $0["source"] as? String == "recording" })
    let ticks = frames.map { ($0["lcpus"] as? [[String: Any]] ?? []).map { $0["ticks"] as? Int ?? 0 } }
    for (a, b) in zip(ticks, ticks.dropFirst()) {
      #expect(a.count == 4 && b.count == 4)
      #expect(zip(a, b).allSatisfy { $0 < $1 }, "every lcpu ticks between frames: \(a) → \(b)")
    }

    // Paused: the guest's memory stands still, so what was captured is exactly what a
    // snapshot of it shows.
    let monitor = try await QMPClient.connect(to: qemu.qmp)
    try await monitor.stop()
    monitor.close()
    // A recording holds the model's records, not the threads' stacks: the truth leaves out
    // backtraces and source locations too.
    let truth = try qemu.snapshot(["--no-backtraces"])
    let still = qemu.directory + "/paused.rec"
    let recordedPaused = try SMPTopBinary.run(
      ["record", "--out", still, "--interval", "0.2", "--count", "2"] + qemu.target)
    let replayedPaused = try SMPTopBinary.run(["replay", still, "--kernel", qemu.kernel, "--json"])
    let resume = try await QMPClient.connect(to: qemu.qmp)
    try await resume.cont()
    resume.close()
    #expect(recordedPaused.status == 0 && replayedPaused.status == 0, "\(replayedPaused.stderr)")
    let pausedFrames = try JSON.objects(replayedPaused.stdout)
    #expect(pausedFrames.count == 2)
    // A pause can freeze a record mid-update. Both readers mark it inconsistent, but the live
    // reader counts its re-reads and frozen bytes get none: compare the state, not the count.
    func stateOnly(_ o: Any) -> Any {
      if let d = o as? [String: Any] {
        return d.filter { !($0.key == "retries" && d["state"] as? String == "inconsistent") }.mapValues(
          stateOnly)
      }
      if let a = o as? [Any] { return a.map(stateOnly) }
      return o
    }
    for frame in pausedFrames {
      for key in ["guest", "lcpus", "locks", "threads", "timerQueues", "workload", "allocator", "virtqueues"]
      {
        let replayedValue = stateOnly([key: frame[key] ?? NSNull()]) as? [String: Any] ?? [:]
        let truthValue = stateOnly([key: truth[key] ?? NSNull()]) as? [String: Any] ?? [:]
        #expect(
          NSDictionary(dictionary: replayedValue).isEqual(to: truthValue),
          "replayed \(key) differs from the paused guest's")
      }
    }
  }

  /// When QEMU dies under `attach --batch`, the error is one line of its own (stdout is
  /// flushed first) and the exit code says QEMU went away.
  func batchErrorStartsItsOwnLine(_ qemu: OwnQEMU) throws {
    let attach = try BackgroundProcess(
      [try SMPTopBinary.path(), "attach", "--batch", "--interval", "0.1"] + qemu.target, mergeErrors: true)
    let deadline = ContinuousClock.now + .seconds(30)
    while attach.stdout().components(separatedBy: "\n\n").count < 3, ContinuousClock.now < deadline,
      attach.exitStatus == nil
    {
      usleep(50_000)
    }
    qemu.process.signal(SIGKILL)
    let status = attach.wait(timeout: .seconds(30))
    #expect(status == 3, "exit status \(String(describing: status))")
    let output = attach.stdout()
    let errorLines = output.split(separator: "\n", omittingEmptySubsequences: false).filter {
      $0.contains("smptop:")
    }
    #expect(errorLines.count == 1, "\(output.suffix(400))")
    #expect(errorLines.first?.hasPrefix("smptop: ") == true, "error line mid-line: \(errorLines)")
    #expect(output.hasSuffix("\n"))
  }

  @Test func benchJSONReportsEveryField() throws {
    let result = try SMPTopBinary.run(
      ["bench", "--json", "--rounds", "5", "--smp", "2"], timeout: .seconds(300))
    #expect(result.status == 0, "\(result.stderr)")
    let report = try #require(try JSON.parse(result.stdout) as? [String: Any])
    #expect((report["peakRSSMiB"] as? Double ?? 0) > 0)
    let rows = try #require(report["rows"] as? [[String: Any]])
    #expect(rows.count == 1)
    let row = try #require(rows.first)
    #expect(row["smp"] as? Int == 2)
    #expect((row["bytesPerSnapshot"] as? Int ?? 0) > 0)
    #expect((row["gdbRegisters"] as? Int ?? 0) > 0)
    for key in [
      "liveMicroseconds", "stoppedMicroseconds", "pauseMicroseconds", "stoppedPausedMicroseconds",
      "gdbMicroseconds",
    ] {
      let stats = try #require(row[key] as? [String: Double], "\(key) missing")
      #expect(Set(stats.keys) == ["median", "p90", "p99", "min"], "\(key)")
      let median = stats["median"] ?? 0
      let p90 = stats["p90"] ?? 0
      let p99 = stats["p99"] ?? 0
      let minimum = stats["min"] ?? 0
      #expect(minimum > 0 && minimum <= median && median <= p90 && p90 <= p99, "\(key): \(stats)")
    }
  }

  @Test func kernelPrintsTheBuiltELF() throws {
    let result = try SMPTopBinary.run(["kernel"], timeout: .seconds(600))
    #expect(result.status == 0, "\(result.stderr)")
    let path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(!path.contains("\n"))
    let handle = try #require(FileHandle(forReadingAtPath: path))
    defer { try? handle.close() }
    #expect(try handle.read(upToCount: 4) == Data([0x7f, 0x45, 0x4c, 0x46]), "\(path) is not an ELF")
  }
}
