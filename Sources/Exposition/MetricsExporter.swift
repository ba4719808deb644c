import Model
import Prometheus
import NIOConcurrencyHelpers

/// Mirrors snapshots of one or more targets into a Prometheus registry and renders the text exposition.
///
/// Guest counters are exposed as Prometheus counters equal to the guest's own values: each update
/// adds the difference since the previous one, and a value that went back (a rebooted guest, a lock
/// that was freed and made again) resets the counter first, which is how Prometheus expects a
/// counter reset to look. The timer lateness histogram gets the guest's new observations bucket by
/// bucket. A target that cannot be read exposes `smptop_target_up 0` and none of its other series.
public final class MetricsExporter: Sendable {
  /// The registry the exposition is rendered from.
  private let registry = PrometheusCollectorRegistry()
  /// What was last mirrored, per target.
  private let state = NIOLockedValueBox<[String: TargetState]>([:])
  /// How far apart two snapshots must be before the busy ratio's baseline moves on, in nanoseconds.
  public let ratioWindowNanoseconds: UInt64

  /// An exporter; the busy ratio covers at least `ratioWindowSeconds` of host time once it is known.
  public init(ratioWindowSeconds: Double = 1) {
    ratioWindowNanoseconds = UInt64(max(0, ratioWindowSeconds) * 1e9)
  }

  /// Records that `target` is up, with a fresh snapshot.
  public func update(target: String, snapshot: Snapshot) {
    state.withLockedValue { all in
      var s = all[target] ?? TargetState()
      mirror(target: target, snapshot: snapshot, into: &s)
      all[target] = s
    }
  }

  /// Records that `target` could not be read: `smptop_target_up 0`, its other series removed.
  public func markDown(target: String) {
    state.withLockedValue { all in
      var s = all[target] ?? TargetState()
      removeSeries(of: &s)
      s.baseline = nil
      gauge(Self.up, [("target", target)], &s, keep: false).set(to: 0.0)
      all[target] = s
    }
  }

  /// A snapshot to measure the busy ratio from, taken before the first scrape.
  public func setBaseline(target: String, snapshot: Snapshot) {
    state.withLockedValue { all in
      var s = all[target] ?? TargetState()
      s.baseline = snapshot
      all[target] = s
    }
  }

  /// The text exposition (format version 0.0.4) of everything mirrored so far.
  public func render() -> String {
    state.withLockedValue { _ in registry.emitToString() }
  }

  // MARK: - Names

