import Foundation
import Testing

@testable import Inspector

/// The spans, flows and Chrome trace built from a small hand-written event sequence.
@Suite struct TraceExportTests {
  static let lock: UInt64 = 0x5000

  /// lcpu 0 holds the lock, lcpu 1 waits and gets it on release; an IRQ and a switch on lcpu 0.
  static var events: [TraceEvent] {
    [
      TraceEvent(
        ring: 0, position: 0, tsc: 1_000, kind: .lockAcquired, lcpu: 0, object: lock, arg: 7, site: 0x10_0100),
      TraceEvent(
        ring: 1, position: 0, tsc: 1_100, kind: .lockContend, lcpu: 1, object: lock, arg: 8, site: 0x10_0200),
      TraceEvent(ring: 0, position: 1, tsc: 1_200, kind: .irqEnter, lcpu: 0, object: 0x40),
      TraceEvent(ring: 0, position: 2, tsc: 1_300, kind: .irqExit, lcpu: 0, object: 0x40),
      TraceEvent(
        ring: 0, position: 3, tsc: 1_500, kind: .lockReleased, lcpu: 0, object: lock, arg: 7, arg2: 500),
      TraceEvent(
        ring: 1, position: 1, tsc: 1_600, kind: .lockAcquired, lcpu: 1, object: lock, arg: 8, arg2: 500,
        site: 0x10_0200),
      TraceEvent(ring: 0, position: 4, tsc: 1_700, kind: .contextSwitch, lcpu: 0, object: 9, arg: 7),
      TraceEvent(ring: 0, position: 5, tsc: 1_800, kind: .timerFired, lcpu: 0, object: 0, arg: 20),
      TraceEvent(ring: 1, position: 2, tsc: 2_000, kind: .lockReleased, lcpu: 1, object: lock, arg: 8),
      TraceEvent(ring: 1, position: 3, tsc: 2_100, kind: .lockContend, lcpu: 1, object: 0x6000, arg: 8),
    ]
  }

  static var names: TraceNames {
    var n = TraceNames()
    n.locks = [lock: "work.spin", 0x6000: "deadlock.A"]
    n.threads = [7: "worker.0", 8: "worker.1", 9: "worker.2"]
    n.site = { $0 == 0x10_0100 ? "SpinLock.swift:40" : nil }
    return n
  }

  @Test func spansAndHandOversComeFromThePairs() {
    let model = TraceModel(events: Self.events.reversed())  // any order in
    let holds = model.spans.filter { $0.kind == .hold }
    #expect(holds.map(\.lcpu) == [0, 1])
    #expect(holds.map(\.start) == [1_000, 1_600])
    #expect(holds.map(\.end) == [1_500, 2_000])
    let waits = model.spans.filter { $0.kind == .wait }
    #expect(waits.count == 2)
    #expect(waits[0].start == 1_100 && waits[0].end == 1_600)
    #expect(waits[0].holderThread == 7 && waits[0].holderLCPU == 0 && waits[0].holderSite == 0x10_0100)
    #expect(waits[1].end == nil, "a wait that never ends stays open")
    #expect(model.spans.filter { $0.kind == .irq }.map(\.end) == [1_300])
    #expect(model.flows.count == 1)
    let flow = model.flows.first
    #expect(flow?.fromLCPU == 0 && flow?.fromTSC == 1_500 && flow?.toLCPU == 1 && flow?.toTSC == 1_600)
    #expect(model.instants.map(\.kind) == [.contextSwitch, .timerFired])
  }

  @Test func aHandOverNeverGoesBackInTimeAcrossBatches() {
    // lcpu 0's ring is drained up to its second release before lcpu 1's contended acquire (older
    // than that release) arrives in the next batch.
    var model = TraceModel()
    let ring0 = Self.events.filter { $0.ring == 0 }
    model.append(
      ring0
        + [
          TraceEvent(
            ring: 0, position: 6, tsc: 1_900, kind: .lockAcquired, lcpu: 0, object: Self.lock, arg: 7),
          TraceEvent(
            ring: 0, position: 7, tsc: 1_950, kind: .lockReleased, lcpu: 0, object: Self.lock, arg: 7),
        ])
    model.append(Self.events.filter { $0.ring == 1 })
    #expect(model.flows.allSatisfy { $0.fromTSC <= $0.toTSC }, "\(model.flows)")
    #expect(model.spans.filter { $0.kind == .hold }.count == 3)
  }

