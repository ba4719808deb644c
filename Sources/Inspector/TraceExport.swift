import Foundation

extension Target {
  /// Names for trace events from `snapshot`: sites as `File.swift:27 in function` through the
  /// kernel's DWARF (the Where feature's line lookup), `symbol+0x1a` without it.
  public func traceNames(snapshot: Snapshot?) -> TraceNames {
    var names = TraceNames()
    if let snapshot { names.add(snapshot) }
    names.site = makeSymbolizer()
    names.locate = makeSiteLocator()
    return names
  }

  /// A thread-safe lookup of a code address's source line, nil without DWARF for it. An
  /// address right after a call (an acquire site is a return address) names the call's line.
  public func makeSiteLocator() -> @Sendable (UInt64) -> TraceSite? {
    let display = symbolDisplay()
    return { display.site($0) }
  }
}

/// Chrome Trace Event JSON (what Perfetto UI and chrome://tracing open) and JSON lines.
///
/// Layout: one process per lcpu (`lcpu N`), with tracks (threads) inside it: `irq` for
/// interrupt handlers, `events` for instants (switches, timer expiries, virtio, allocation
/// failures) and as many `locks K` lanes as overlapping lock spans need (spans in one lane
/// never overlap, so every viewer nests them correctly). Guest threads get a process of
/// their own (`threads`) with one named track per thread showing when it ran. Flow arrows
/// (`s`/`f`, category `handoff`) lead from a release to the waiter's acquisition.
public enum TraceExport {
  /// One Chrome trace event.
  public struct Event: Codable, Sendable, Equatable {
    /// Event name.
    public var name: String
    /// Category.
    public var cat: String?
    /// Phase: X, i, M, s, f.
    public var ph: String
    /// Timestamp in microseconds.
    public var ts: Double
    /// Duration in microseconds (X).
    public var dur: Double?
    /// Process id.
    public var pid: Int
    /// Thread id.
    public var tid: Int
    /// Flow id (s, f).
    public var id: Int?
    /// Flow binding point (`e` = enclosing slice of the next event).
    public var bp: String?
    /// Instant scope (`t` = thread).
    public var s: String?
    /// Arguments shown in the viewer.
    public var args: [String: String]?

    /// Appends this event as a JSON object, keys sorted as `JSONEncoder`'s `.sortedKeys` orders them.
    func write(to out: inout JSONText) {
      out.byte(UInt8(ascii: "{"))
      if let args {
        out.key("args")
        out.object(args)
        out.byte(UInt8(ascii: ","))
      }
      out.member("bp", bp)
      out.member("cat", cat)
      out.member("dur", dur)
      out.member("id", id)
      out.key("name")
      out.string(name)
      out.raw(",\"ph\":")
      out.string(ph)
      out.raw(",\"pid\":")
      out.number(pid)
      if let s {
        out.raw(",\"s\":")
        out.string(s)
      }
      out.raw(",\"tid\":")
      out.number(tid)
      out.raw(",\"ts\":")
      out.number(ts)
      out.byte(UInt8(ascii: "}"))
    }
  }

  /// Process id of the guest-threads process.
  static let threadsPid = 1000
  /// Track ids inside an lcpu process.
  static let irqTid = 1
  /// Track of instants.
  static let eventsTid = 2
  /// First lock lane.
  static let firstLockTid = 10

  /// The Chrome trace of `events` (any order), in memory: what `ChromeTraceWriter` streams.
  public static func chrome(
    _ events: [TraceEvent], tscPerMs: UInt64, names: TraceNames, lost: UInt64,
    otherData: [String: String] = [:]
  ) throws -> Data {
    var data = Data()
    let writer = ChromeTraceWriter(tscPerMs: tscPerMs, names: names) { data.append($0) }
    try writer.append(events)
    try writer.finish(lost: lost, otherData: otherData)
    return data
  }

  /// Name and arguments of an instant.
  static func describe(_ e: TraceEvent, _ names: TraceNames) -> (String, [String: String]) {
    switch e.kind {
    case .contextSwitch:
      return (
        "switch \(names.thread(e.arg)) → \(names.thread(e.object))",
        ["from": names.thread(e.arg), "to": names.thread(e.object)]
      )
    case .timerFired:
      return (
        "timer", ["owner": names.thread(e.object), "late_tsc": "\(e.arg)", "deadline_tsc": "\(e.arg2)"]
      )
    case .virtioKick:
      return (
        "kick \(names.queues[e.object] ?? "queue")",
        ["queue": "0x\(String(e.object, radix: 16))", "avail": "\(e.arg)"]
      )
    case .virtioInterrupt:
      return (
        "virtio irq \(names.queues[e.object] ?? "queue")",
        ["queue": "0x\(String(e.object, radix: 16))", "vector": "\(e.arg)"]
      )
    case .allocFailure:
      return ("alloc failure", ["order": "\(e.object)", "bytes": "\(e.arg)"])
    default:
      return (e.kind.name, [:])
    }
  }

