import Foundation
import Testing

/// `smptop trace` against the real guest: the Chrome trace it writes, the JSON lines, and the
/// control word it switches on for the run and restores afterwards.
@Suite(.serialized) struct TraceCommandTests {
  @Test func writesAChromeTraceThatParsesWithConsistentTracksAndFlows() async throws {
    let qemu = try await OwnQEMU(smp: 4)
    let dir = qemu.directory
    // Booted without trace=: nothing is traced, and the command says so instead of writing an empty file.
    let idle = try SMPTopBinary.run(
      ["trace"] + qemu.target + ["--seconds", "0.5", "--out", dir + "/idle.json"])
    #expect(idle.status != 0)
    #expect(idle.stderr.contains("traces nothing"), "\(idle.stderr)")
    #expect(!FileManager.default.fileExists(atPath: dir + "/idle.json"))

    // --enable switches tracing on for the run (the one write smptop makes to guest memory).
    // Written through a symbolic link: the output is opened in place, as /dev/null or a FIFO
    // must be, never replaced by a renamed temporary file.
    let out = dir + "/trace.json"
    let link = dir + "/trace-link.json"
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: out)
    let run = try SMPTopBinary.run(
      ["trace"] + qemu.target + ["--seconds", "0.5", "--out", link, "--enable", "locks,irq,sched,timer"])
    #expect(run.status == 0, "\(run.stderr)")
    let linkType = try FileManager.default.attributesOfItem(atPath: link)[.type] as? FileAttributeType
    #expect(linkType == .typeSymbolicLink, "the output path is still the link")
    print(run.stderr)
    let data = try Data(contentsOf: URL(fileURLWithPath: out))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let events = try #require(json["traceEvents"] as? [[String: Any]])
    #expect(events.count > 100)
    var named: [String: String] = [:]
    var starts: [Int: [String: Any]] = [:]
    var ends: [Int: [String: Any]] = [:]
    var phases: [String: Int] = [:]
    for e in events {
      let ph = try #require(e["ph"] as? String, "every event has a phase: \(e)")
      phases[ph, default: 0] += 1
      #expect(e["name"] is String && e["pid"] is Int && e["tid"] is Int && e["ts"] is NSNumber, "\(e)")
      switch ph {
      case "M":
        let args = try #require(e["args"] as? [String: Any])
        if let name = args["name"] as? String { named["\(e["pid"]!)/\(e["tid"]!)"] = name }
      case "X": #expect((e["dur"] as? NSNumber)?.doubleValue ?? -1 >= 0, "\(e)")
      case "i": #expect(e["s"] as? String == "t")
      case "s": starts[try #require(e["id"] as? Int)] = e
      case "f": ends[try #require(e["id"] as? Int)] = e
      default: Issue.record("unexpected phase \(ph)")
      }
    }
    // One process per lcpu, named; every event on a named track.
    for l in 0..<4 { #expect(named["\(l)/0"] == "lcpu \(l)", "lcpu \(l) has its process") }
    for e in events where e["ph"] as? String != "M" {
      #expect(named["\(e["pid"]!)/\(e["tid"]!)"] != nil, "event on an unnamed track: \(e)")
    }
    // Guest threads are named tracks (metadata), with their names from the guest.
    #expect(named.contains { $0.key.hasPrefix("1000/") && $0.value != "-" && !$0.value.hasPrefix("thread ") })
    // Flow ids pair one to one, and an arrow never goes back in time.
    #expect(Set(starts.keys) == Set(ends.keys))
    for (id, s) in starts {
      let f = try #require(ends[id])
      #expect((s["ts"] as? NSNumber)?.doubleValue ?? 0 <= (f["ts"] as? NSNumber)?.doubleValue ?? 0)
    }
    #expect((phases["X"] ?? 0) > 0 && (phases["i"] ?? 0) > 0)
    #expect(!starts.isEmpty, "the workload contends, so some release hands over to a waiter")

    // Afterwards the control word is back to off: the next run without --enable refuses again.
    let after = try SMPTopBinary.run(
      ["trace"] + qemu.target + ["--seconds", "0.5", "--out", "-", "--json-lines"])
    #expect(after.status != 0 && after.stderr.contains("traces nothing"), "\(after.stderr)")
  }

  @Test func jsonLinesAreOneEventPerLine() async throws {
    let qemu = try await OwnQEMU(smp: 2, append: "trace=locks")
    let run = try SMPTopBinary.run(
      ["trace"] + qemu.target + ["--seconds", "1", "--out", "-", "--json-lines"])
    #expect(run.status == 0, "\(run.stderr)")
    let lines = run.stdout.split(separator: "\n")
    #expect(lines.count > 10)
    for line in lines.prefix(2000) {
      let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      let kind = try #require(object["kind"] as? String)
      #expect(kind.hasPrefix("lock-"), "trace=locks traces locks only: \(kind)")
      #expect(object["lock"] is String)
    }
  }

  /// A longer run streams through many drains: the file still parses, and every event became
  /// exactly one span or instant (the counts per kind the command noted agree with the file).
  @Test func aLongerStreamedRunParsesAndItsCountsAgree() async throws {
    let qemu = try await OwnQEMU(smp: 4, append: "trace=irq,sched,timer")
    let out = qemu.directory + "/long.json"
    let run = try SMPTopBinary.run(["trace"] + qemu.target + ["--seconds", "6", "--out", out])
    #expect(run.status == 0, "\(run.stderr)")
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
    let events = try #require(json["traceEvents"] as? [[String: Any]])
    let other = try #require(json["otherData"] as? [String: String])
    func count(_ kind: String) -> Int { Int(other["events_" + kind] ?? "0") ?? -1 }
    let total = try #require(Int(other["events"] ?? ""))
    #expect(total > 1000, "six seconds of interrupts, switches and timers: \(total)")
    #expect(run.stderr.contains("traced \(total) events"), "\(run.stderr)")
    let irqSpans = events.filter { $0["cat"] as? String == "irq" && $0["ph"] as? String == "X" }.count
    let instants = events.filter { $0["ph"] as? String == "i" }.count
    #expect(irqSpans == count("irq-enter") && irqSpans > 0)
    #expect(instants == count("switch") + count("timer-fired") + count("virtio-kick") + count("virtio-irq"))
    #expect(count("irq-enter") + count("irq-exit") + instants == total, "only these classes were traced")
    #expect(count("lock-acquired") == 0, "locks were not traced")
  }

  /// `smptop record` stores the drained trace with the frames; `smptop replay --trace` gives back
  /// exactly those events. The recording is read here with a parser of its own (the format in
  /// RecordedMemory.swift), independent of smptop's decoder.
  @Test func recordCarriesTheTraceAndReplayExportsIt() async throws {
    let qemu = try await OwnQEMU(smp: 4, append: "trace=all")
    let file = qemu.directory + "/traced.rec"
    let record = try SMPTopBinary.run(
      ["record"] + qemu.target + ["--out", file, "--interval", "0.1", "--count", "3"])
    #expect(record.status == 0, "\(record.stderr)")
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
    let recorded = try RecordingFile(bytes)
    #expect(recorded.frames == 3)
    #expect(recorded.traces == 3, "every frame carries its trace")
    #expect(recorded.events.count > 1000, "trace=all over 0.2 s gives many events")
    // Per ring, positions only go up, and every position between is either an event or lost.
    var byRing: [UInt32: [UInt64]] = [:]
    for e in recorded.events { byRing[e.ring, default: []].append(e.position) }
    #expect(byRing.count == 4, "every lcpu's ring gave events")
    for (ring, positions) in byRing {
      #expect(zip(positions, positions.dropFirst()).allSatisfy { $0 < $1 }, "ring \(ring) in position order")
      let span = (positions.last ?? 0) - (positions.first ?? 0) + 1
      #expect(
        UInt64(positions.count) + (recorded.lost[ring] ?? 0) >= span,
        "ring \(ring): no position skipped silently")
    }

    // Replay exports the same events: counts per kind and lcpu, first and last timestamps.
    let replay = try SMPTopBinary.run(
      ["replay", file, "--kernel", qemu.kernel, "--trace", "-", "--json-lines"])
    #expect(replay.status == 0, "\(replay.stderr)")
    let lines = replay.stdout.split(separator: "\n")
    #expect(lines.count == recorded.events.count)
    var replayed: [String: Int] = [:]
    var tscs: [UInt64] = []
    for line in lines {
      let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      let kind = try #require(o["kind"] as? String)
      let lcpu = try #require((o["lcpu"] as? NSNumber)?.uint32Value)
      replayed["\(kind)@\(lcpu)", default: 0] += 1
      tscs.append(try #require((o["tsc"] as? NSNumber)?.uint64Value))
    }
    var expected: [String: Int] = [:]
    for e in recorded.events { expected["\(Self.kindNames[Int(e.kind)] ?? "?")@\(e.lcpu)", default: 0] += 1 }
    #expect(replayed == expected)
    #expect(tscs.min() == recorded.events.map(\.tsc).min())
    #expect(tscs.max() == recorded.events.map(\.tsc).max())

    // The Chrome export of the recording parses and has events on every lcpu.
    let chrome = qemu.directory + "/replayed.json"
    let export = try SMPTopBinary.run(["replay", file, "--kernel", qemu.kernel, "--trace", chrome])
    #expect(export.status == 0, "\(export.stderr)")
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: chrome))) as? [String: Any]
    )
    let events = try #require(json["traceEvents"] as? [[String: Any]])
    // (Spans on lcpu processes 0...3; pid 1000 is the guest-threads process.)
    let pids = Set(events.compactMap { $0["ph"] as? String == "X" ? $0["pid"] as? Int : nil })
    #expect(pids.subtracting([1000]) == [0, 1, 2, 3])
    let other = try #require(json["otherData"] as? [String: String])
    #expect(other["lost_records"] == "\(recorded.lost.values.reduce(0, +))")

    // A format-1 recording (frames only) still replays, and says it has no trace.
    let old = qemu.directory + "/old.rec"
    try Data(Array("SMPTREC1".utf8) + recorded.firstFrame).write(to: URL(fileURLWithPath: old))
    let shown = try SMPTopBinary.run(["replay", old, "--kernel", qemu.kernel, "--json"])
    #expect(shown.status == 0, "\(shown.stderr)")
    let noTrace = try SMPTopBinary.run(["replay", old, "--kernel", qemu.kernel, "--trace", "-"])
    #expect(noTrace.status != 0 && noTrace.stderr.contains("no trace"), "\(noTrace.stderr)")
  }

  /// Kind numbers of `enum smptop_trace_kind` and their JSON-lines names.
  static let kindNames: [Int: String] = [
    1: "lock-contend", 2: "lock-acquired", 3: "lock-released", 4: "irq-enter", 5: "irq-exit", 6: "switch",
    7: "timer-fired", 8: "virtio-kick", 9: "virtio-irq", 10: "alloc-failure",
  ]
}

