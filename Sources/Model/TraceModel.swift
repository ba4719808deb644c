/// A stretch of time on one lcpu: a lock held, a lock waited for, or an interrupt handler.
public struct TraceSpan: Sendable, Equatable, Codable {
  /// What the span is.
  public enum Kind: String, Sendable, Codable {
    /// A lock held (acquired → released).
    case hold
    /// A lock waited for (contend-begin → acquired).
    case wait
    /// An interrupt handler (enter → exit).
    case irq
  }
  /// What the span is.
  public var kind: Kind
  /// The lcpu it happens on.
  public var lcpu: UInt32
  /// Start (guest TSC).
  public var start: UInt64
  /// End (guest TSC), nil while it is still open at the end of what was read.
  public var end: UInt64?
  /// The lock's address, or the interrupt vector.
  public var object: UInt64
  /// The thread holding (hold) or waiting (wait), 0 = none / interrupt context.
  public var thread: UInt64
  /// The call site that took the lock (hold) or asked for it (wait), 0 = unknown.
  public var site: UInt64
  /// For a wait: the lcpu and thread that held the lock when the wait began, if known.
  public var holderLCPU: UInt32?
  /// For a wait: the holder thread when the wait began, if known.
  public var holderThread: UInt64?
  /// For a wait: the holder's acquire site when the wait began, if known.
  public var holderSite: UInt64?

  /// Creates a span.
  public init(
    kind: Kind, lcpu: UInt32, start: UInt64, end: UInt64?, object: UInt64, thread: UInt64 = 0,
    site: UInt64 = 0
  ) {
    self.kind = kind
    self.lcpu = lcpu
    self.start = start
    self.end = end
    self.object = object
    self.thread = thread
    self.site = site
  }
}

/// A hand-over: a release and the acquisition by a waiter it let go on.
public struct TraceFlow: Sendable, Equatable, Codable {
  /// Unique within a model.
  public var id: Int
  /// The lock.
  public var lock: UInt64
  /// The releasing lcpu and when.
  public var fromLCPU: UInt32
  /// When the lock was released.
  public var fromTSC: UInt64
  /// The waiter's lcpu.
  public var toLCPU: UInt32
  /// When the waiter acquired it.
  public var toTSC: UInt64
}

/// Spans, instants and hand-overs built from trace events: what the timeline pane and the
/// Chrome trace export show. Events are fed in batches (each drain's); pairs are matched per
/// lock and lcpu (holds), per lock and waiting thread/lcpu (waits) and per lcpu (interrupts).
public struct TraceModel: Sendable, Equatable {
  /// Closed and open spans, in the order they started within each batch.
  public private(set) var spans: [TraceSpan] = []
  /// Point events: switches, timer expiries, virtio kicks and interrupts, allocation failures.
  public private(set) var instants: [TraceEvent] = []
  /// Release → waiter's acquisition arrows.
  public private(set) var flows: [TraceFlow] = []
  /// Earliest and latest TSC seen (0 before any event).
  public private(set) var firstTSC: UInt64 = 0
  /// Latest TSC seen.
  public private(set) var lastTSC: UInt64 = 0
  /// Lcpus that have written events.
  public private(set) var lcpus: Set<UInt32> = []

  /// The id of the latest hand-over (ids stay unique when flows are taken out).
  private var nextFlowID = 0
  private var openHolds: [Key: Int] = [:]
  private var openWaits: [Key: Int] = [:]
  private var openIRQs: [UInt32: [Int]] = [:]
  private var lastRelease: [UInt64: (lcpu: UInt32, tsc: UInt64)] = [:]
  private var holder: [UInt64: (lcpu: UInt32, thread: UInt64, site: UInt64)] = [:]

  private struct Key: Hashable, Sendable {
    var object: UInt64
    var lcpu: UInt32
    var thread: UInt64
  }

  /// An empty model.
  public init() {}

  /// Builds a model from events in any order.
  public init(events: [TraceEvent]) {
    append(events)
  }

  public static func == (a: TraceModel, b: TraceModel) -> Bool {
    a.spans == b.spans && a.instants == b.instants && a.flows == b.flows
  }

  /// Adds a batch of events (sorted here by TSC, then ring and position).
  public mutating func append(_ batch: [TraceEvent]) {
    let sorted = batch.sorted { ($0.tsc, $0.ring, $0.position) < ($1.tsc, $1.ring, $1.position) }
    for e in sorted { add(e) }
  }