  /// One JSON object per event (a line each), with names resolved.
  /// `base` is the TSC of `us` 0 (default: the earliest event's); a writer that streams batches
  /// passes the first batch's so every line shares it.
  public static func jsonLines(
    _ events: [TraceEvent], tscPerMs: UInt64, names: TraceNames, base: UInt64? = nil
  ) -> String {
    String(decoding: jsonLineBytes(events, tscPerMs: tscPerMs, names: names, base: base), as: UTF8.self)
  }

  /// `jsonLines` as UTF-8 bytes, for writing straight to a file.
  public static func jsonLineBytes(
    _ events: [TraceEvent], tscPerMs: UInt64, names: TraceNames, base: UInt64? = nil
  ) -> [UInt8] {
    let perUs = Double(max(tscPerMs, 1)) / 1000
    let base = base ?? events.map(\.tsc).min() ?? 0
    var out = JSONText(capacity: events.count * 200)
    for e in events.sorted(by: { ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position) }) {
      out.raw("{\"ring\":")
      out.number(UInt64(e.ring))
      out.raw(",\"position\":")
      out.number(e.position)
      out.raw(",\"tsc\":")
      out.number(e.tsc)
      out.raw(",\"us\":")
      out.milli(Double(Int64(bitPattern: e.tsc &- base)) / perUs)
      out.raw(",\"kind\":")
      out.string(e.kind.name)
      out.raw(",\"lcpu\":")
      out.number(UInt64(e.lcpu))
      out.raw(",\"object\":")
      out.number(e.object)
      out.raw(",\"arg\":")
      out.number(e.arg)
      out.raw(",\"arg2\":")
      out.number(e.arg2)
      out.raw(",\"site\":")
      out.number(e.site)
      switch e.kind {
      case .lockContend, .lockAcquired, .lockReleased:
        out.raw(",\"lock\":")
        out.string(names.lock(e.object))
        out.raw(",\"thread\":")
        out.string(names.thread(e.arg))
        if e.site != 0 {
          out.raw(",\"where\":")
          out.string(names.siteText(e.site))
          if let l = names.locate(e.site) {
            out.raw(",\"site_line\":")
            out.string(l.fileLine)
            out.raw(",\"function\":")
            out.string(l.function)
          }
        }
      case .contextSwitch:
        out.raw(",\"from\":")
        out.string(names.thread(e.arg))
        out.raw(",\"to\":")
        out.string(names.thread(e.object))
      default: break
      }
      out.raw("}\n")
    }
    return out.bytes
  }
}

/// Writes a Chrome trace as the events arrive, keeping only what is still open (spans not yet
/// closed, hand-overs whose waiter still holds the lock): memory stays bounded however long
/// the run. Feed each drain's batch to `append`, then call `finish` once.
///
/// Lock spans go to the first `locks K` lane of their lcpu whose latest span ended before they
/// start (spans are placed as they close, so lanes never hold overlapping spans).
public final class ChromeTraceWriter {
  /// Names for locks, threads and sites; may grow between batches.
  public var names: TraceNames
  /// Events written so far (metadata included).
  public private(set) var written = 0
  let tscPerMs: UInt64
  let sink: (Data) throws -> Void
  var model = TraceModel()
  var base: UInt64?
  var buffer = JSONText(capacity: 1 << 20)
  var lcpusNamed = Set<UInt32>()
  var laneEnds: [UInt32: [UInt64]] = [:]
  /// Recent holds per lock and lcpu (start, end, lane), for the start of hand-over arrows.
  var recentHolds: [HoldKey: [(start: UInt64, end: UInt64, tid: Int)]] = [:]
  /// Hand-overs waiting for the waiter's hold to close (it gives the arrow's end track).
  var pendingFlows: [SpanEnd: [(id: Int, fromLCPU: UInt32, fromTid: Int, ts: Double)]] = [:]
  /// The thread running on each lcpu and since when, from context switches.
  var running: [UInt32: (thread: UInt64, since: UInt64)] = [:]
  var threadsNamed = Set<UInt64>()

  struct HoldKey: Hashable {
    var lock: UInt64
    var lcpu: UInt32
  }

  struct SpanEnd: Hashable {
    var lock: UInt64
    var lcpu: UInt32
    var tsc: UInt64
  }