/// A recording file read the way its format comment describes it (SMPTREC2: FRAM and TRCE sections).
struct RecordingFile {
  struct Event {
    var ring: UInt32
    var position: UInt64
    var tsc: UInt64
    var kind: UInt16
    var lcpu: UInt32
  }
  var frames = 0
  var traces = 0
  var events: [Event] = []
  var lost: [UInt32: UInt64] = [:]
  /// The bytes of the first FRAM section.
  var firstFrame: [UInt8] = []

  init(_ b: [UInt8]) throws {
    guard b.count >= 8, Array(b[0..<8]) == Array("SMPTREC2".utf8) else {
      throw CommandTestError("not a format-2 recording")
    }
    var at = 8
    func int<T: FixedWidthInteger>(_: T.Type) throws -> T {
      let n = MemoryLayout<T>.size
      guard at + n <= b.count else { throw CommandTestError("truncated at \(at)") }
      var v: T = 0
      for i in (0..<n).reversed() { v = v << 8 | T(b[at + i]) }
      at += n
      return v
    }
    while at < b.count {
      guard at + 4 <= b.count else { throw CommandTestError("truncated tag") }
      let tag = String(decoding: b[at..<at + 4], as: UTF8.self)
      let sectionStart = at
      at += 4
      switch tag {
      case "FRAM":
        let ranges = try int(UInt32.self)
        _ = try int(UInt64.self)
        for _ in 0..<ranges {
          _ = try int(UInt64.self)
          at += Int(try int(UInt32.self))
        }
        if frames == 0 { firstFrame = Array(b[sectionStart..<at]) }
        frames += 1
      case "TRCE":
        traces += 1
        _ = try int(UInt64.self)
        _ = try int(UInt64.self)
        for _ in 0..<(try int(UInt32.self)) {
          let ring = try int(UInt32.self)
          lost[ring, default: 0] += try int(UInt64.self)
        }
        for _ in 0..<(try int(UInt32.self)) {
          let ring = try int(UInt32.self)
          let position = try int(UInt64.self)
          let tsc = try int(UInt64.self)
          let kind = try int(UInt16.self)
          let lcpu = try int(UInt32.self)
          at += 32  // object, arg, arg2, site
          events.append(Event(ring: ring, position: position, tsc: tsc, kind: kind, lcpu: lcpu))
        }
      default: throw CommandTestError("unknown section \(tag) at \(sectionStart)")
      }
    }
  }
}