  @Test func theChromeTraceParsesAndHasTheRequiredFields() throws {
    let data = try TraceExport.chrome(Self.events, tscPerMs: 1_000_000, names: Self.names, lost: 3)
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let events = try #require(json["traceEvents"] as? [[String: Any]])
    #expect((json["otherData"] as? [String: String])?["lost_records"] == "3")
    var flowStarts: [Int: [String: Any]] = [:]
    var flowEnds: [Int: [String: Any]] = [:]
    var named = Set<String>()
    for e in events {
      let ph = try #require(e["ph"] as? String)
      #expect(e["name"] is String)
      #expect(e["pid"] is Int && e["tid"] is Int)
      #expect(e["ts"] is Double || e["ts"] is Int)
      switch ph {
      case "X": #expect((e["dur"] as? Double ?? -1) >= 0)
      case "i": #expect(e["s"] as? String == "t")
      case "M":
        let args = try #require(e["args"] as? [String: String])
        if e["name"] as? String == "thread_name" || e["name"] as? String == "process_name" {
          named.insert("\(e["pid"]!)/\(e["tid"]!)")
          #expect(args["name"] != nil)
        }
      case "s": flowStarts[try #require(e["id"] as? Int)] = e
      case "f":
        flowEnds[try #require(e["id"] as? Int)] = e
        #expect(e["bp"] as? String == "e")
      default: Issue.record("unexpected phase \(ph)")
      }
    }
    // Every track that carries an event is named; flow ids pair up one to one.
    for e in events where (e["ph"] as? String) != "M" {
      #expect(named.contains("\(e["pid"]!)/\(e["tid"]!)"), "unnamed track \(e["pid"]!)/\(e["tid"]!)")
    }
    #expect(Set(flowStarts.keys) == Set(flowEnds.keys))
    #expect(flowStarts.count == 1)
    // The hand-over goes from lcpu 0 to lcpu 1, 0.1 ms apart at 1 GHz... 100 TSC = 0.1 µs.
    let start = try #require(flowStarts.values.first)
    let end = try #require(flowEnds.values.first)
    #expect(start["pid"] as? Int == 0 && end["pid"] as? Int == 1)
    #expect((end["ts"] as? Double ?? 0) > (start["ts"] as? Double ?? 0))
    // Names resolved: locks, threads, sites.
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.contains("hold work.spin") && text.contains("wait deadlock.A"))
    #expect(text.contains("SpinLock.swift:40"))
    #expect(text.contains("worker.2"))
  }

  /// The Chrome trace's events, parsed.
  static func chromeEvents(_ data: Data) throws -> [[String: Any]] {
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    return try #require(json["traceEvents"] as? [[String: Any]])
  }

  @Test func streamingInBatchesWritesWhatOneGoWrites() throws {
    // One event per batch: every span closes in a later batch than it opened, the hand-over's
    // waiter hold closes after the arrow was made, and a wait stays open to the end.
    var pieces = Data()
    let writer = ChromeTraceWriter(tscPerMs: 1_000_000, names: Self.names) { pieces.append($0) }
    for e in Self.events { try writer.append([e]) }
    try writer.finish(lost: 3)
    let whole = try TraceExport.chrome(Self.events, tscPerMs: 1_000_000, names: Self.names, lost: 3)
    func summary(_ events: [[String: Any]]) -> [String] {
      events.map { e in
        let ts = (e["ts"] as? NSNumber)?.doubleValue ?? -1
        let dur = (e["dur"] as? NSNumber)?.doubleValue ?? -1
        return "\(e["ph"] ?? "") \(e["name"] ?? "") \(e["pid"] ?? "")/\(e["tid"] ?? "") \(ts) \(dur)"
      }.sorted()
    }
    let streamed = try Self.chromeEvents(pieces)
    #expect(summary(streamed) == summary(try Self.chromeEvents(whole)))
    #expect(
      streamed.filter { $0["ph"] as? String == "s" }.count == 1, "the hand-over arrow survives batching")
    #expect(
      streamed.contains { ($0["args"] as? [String: String])?["open"] == "true" }, "the open wait is written")
  }

  @Test func sitesAreFileLineAndFunctionWhenTheLineIsKnown() throws {
    var names = Self.names
    names.locate = {
      $0 == 0x10_0200 ? TraceSite(fileLine: "Workload.swift:120", function: "Work.run()") : nil
    }
    let data = try TraceExport.chrome(Self.events, tscPerMs: 1_000_000, names: names, lost: 0)
    let spans = try Self.chromeEvents(data).filter { $0["ph"] as? String == "X" }
    let wait = try #require(spans.first { ($0["name"] as? String)?.hasPrefix("wait work.spin") == true })
    let args = try #require(wait["args"] as? [String: String])
    #expect(args["site"] == "Workload.swift:120" && args["function"] == "Work.run()")
    // The holder's site has no line here: it falls back to the symbolizer's text.
    #expect(args["holder_site"] == "SpinLock.swift:40" && args["holder_function"] == nil)
    let lines = TraceExport.jsonLines(Self.events, tscPerMs: 1_000_000, names: names)
    #expect(lines.contains("\"site_line\":\"Workload.swift:120\",\"function\":\"Work.run()\""))
  }

  @Test func jsonLinesAreOneObjectPerEvent() throws {
    let text = TraceExport.jsonLines(Self.events, tscPerMs: 1_000_000, names: Self.names)
    let lines = text.split(separator: "\n")
    #expect(lines.count == Self.events.count)
    for line in lines {
      let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      #expect(object["kind"] is String && object["tsc"] is Int && object["lcpu"] is Int)
    }
    #expect(text.contains("\"lock\":\"work.spin\""))
  }

  @Test func classesParseAndSpell() {
    #expect(TraceClasses(parsing: "all") == .all)
    #expect(TraceClasses(parsing: "locks,irq") == [.locks, .irq])
    #expect(TraceClasses(parsing: "off") == [])
    #expect(TraceClasses(parsing: "locks,bogus") == nil)
    #expect(TraceClasses([.sched, .locks]).spelled == "locks,sched")
    #expect(TraceClasses.all.spelled == "all")
  }
}

