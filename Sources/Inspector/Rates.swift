/// Per-second rates and shares for one lcpu between two snapshots.
public struct LCPURates: Sendable, Codable, Equatable {
  public var index: UInt32
  /// Share of guest time spent BUSY in the interval, 0...100 (nil when the guest clock did not move).
  public var busyPercent: Double?
  public var timerIRQsPerSecond: Double
  public var ipisPerSecond: Double
  public var deviceIRQsPerSecond: Double
  public var spuriousPerSecond: Double
  public var ipisSentPerSecond: Double
  public var ticksPerSecond: Double
  public var workLoopsPerSecond: Double
}

/// Rates between two snapshots of the same guest.
public struct SnapshotRates: Sendable, Codable, Equatable {
  /// Host seconds between the two snapshots.
  public var intervalSeconds: Double
  /// One entry per lcpu present in both snapshots.
  public var lcpus: [LCPURates]
  /// True when counters went backwards (the guest rebooted): rates are then zero.
  public var counterReset: Bool

  /// Rates from `old` to `new`; nil when the interval is empty.
  public init?(from old: Snapshot, to new: Snapshot) {
    guard new.timeNanoseconds > old.timeNanoseconds else { return nil }
    let seconds = Double(new.timeNanoseconds - old.timeNanoseconds) / 1e9
    intervalSeconds = seconds
    var reset = false
    let oldNow = old.lcpus.map(\.lastTickTSC).max() ?? 0
    let newNow = new.lcpus.map(\.lastTickTSC).max() ?? 0
    let byIndex = Dictionary(old.lcpus.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
    lcpus = new.lcpus.compactMap { n -> LCPURates? in
      guard let o = byIndex[n.index], o.consistency.isConsistent, n.consistency.isConsistent else { return nil }
      func rate(_ key: KeyPath<LCPURecord, UInt64>) -> Double {
        let a = o[keyPath: key]
        let b = n[keyPath: key]
        if b < a {
          reset = true
          return 0
        }
        return Double(b - a) / seconds
      }
      let busyOld = Self.effective(o, now: oldNow, busy: true)
      let busyNew = Self.effective(n, now: newNow, busy: true)
      let idleOld = Self.effective(o, now: oldNow, busy: false)
      let idleNew = Self.effective(n, now: newNow, busy: false)
      var busy: Double?
      if busyNew >= busyOld, idleNew >= idleOld {
        let b = Double(busyNew - busyOld)
        let i = Double(idleNew - idleOld)
        if b + i > 0 { busy = 100 * b / (b + i) }
      }
      return LCPURates(
        index: n.index, busyPercent: busy, timerIRQsPerSecond: rate(\.irqTimer), ipisPerSecond: rate(\.irqIPI),
        deviceIRQsPerSecond: rate(\.irqDevice), spuriousPerSecond: rate(\.irqSpurious),
        ipisSentPerSecond: rate(\.ipiSent), ticksPerSecond: rate(\.ticks), workLoopsPerSecond: rate(\.workLoops))
    }
    counterReset = reset
  }

  /// Cycles spent busy (or idle) up to the guest's `now`, counting the current, unfinished stretch.
  static func effective(_ r: LCPURecord, now: UInt64, busy: Bool) -> UInt64 {
    let base = busy ? r.cyclesBusy : r.cyclesIdle
    let inState = busy ? r.state == .busy : r.state == .idle
    guard inState, now > r.stateSinceTSC, r.stateSinceTSC > 0 else { return base }
    return base &+ (now - r.stateSinceTSC)
  }
}