  static var up: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", metricName: "target", unitName: "up",
      helpText: "1 when the target's guest memory was read, else 0.")
  }
  static var lockAcquisitions: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "lock", metricName: "acquisitions", unitName: "total",
      helpText: "Acquisitions of the lock since the guest booted.")
  }
  static var lockContended: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "lock", metricName: "contended", unitName: "total",
      helpText: "Acquisitions that had to wait because the lock was held.")
  }
  static var lockWait: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "lock", metricName: "wait", unitName: "seconds_total",
      helpText: "Time spent waiting for the lock, summed over contended acquisitions.")
  }
  static var lcpuBusy: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "lcpu", metricName: "busy", unitName: "ratio",
      helpText: "Share of guest time the lcpu was BUSY since the previous baseline (0 to 1).")
  }
  static var lcpuIRQs: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "lcpu", metricName: "interrupts", unitName: "total",
      helpText: "Interrupts the lcpu took, by kind.")
  }
  static var allocFree: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "alloc", metricName: "free", unitName: "blocks",
      helpText: "Free blocks of the buddy order.")
  }
  static var allocUsed: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "alloc", metricName: "used", unitName: "blocks",
      helpText: "Blocks of the buddy order in use.")
  }
  static var virtqPackets: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "virtqueue", metricName: "packets", unitName: "total",
      helpText: "Packets the guest driver moved through the virtqueue.")
  }
  static var virtqBytes: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "virtqueue", metricName: "bytes", unitName: "total",
      helpText: "Bytes the guest driver moved through the virtqueue.")
  }
  static var timerLateness: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "timer", metricName: "lateness", unitName: "seconds",
      helpText: "How late timers fired after their deadline.")
  }
  static var timersFired: MetricNameDescriptor {
    MetricNameDescriptor(
      namespace: "smptop", subsystem: "timer", metricName: "fired", unitName: "total",
      helpText: "Timers fired on the lcpu.")
  }

  /// The upper bounds of the guest's lateness histogram buckets (<1µs … <1s; the last bucket is ≥1s).
  public static let latenessBounds: [Double] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1]

  // MARK: - Mirroring

  /// What one target's series were last set to.
  struct TargetState {
    var counters: [SeriesKey: (Counter, Double)] = [:]
    var gauges: [SeriesKey: Gauge] = [:]
    var histograms: [SeriesKey: (ValueHistogram, [UInt64], UInt64)] = [:]
    var baseline: Snapshot?
    /// Series touched by the current update; the rest are removed after it.
    var touched = Set<SeriesKey>()
  }

  /// A metric name and its label set, as a dictionary key.
  struct SeriesKey: Hashable {
    var name: String
    var labels: [String]

    init(_ name: String, _ labels: [(String, String)]) {
      self.name = name
      self.labels = labels.flatMap { [$0.0, $0.1] }
    }
  }

  private func mirror(target: String, snapshot snap: Snapshot, into s: inout TargetState) {
    s.touched = []
    let t = ("target", target)
    gauge(Self.up, [t], &s).set(to: 1.0)
    let clock = snap.clock

    // Locks, summed by (name, kind): several dynamic locks may share a name.
    var locks: [[String]: (UInt64, UInt64, UInt64)] = [:]
    for l in snap.locks {
      if case .unreadable = l.consistency { continue }
      let key = [l.name, l.kind.rawValue]
      let old = locks[key] ?? (0, 0, 0)
      locks[key] = (old.0 &+ l.acquisitions, old.1 &+ l.contended, old.2 &+ l.waitTotalTSC)
    }
    for (key, v) in locks {
      let labels = [t, ("lock", key[0]), ("kind", key[1])]
      counter(Self.lockAcquisitions, labels, Double(v.0), &s)
      counter(Self.lockContended, labels, Double(v.1), &s)
      if let wait = clock.seconds(v.2) { counter(Self.lockWait, labels, wait, &s) }
    }

    // lcpus: busy ratio over at least the ratio window, interrupts by kind.
    if let base = s.baseline, let rates = SnapshotRates(from: base, to: snap) {
      for r in rates.lcpus {
        if let busy = r.busyPercent {
          gauge(Self.lcpuBusy, [t, ("lcpu", String(r.index))], &s).set(busy / 100)
        }
      }
    }
    if s.baseline == nil
      || snap.timeNanoseconds >= (s.baseline?.timeNanoseconds ?? 0) + ratioWindowNanoseconds
    {
      s.baseline = snap
    }
    for l in snap.lcpus {
      let cpu = ("lcpu", String(l.index))
      for (kind, value) in [
        ("timer", l.irqTimer), ("ipi", l.irqIPI), ("device", l.irqDevice), ("spurious", l.irqSpurious),
      ] {
        counter(Self.lcpuIRQs, [t, cpu, ("kind", kind)], Double(value), &s)
      }
    }

    // Buddy orders.
    for o in snap.allocator?.orders ?? [] {
      let order = [t, ("order", String(o.order))]
      gauge(Self.allocFree, order, &s).set(Double(o.freeBlocks))
      gauge(Self.allocUsed, order, &s).set(Double(o.usedBlocks))
    }

    // Virtqueues: "device.index" with the queue's role.
    for q in snap.virtqueues {
      let labels = [t, ("queue", "\(q.device).\(q.index)"), ("role", q.role.rawValue)]
      counter(Self.virtqPackets, labels, Double(q.packets), &s)
      counter(Self.virtqBytes, labels, Double(q.bytes), &s)
    }

    // Timers: fired, and the lateness histogram per lcpu.
    for q in snap.timerQueues {
      let labels = [t, ("lcpu", String(q.lcpu))]
      counter(Self.timersFired, labels, Double(q.fired), &s)
      if clock.isCalibrated, q.lateHistogram.count == Self.latenessBounds.count + 1 {
        lateness(labels, counts: q.lateHistogram, totalTSC: q.lateTotalTSC, clock: clock, &s)
      }
    }
    removeSeries(of: &s, except: s.touched)
  }

  /// Sets a counter series to `value` (resetting it first when the value went back).
  private func counter(
    _ d: MetricNameDescriptor, _ labels: [(String, String)], _ value: Double, _ s: inout TargetState
  ) {
    let key = SeriesKey(d.name, labels)
    s.touched.insert(key)
    guard value.isFinite, value >= 0 else { return }
    if let (c, last) = s.counters[key] {
      if value < last {
        c.reset()
        c.increment(by: value)
      } else if value > last {
        c.increment(by: value - last)
      }
      s.counters[key] = (c, value)
    } else {
      let c = registry.makeCounter(descriptor: d, labels: labels)
      c.reset()
      c.increment(by: value)
      s.counters[key] = (c, value)
    }
  }

  /// The gauge series for `labels` (created on first use).
  @discardableResult
  private func gauge(
    _ d: MetricNameDescriptor, _ labels: [(String, String)], _ s: inout TargetState, keep: Bool = true
  ) -> Gauge {
    let key = SeriesKey(d.name, labels)
    if keep { s.touched.insert(key) }
    if let g = s.gauges[key] { return g }
    let g = registry.makeGauge(descriptor: d, labels: labels)
    s.gauges[key] = g
    return g
  }

  /// Adds the guest's new lateness observations to the histogram series for `labels`.
  ///
  /// The guest keeps counts per bucket and a total, not the observations, so each new observation is
  /// recorded at one common position inside its bucket, chosen so that the histogram's sum equals
  /// the guest's total: bucket counts and the sum are exact, single values are not claimed.
  private func lateness(
    _ labels: [(String, String)], counts: [UInt64], totalTSC: UInt64, clock: GuestClock,
    _ s: inout TargetState
  ) {
    let key = SeriesKey(Self.timerLateness.name, labels)
    s.touched.insert(key)
    var (h, lastCounts, lastTotal) =
      s.histograms[key] ?? (
        registry.makeValueHistogram(
          descriptor: Self.timerLateness, labels: labels, buckets: Self.latenessBounds),
        Array(repeating: 0, count: counts.count), 0
      )
    if zip(counts, lastCounts).contains(where: { $0 < $1 }) || totalTSC < lastTotal {
      // The guest restarted: start the series again.
      registry.unregisterValueHistogram(h)
      h = registry.makeValueHistogram(
        descriptor: Self.timerLateness, labels: labels, buckets: Self.latenessBounds)
      lastCounts = Array(repeating: 0, count: counts.count)
      lastTotal = 0
    }
    let delta = zip(counts, lastCounts).map { $0 - $1 }
    let sum = clock.seconds(totalTSC - lastTotal) ?? 0
    for (value, n) in Self.placeObservations(delta, sum: sum) {
      for _ in 0..<n { h.record(value) }
    }
    s.histograms[key] = (h, counts, totalTSC)
  }

  /// One value per bucket at which that bucket's `counts` observations are recorded so that their sum is `sum`.
  ///
  /// Every value stays inside its bucket: the lower bound plus a common share of the bucket's width, and
  /// whatever the bounded buckets cannot hold goes to the last (unbounded) bucket.
  static func placeObservations(_ counts: [UInt64], sum: Double) -> [(Double, UInt64)] {
    let bounds = latenessBounds
    var lower: [Double] = [0]
    lower += bounds
    var floor = 0.0
    var room = 0.0
    for (i, n) in counts.enumerated() where n > 0 {
      floor += lower[i] * Double(n)
      if i < bounds.count { room += (bounds[i] - lower[i]) * Double(n) }
    }
    let spare = max(0, sum - floor)
    // Stay strictly below each upper bound (le is inclusive, the guest's buckets are not).
    let share = room > 0 ? min(spare / room, 0.999) : 0
    let overflowCount = counts.count > bounds.count ? counts[bounds.count] : 0
    let leftover = max(0, spare - share * room)
    var out: [(Double, UInt64)] = []
    for (i, n) in counts.enumerated() where n > 0 {
      if i < bounds.count {
        out.append((lower[i] + share * (bounds[i] - lower[i]), n))
      } else {
        out.append((lower[i] + (overflowCount > 0 ? leftover / Double(overflowCount) : 0), n))
      }
    }
    return out
  }

  /// Removes every series of a target not in `keep`.
  private func removeSeries(of s: inout TargetState, except keep: Set<SeriesKey> = []) {
    for (key, (c, _)) in s.counters where !keep.contains(key) {
      registry.unregisterCounter(c)
      s.counters[key] = nil
    }
    for (key, g) in s.gauges where !keep.contains(key) && key.name != Self.up.name {
      registry.unregisterGauge(g)
      s.gauges[key] = nil
    }
    for (key, (h, _, _)) in s.histograms where !keep.contains(key) {
      registry.unregisterValueHistogram(h)
      s.histograms[key] = nil
    }
  }
}