/// The export's JSON writer against Foundation's encoder and parser.
@Suite struct JSONTextTests {
  /// Strings with everything JSON must escape, and multibyte text.
  static let strings = [
    "", "plain", "quote \" and backslash \\", "tab\tnew\nline\rcr", "\u{0}\u{1}\u{1f}\u{7f}", "λ → ✓ 🧵",
    "/slash/", "lock 0x1f\u{8}",
  ]

  @Test func stringsRoundTripThroughJSONSerialization() throws {
    for s in Self.strings {
      var out = JSONText()
      out.raw("[")
      out.string(s)
      out.raw("]")
      let parsed = try #require(try JSONSerialization.jsonObject(with: Data(out.bytes)) as? [String])
      #expect(parsed == [s], "\(s.debugDescription)")
    }
  }

  @Test func numbersParseBackToTheirValues() throws {
    let doubles: [Double] = [0, 1, -1, 0.001, 1e-7, 123_456.789, 1e21, -0.5, .nan, .infinity]
    var out = JSONText()
    out.raw("[")
    for d in doubles {
      out.number(d)
      out.raw(",")
    }
    out.number(UInt64.max)
    out.raw(",")
    out.number(Int.min)
    out.raw(",")
    out.milli(12.3456)
    out.raw(",")
    out.milli(-0.0004)
    out.raw(",")
    out.milli(7)
    out.raw("]")
    let text = String(decoding: out.bytes, as: UTF8.self)
    let parsed = try #require(
      try JSONSerialization.jsonObject(with: Data(out.bytes)) as? [NSNumber], "\(text)")
    #expect(parsed.count == doubles.count + 5)
    for (d, n) in zip(doubles, parsed) { #expect(n.doubleValue == (d.isFinite ? d : 0), "\(d) in \(text)") }
    #expect(parsed[doubles.count].uint64Value == UInt64.max)
    #expect(parsed[doubles.count + 1].int64Value == Int64.min)
    #expect(text.hasSuffix(",12.346,0.000,7.000]"), "\(text)")
  }

  @Test func eventsEqualWhatJSONEncoderWrites() throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var events: [TraceExport.Event] = []
    for (i, s) in Self.strings.enumerated() {
      events.append(
        .init(
          name: s, cat: i % 2 == 0 ? "hold" : nil, ph: "X", ts: Double(i) * 1.25, dur: i % 3 == 0 ? nil : 0.5,
          pid: i, tid: -i, id: i % 2 == 1 ? i * 1000 : nil, bp: i == 3 ? "e" : nil, s: i == 4 ? "t" : nil,
          args: i == 0 ? nil : ["site": s, "a": "\(i)", "open": "false"]))
    }
    for e in events {
      var out = JSONText()
      e.write(to: &out)
      let mine = try JSONSerialization.jsonObject(with: Data(out.bytes)) as? NSDictionary
      let theirs = try JSONSerialization.jsonObject(with: try encoder.encode(e)) as? NSDictionary
      #expect(mine != nil && mine == theirs, "\(String(decoding: out.bytes, as: UTF8.self))")
      // Decoding our text gives the same event back.
      #expect(try JSONDecoder().decode(TraceExport.Event.self, from: Data(out.bytes)) == e)
    }
  }
}