  /// Creates a writer that hands `sink` the file's bytes in pieces.
  public init(tscPerMs: UInt64, names: TraceNames, sink: @escaping (Data) throws -> Void) {
    self.tscPerMs = tscPerMs
    self.names = names
    self.sink = sink
  }

  /// Microseconds since the first event.
  func us(_ tsc: UInt64) -> Double {
    Double(Int64(bitPattern: tsc &- (base ?? tsc))) / (Double(max(tscPerMs, 1)) / 1000)
  }

  func emit(_ event: TraceExport.Event) throws {
    if written == 0 {
      buffer.raw(#"{"displayTimeUnit":"ns","traceEvents":["#)
    } else {
      buffer.byte(UInt8(ascii: ","))
    }
    event.write(to: &buffer)
    written += 1
    if buffer.bytes.count >= 1 << 20 { try flush() }
  }

  func flush() throws {
    guard !buffer.bytes.isEmpty else { return }
    try sink(Data(buffer.bytes))
    buffer.bytes.removeAll(keepingCapacity: true)
  }

  /// Adds a batch of events (one drain's); writes every span, instant and arrow it completes.
  public func append(_ events: [TraceEvent]) throws {
    guard !events.isEmpty else { return }
    if base == nil { base = events.map(\.tsc).min() }
    model.append(events)
    try nameLCPUs()
    let done = model.takeFinished()
    try write(done.spans.sorted { ($0.end ?? 0, $0.start) < ($1.end ?? 0, $1.start) }, flows: done.flows)
    try write(instants: done.instants)
  }

  /// Writes what is still open (as spans up to the last event, `open` true), the threads'
  /// last stretches and the closing part of the file.
  public func finish(lost: UInt64, otherData: [String: String] = [:]) throws {
    let last = model.lastTSC
    var open = model.spans
    for i in open.indices { open[i].end = last }
    try write(open.sorted { $0.start < $1.start }, flows: [], open: true)
    for (l, r) in running.sorted(by: { $0.key < $1.key }) where r.thread != 0 {
      try writeRun(thread: r.thread, lcpu: l, from: r.since, to: last)
    }
    if written == 0 { buffer.raw(#"{"displayTimeUnit":"ns","traceEvents":["#) }
    var other = otherData
    other["lost_records"] = "\(lost)"
    other["tsc_per_ms"] = "\(tscPerMs)"
    other["first_tsc"] = "\(base ?? 0)"
    buffer.raw(#"],"otherData":"#)
    buffer.object(other)
    buffer.byte(UInt8(ascii: "}"))
    try flush()
  }

  func nameLCPUs() throws {
    for l in model.lcpus.sorted() where !lcpusNamed.contains(l) {
      lcpusNamed.insert(l)
      let pid = Int(l)
      try emit(.init(name: "process_name", ph: "M", ts: 0, pid: pid, tid: 0, args: ["name": "lcpu \(l)"]))
      try emit(
        .init(name: "process_sort_index", ph: "M", ts: 0, pid: pid, tid: 0, args: ["sort_index": "\(l)"]))
      try emit(
        .init(name: "thread_name", ph: "M", ts: 0, pid: pid, tid: TraceExport.irqTid, args: ["name": "irq"]))
      try emit(
        .init(
          name: "thread_name", ph: "M", ts: 0, pid: pid, tid: TraceExport.eventsTid, args: ["name": "events"])
      )
    }
  }

  /// Writes closed spans (in the order given) and then the hand-overs among them.
  /// `open`: the spans are still open (written up to the last event).
  func write(_ spans: [TraceSpan], flows: [TraceFlow], open isOpen: Bool = false) throws {
    var startedHere: [SpanEnd: Int] = [:]
    for span in spans {
      let end = span.end ?? model.lastTSC
      switch span.kind {
      case .irq:
        try emit(
          .init(
            name: "irq 0x\(String(span.object, radix: 16))", cat: "irq", ph: "X", ts: us(span.start),
            dur: max(us(end) - us(span.start), 0), pid: Int(span.lcpu), tid: TraceExport.irqTid,
            args: ["vector": "\(span.object)", "interrupted": names.siteText(span.site), "open": "\(isOpen)"])
        )
      case .hold, .wait:
        var lanes = laneEnds[span.lcpu, default: []]
        let lane = lanes.firstIndex { $0 <= span.start } ?? lanes.count
        if lane == lanes.count {
          lanes.append(end)
          try emit(
            .init(
              name: "thread_name", ph: "M", ts: 0, pid: Int(span.lcpu), tid: TraceExport.firstLockTid + lane,
              args: ["name": "locks \(lane)"]))
        } else {
          lanes[lane] = max(lanes[lane], end)
        }
        laneEnds[span.lcpu] = lanes
        let tid = TraceExport.firstLockTid + lane
        var args = [
          "lock": names.lock(span.object), "thread": names.thread(span.thread), "open": "\(isOpen)",
        ]
        args.merge(names.siteArgs(span.site)) { a, _ in a }
        if span.kind == .wait {
          if let h = span.holderThread { args["holder"] = names.thread(h) }
          if let h = span.holderLCPU { args["holder_lcpu"] = "\(h)" }
          if let h = span.holderSite { args.merge(names.siteArgs(h, prefix: "holder_")) { a, _ in a } }
        }
        try emit(
          .init(
            name: "\(span.kind.rawValue) \(names.lock(span.object))", cat: span.kind.rawValue, ph: "X",
            ts: us(span.start), dur: max(us(end) - us(span.start), 0), pid: Int(span.lcpu), tid: tid,
            args: args))
        guard span.kind == .hold else { continue }
        let key = HoldKey(lock: span.object, lcpu: span.lcpu)
        var recent = recentHolds[key, default: []]
        recent.append((span.start, end, tid))
        if recent.count > 16 { recent.removeFirst(recent.count - 16) }
        recentHolds[key] = recent
        let start = SpanEnd(lock: span.object, lcpu: span.lcpu, tsc: span.start)
        startedHere[start] = tid
        // Arrows that waited for this hold (the waiter's) to close.
        for f in pendingFlows.removeValue(forKey: start) ?? [] {
          try writeFlow(
            id: f.id, fromLCPU: f.fromLCPU, fromTid: f.fromTid, fromTS: f.ts, to: start, toTid: tid)
        }
      }
    }
    for flow in flows {
      // The releaser's hold of the lock ended at the release.
      guard
        let from = recentHolds[HoldKey(lock: flow.lock, lcpu: flow.fromLCPU)]?.last(where: {
          $0.end == flow.fromTSC
        })
      else { continue }
      // A flow start binds to the slice enclosing its timestamp: just inside the hold's end.
      let ts = max(us(from.start), us(flow.fromTSC) - 0.001)
      let to = SpanEnd(lock: flow.lock, lcpu: flow.toLCPU, tsc: flow.toTSC)
      if let toTid = startedHere[to] {
        try writeFlow(
          id: flow.id, fromLCPU: flow.fromLCPU, fromTid: from.tid, fromTS: ts, to: to, toTid: toTid)
      } else {
        pendingFlows[to, default: []].append((flow.id, flow.fromLCPU, from.tid, ts))
      }
    }
  }

  func writeFlow(id: Int, fromLCPU: UInt32, fromTid: Int, fromTS: Double, to: SpanEnd, toTid: Int) throws {
    try emit(
      .init(name: "handoff", cat: "handoff", ph: "s", ts: fromTS, pid: Int(fromLCPU), tid: fromTid, id: id))
    try emit(
      .init(
        name: "handoff", cat: "handoff", ph: "f", ts: us(to.tsc), pid: Int(to.lcpu), tid: toTid, id: id,
        bp: "e"))
  }

  /// Writes instants, and the guest threads' stretches on an lcpu as context switches end them.
  func write(instants: [TraceEvent]) throws {
    for e in instants {
      let (name, args) = TraceExport.describe(e, names)
      try emit(
        .init(
          name: name, cat: e.kind.name, ph: "i", ts: us(e.tsc), pid: Int(e.ring), tid: TraceExport.eventsTid,
          s: "t",
          args: args))
      guard e.kind == .contextSwitch else { continue }
      if let r = running[e.ring], r.thread != 0 {
        try writeRun(thread: r.thread, lcpu: e.ring, from: r.since, to: e.tsc)
      }
      running[e.ring] = (e.object, e.tsc)
    }
  }

  /// One stretch of a guest thread on an lcpu, on the thread's own named track.
  func writeRun(thread: UInt64, lcpu: UInt32, from: UInt64, to: UInt64) throws {
    let tid = Int(truncatingIfNeeded: thread)
    if threadsNamed.isEmpty {
      try emit(
        .init(
          name: "process_name", ph: "M", ts: 0, pid: TraceExport.threadsPid, tid: 0, args: ["name": "threads"]
        ))
    }
    if threadsNamed.insert(thread).inserted {
      try emit(
        .init(
          name: "thread_name", ph: "M", ts: 0, pid: TraceExport.threadsPid, tid: tid,
          args: ["name": names.thread(thread)]))
    }
    try emit(
      .init(
        name: "on lcpu \(lcpu)", cat: "run", ph: "X", ts: us(from), dur: max(us(to) - us(from), 0),
        pid: TraceExport.threadsPid, tid: tid, args: ["lcpu": "\(lcpu)"]))
  }
}
