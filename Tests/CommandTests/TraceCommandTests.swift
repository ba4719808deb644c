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
    let out = dir + "/trace.json"
    let run = try SMPTopBinary.run(
      ["trace"] + qemu.target + ["--seconds", "0.5", "--out", out, "--enable", "locks,irq,sched,timer"])
    #expect(run.status == 0, "\(run.stderr)")
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
}
