import Foundation

/// Names for what trace events refer to: locks, threads, code sites, virtqueues.
public struct TraceNames: Sendable {
  /// Lock name by lock address.
  public var locks: [UInt64: String] = [:]
  /// Thread name by thread id.
  public var threads: [UInt64: String] = [:]
  /// Virtqueue label by its record address.
  public var queues: [UInt64: String] = [:]
  /// Turns a code address into `symbol` or `file:line` (nil = unknown).
  public var site: @Sendable (UInt64) -> String? = { _ in nil }

  /// Empty names.
  public init() {}

  /// Names taken from a snapshot (locks and threads).
  public init(snapshot: Snapshot, site: @escaping @Sendable (UInt64) -> String? = { _ in nil }) {
    for lock in snapshot.locks { locks[lock.address] = lock.name }
    for thread in snapshot.threads { threads[thread.id] = thread.name }
    self.site = site
  }

  /// A lock's name, or its address.
  public func lock(_ address: UInt64) -> String { locks[address] ?? "lock 0x\(String(address, radix: 16))" }
  /// A thread's name, `idle`/`irq` for 0, or its id.
  public func thread(_ id: UInt64) -> String { id == 0 ? "-" : threads[id] ?? "thread \(id)" }
  /// A code site as text, or its address, or `?`.
  public func siteText(_ address: UInt64) -> String {
    address == 0 ? "?" : site(address) ?? "0x\(String(address, radix: 16))"
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
  }

  /// The file: events plus a note of what was lost.
  public struct File: Codable, Sendable {
    /// All events.
    public var traceEvents: [Event]
    /// Time unit the viewer shows.
    public var displayTimeUnit: String
    /// Loss and rate information.
    public var otherData: [String: String]
  }

  /// Process id of the guest-threads process.
  static let threadsPid = 1000
  /// Track ids inside an lcpu process.
  static let irqTid = 1
  /// Track of instants.
  static let eventsTid = 2
  /// First lock lane.
  static let firstLockTid = 10