  private mutating func add(_ e: TraceEvent) {
    if firstTSC == 0 || e.tsc < firstTSC { firstTSC = e.tsc }
    if e.tsc > lastTSC { lastTSC = e.tsc }
    lcpus.insert(e.ring)
    lcpus.insert(e.lcpu)
    switch e.kind {
    case .lockContend:
      let key = Key(object: e.object, lcpu: e.lcpu, thread: e.arg)
      var span = TraceSpan(
        kind: .wait, lcpu: e.lcpu, start: e.tsc, end: nil, object: e.object, thread: e.arg, site: e.site)
      if let h = holder[e.object] {
        span.holderLCPU = h.lcpu
        span.holderThread = h.thread
        span.holderSite = h.site
      }
      openWaits[key] = spans.count
      spans.append(span)
    case .lockAcquired:
      let key = Key(object: e.object, lcpu: e.lcpu, thread: e.arg)
      if let w = openWaits.removeValue(forKey: key) {
        spans[w].end = e.tsc
        if spans[w].site == 0 { spans[w].site = e.site }
      }
      // A hand-over goes forward in time. Batches are sorted one at a time, so an acquire drained
      // late (its ring read after a later release on another ring) is older than the last
      // release seen: it got the lock from an earlier one, which is no longer known.
      if e.contended, let r = lastRelease[e.object], r.tsc <= e.tsc {
        nextFlowID += 1
        flows.append(
          TraceFlow(
            id: nextFlowID, lock: e.object, fromLCPU: r.lcpu, fromTSC: r.tsc, toLCPU: e.lcpu,
            toTSC: e.tsc))
      }
      let holdKey = Key(object: e.object, lcpu: e.lcpu, thread: 0)
      if let open = openHolds[holdKey] { spans[open].end = e.tsc }  // a release we never saw
      openHolds[holdKey] = spans.count
      spans.append(
        TraceSpan(
          kind: .hold, lcpu: e.lcpu, start: e.tsc, end: nil, object: e.object, thread: e.arg, site: e.site))
      holder[e.object] = (e.lcpu, e.arg, e.site)
    case .lockReleased:
      let holdKey = Key(object: e.object, lcpu: e.lcpu, thread: 0)
      if let open = openHolds.removeValue(forKey: holdKey) { spans[open].end = e.tsc }
      if (lastRelease[e.object]?.tsc ?? 0) <= e.tsc { lastRelease[e.object] = (e.lcpu, e.tsc) }
      holder[e.object] = nil
    case .irqEnter:
      openIRQs[e.lcpu, default: []].append(spans.count)
      spans.append(TraceSpan(kind: .irq, lcpu: e.lcpu, start: e.tsc, end: nil, object: e.object, site: e.arg))
    case .irqExit:
      if let i = openIRQs[e.lcpu]?.popLast() { spans[i].end = e.tsc }
    case .contextSwitch, .timerFired, .virtioKick, .virtioInterrupt, .allocFailure:
      instants.append(e)
    }
  }

  /// Drops spans that ended and instants that happened before `tsc` (keeps memory bounded for
  /// a live view); open spans stay.
  public mutating func forget(before tsc: UInt64) {
    keepSpans { $0.end.map { $0 >= tsc } ?? true }
    instants.removeAll { $0.tsc < tsc }
    flows.removeAll { $0.toTSC < tsc }
  }

  /// Takes out every closed span, every instant and every hand-over (for a writer that streams
  /// them); open spans stay, and pairing goes on with the next events.
  public mutating func takeFinished() -> (spans: [TraceSpan], instants: [TraceEvent], flows: [TraceFlow]) {
    let closed = spans.filter { $0.end != nil }
    keepSpans { $0.end == nil }
    defer {
      instants = []
      flows = []
    }
    return (closed, instants, flows)
  }

  /// Keeps the spans `keep` says yes to, renumbering the open pairs' references.
  private mutating func keepSpans(_ keep: (TraceSpan) -> Bool) {
    let kept = spans.indices.filter { keep(spans[$0]) }
    guard kept.count < spans.count else { return }
    var newIndex: [Int: Int] = [:]
    for (n, old) in kept.enumerated() { newIndex[old] = n }
    spans = kept.map { spans[$0] }
    openHolds = openHolds.compactMapValues { newIndex[$0] }
    openWaits = openWaits.compactMapValues { newIndex[$0] }
    openIRQs = openIRQs.mapValues { $0.compactMap { newIndex[$0] } }
  }
}
