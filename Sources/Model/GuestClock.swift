/// The guest's time base: TSC cycles to seconds, and the guest's "now" (its newest timer tick).
///
/// Every output that turns a TSC value into time (panes, `smptop locks`, the text snapshot, the
/// Prometheus exposition) goes through this one type, so they agree on rounding and on what "now" is.
public struct GuestClock: Sendable, Equatable {
  /// TSC cycles per millisecond as the guest calibrated them (0 = unknown).
  public var tscPerMs: UInt64
  /// The TSC at boot (0 = unknown).
  public var bootTSC: UInt64
  /// The guest's "now": the newest timer tick of any lcpu (0 = no tick seen).
  public var now: UInt64

  /// A clock from its parts.
  public init(tscPerMs: UInt64, bootTSC: UInt64 = 0, now: UInt64 = 0) {
    self.tscPerMs = tscPerMs
    self.bootTSC = bootTSC
    self.now = now
  }

  /// The clock a snapshot describes: its guest's calibration and its lcpus' newest tick.
  public init(_ snapshot: Snapshot) {
    self.init(
      tscPerMs: snapshot.guest?.tscPerMs ?? 0, bootTSC: snapshot.guest?.bootTSC ?? 0,
      now: Self.newestTick(snapshot.lcpus))
  }

  /// The newest `lastTickTSC` among `lcpus` (0 for none).
  public static func newestTick(_ lcpus: [LCPURecord]) -> UInt64 {
    var newest: UInt64 = 0
    for l in lcpus where l.lastTickTSC > newest { newest = l.lastTickTSC }
    return newest
  }

  /// True when the guest says how fast its TSC runs.
  public var isCalibrated: Bool { tscPerMs > 0 }

  /// Cycles as seconds; nil when the clock is not calibrated or the value is not finite.
  public func seconds(_ tsc: Double) -> Double? {
    guard tscPerMs > 0, tsc.isFinite else { return nil }
    return tsc / Double(tscPerMs) / 1000
  }

  /// Cycles as seconds; nil when the clock is not calibrated.
  public func seconds(_ tsc: UInt64) -> Double? { seconds(Double(tsc)) }

  /// Seconds as cycles (rounded down); nil when the clock is not calibrated or `seconds` is negative.
  public func cycles(_ seconds: Double) -> UInt64? {
    guard tscPerMs > 0, seconds.isFinite, seconds >= 0 else { return nil }
    let c = seconds * 1000 * Double(tscPerMs)
    return c < 1.8e19 ? UInt64(c) : nil
  }

  /// Seconds from now until `tsc` (negative once it has passed); nil without a clock, a tick or a deadline.
  public func until(_ tsc: UInt64) -> Double? {
    guard tsc != 0, now != 0 else { return nil }
    return seconds(Double(Int64(bitPattern: tsc &- now)))
  }

  /// Seconds from `tsc` to now; nil when unknown or when `tsc` lies after now.
  public func since(_ tsc: UInt64) -> Double? {
    guard tsc != 0, now != 0, now >= tsc else { return nil }
    return seconds(now - tsc)
  }

  /// Seconds from boot to now; nil before the first tick after boot or without a calibration.
  public var uptimeSeconds: Double? {
    guard now > bootTSC else { return nil }
    return seconds(now - bootTSC)
  }
}

extension Snapshot {
  /// The guest clock this snapshot was taken against.
  public var clock: GuestClock { GuestClock(self) }
}