  /// Builds the Chrome trace for `model`.
  public static func chrome(
    _ model: TraceModel, tscPerMs: UInt64, names: TraceNames, lost: UInt64, otherData: [String: String] = [:]
  ) -> File {
    let base = model.firstTSC
    let perUs = Double(max(tscPerMs, 1)) / 1000
    func us(_ tsc: UInt64) -> Double { Double(tsc &- base) / perUs }
    let endTSC = model.lastTSC
    var out: [Event] = []
    let lcpus = model.lcpus.sorted()
    for l in lcpus {
      let pid = Int(l)
      out.append(Event(name: "process_name", ph: "M", ts: 0, pid: pid, tid: 0, args: ["name": "lcpu \(l)"]))
      out.append(
        Event(name: "process_sort_index", ph: "M", ts: 0, pid: pid, tid: 0, args: ["sort_index": "\(l)"]))
      out.append(Event(name: "thread_name", ph: "M", ts: 0, pid: pid, tid: irqTid, args: ["name": "irq"]))
      out.append(
        Event(name: "thread_name", ph: "M", ts: 0, pid: pid, tid: eventsTid, args: ["name": "events"]))
    }
    // Lock spans, packed into lanes per lcpu.
    var laneEnds: [UInt32: [UInt64]] = [:]
    var laneOf: [Int: Int] = [:]  // span index -> tid
    let order = model.spans.indices.sorted { model.spans[$0].start < model.spans[$1].start }
    for i in order {
      let span = model.spans[i]
      let end = span.end ?? endTSC
      switch span.kind {
      case .irq:
        out.append(
          Event(
            name: "irq 0x\(String(span.object, radix: 16))", cat: "irq", ph: "X", ts: us(span.start),
            dur: us(end) - us(span.start), pid: Int(span.lcpu), tid: irqTid,
            args: [
              "vector": "\(span.object)", "interrupted": names.siteText(span.site),
              "open": "\(span.end == nil)",
            ]))
      case .hold, .wait:
        var lanes = laneEnds[span.lcpu, default: []]
        let lane = lanes.firstIndex { $0 <= span.start } ?? lanes.count
        if lane == lanes.count { lanes.append(end) } else { lanes[lane] = end }
        laneEnds[span.lcpu] = lanes
        let tid = firstLockTid + lane
        laneOf[i] = tid
        var args = [
          "lock": names.lock(span.object), "thread": names.thread(span.thread),
          "site": names.siteText(span.site),
          "open": "\(span.end == nil)",
        ]
        if span.kind == .wait {
          if let h = span.holderThread { args["holder"] = names.thread(h) }
          if let h = span.holderLCPU { args["holder_lcpu"] = "\(h)" }
          if let h = span.holderSite { args["holder_site"] = names.siteText(h) }
        }
        out.append(
          Event(
            name: "\(span.kind.rawValue) \(names.lock(span.object))", cat: span.kind.rawValue, ph: "X",
            ts: us(span.start), dur: max(us(end) - us(span.start), 0), pid: Int(span.lcpu), tid: tid,
            args: args))
      }
    }
    for (l, lanes) in laneEnds {
      for lane in lanes.indices {
        out.append(
          Event(
            name: "thread_name", ph: "M", ts: 0, pid: Int(l), tid: firstLockTid + lane,
            args: ["name": "locks \(lane)"]))
      }
    }
    // Instants.
    for e in model.instants {
      let (name, args) = describe(e, names)
      out.append(
        Event(
          name: name, cat: e.kind.name, ph: "i", ts: us(e.tsc), pid: Int(e.ring), tid: eventsTid, s: "t",
          args: args))
    }
    // Hand-over arrows: from the releaser's hold of the lock to the waiter's new hold.
    struct End: Hashable {
      var lock: UInt64
      var lcpu: UInt32
      var tsc: UInt64
    }
    var holdByEnd: [End: Int] = [:]
    var holdByStart: [End: Int] = [:]
    for i in model.spans.indices where model.spans[i].kind == .hold {
      let s = model.spans[i]
      if let end = s.end { holdByEnd[End(lock: s.object, lcpu: s.lcpu, tsc: end)] = i }
      holdByStart[End(lock: s.object, lcpu: s.lcpu, tsc: s.start)] = i
    }
    for flow in model.flows {
      guard let from = holdByEnd[End(lock: flow.lock, lcpu: flow.fromLCPU, tsc: flow.fromTSC)],
        let fromTid = laneOf[from],
        let to = holdByStart[End(lock: flow.lock, lcpu: flow.toLCPU, tsc: flow.toTSC)], let toTid = laneOf[to]
      else { continue }
      let start = model.spans[from]
      // A flow start binds to the slice enclosing its timestamp: just inside the hold's end.
      let ts = max(us(start.start), us(flow.fromTSC) - 0.001)
      out.append(
        Event(
          name: "handoff", cat: "handoff", ph: "s", ts: ts, pid: Int(flow.fromLCPU), tid: fromTid, id: flow.id
        ))
      out.append(
        Event(
          name: "handoff", cat: "handoff", ph: "f", ts: us(flow.toTSC), pid: Int(flow.toLCPU), tid: toTid,
          id: flow.id, bp: "e"))
    }
    // Guest threads: one named track each, a span per stretch it ran.
    var threadIDs = Set<UInt64>()
    var running: [UInt32: (UInt64, UInt64)] = [:]  // lcpu -> (thread, since)
    var ran: [(UInt64, UInt32, UInt64, UInt64)] = []
    for e in model.instants where e.kind == .contextSwitch {
      if let (t, since) = running[e.ring], t != 0 { ran.append((t, e.ring, since, e.tsc)) }
      running[e.ring] = (e.object, e.tsc)
      if e.object != 0 { threadIDs.insert(e.object) }
    }
    for (l, (t, since)) in running where t != 0 { ran.append((t, l, since, endTSC)) }
    if !threadIDs.isEmpty {
      out.append(
        Event(name: "process_name", ph: "M", ts: 0, pid: threadsPid, tid: 0, args: ["name": "threads"]))
      for t in threadIDs.sorted() {
        out.append(
          Event(
            name: "thread_name", ph: "M", ts: 0, pid: threadsPid, tid: Int(t), args: ["name": names.thread(t)]
          ))
      }
      for (t, l, from, to) in ran {
        out.append(
          Event(
            name: "on lcpu \(l)", cat: "run", ph: "X", ts: us(from), dur: us(to) - us(from), pid: threadsPid,
            tid: Int(t), args: ["lcpu": "\(l)"]))
      }
    }
    var other = otherData
    other["lost_records"] = "\(lost)"
    other["tsc_per_ms"] = "\(tscPerMs)"
    other["first_tsc"] = "\(base)"
    return File(traceEvents: out, displayTimeUnit: "ns", otherData: other)
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

  /// Encodes a Chrome trace file.
  public static func encode(_ file: File) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try encoder.encode(file)
  }

  /// One JSON object per event (a line each), with names resolved.
  public static func jsonLines(_ events: [TraceEvent], tscPerMs: UInt64, names: TraceNames) -> String {
    let perUs = Double(max(tscPerMs, 1)) / 1000
    let base = events.map(\.tsc).min() ?? 0
    var text = ""
    for e in events.sorted(by: { ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position) }) {
      var fields: [(String, String)] = [
        ("ring", "\(e.ring)"), ("position", "\(e.position)"), ("tsc", "\(e.tsc)"),
        ("us", String(format: "%.3f", Double(e.tsc - base) / perUs)), ("kind", quote(e.kind.name)),
        ("lcpu", "\(e.lcpu)"), ("object", "\(e.object)"), ("arg", "\(e.arg)"), ("arg2", "\(e.arg2)"),
        ("site", "\(e.site)"),
      ]
      switch e.kind {
      case .lockContend, .lockAcquired, .lockReleased:
        fields.append(("lock", quote(names.lock(e.object))))
        fields.append(("thread", quote(names.thread(e.arg))))
        if e.site != 0 { fields.append(("where", quote(names.siteText(e.site)))) }
      case .contextSwitch:
        fields.append(("from", quote(names.thread(e.arg))))
        fields.append(("to", quote(names.thread(e.object))))
      default: break
      }
      text += "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
    }
    return text
  }

  /// A JSON string literal.
  static func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
      }
    }
    return out + "\""
  }
}
