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

  /// A value from all of its fields.
  public init(
    index: UInt32, busyPercent: Double? = nil, timerIRQsPerSecond: Double, ipisPerSecond: Double,
    deviceIRQsPerSecond: Double, spuriousPerSecond: Double, ipisSentPerSecond: Double, ticksPerSecond: Double,
    workLoopsPerSecond: Double
  ) {
    self.index = index
    self.busyPercent = busyPercent
    self.timerIRQsPerSecond = timerIRQsPerSecond
    self.ipisPerSecond = ipisPerSecond
    self.deviceIRQsPerSecond = deviceIRQsPerSecond
    self.spuriousPerSecond = spuriousPerSecond
    self.ipisSentPerSecond = ipisSentPerSecond
    self.ticksPerSecond = ticksPerSecond
    self.workLoopsPerSecond = workLoopsPerSecond
  }
}

/// Per-second rates for one lock between two snapshots.
public struct LockRates: Sendable, Codable, Equatable {
  /// Address of the lock object.
  public var address: UInt64
  public var acquisitionsPerSecond: Double
  public var contendedPerSecond: Double
  /// Contended share of the interval's acquisitions, 0...100 (nil without acquisitions).
  public var contendedPercent: Double?
  /// Mean wait of the interval's contended acquisitions, in guest TSC cycles.
  public var meanWaitTSC: Double?

  /// A value from all of its fields.
  public init(
    address: UInt64, acquisitionsPerSecond: Double, contendedPerSecond: Double,
    contendedPercent: Double? = nil, meanWaitTSC: Double? = nil
  ) {
    self.address = address
    self.acquisitionsPerSecond = acquisitionsPerSecond
    self.contendedPerSecond = contendedPerSecond
    self.contendedPercent = contendedPercent
    self.meanWaitTSC = meanWaitTSC
  }
}

/// Per-second rates for one virtqueue.
public struct VirtqRates: Sendable, Codable, Equatable {
  public var device: UInt32
  public var index: UInt32
  public var packetsPerSecond: Double
  public var bytesPerSecond: Double
  public var errorsPerSecond: Double
  public var kicksPerSecond: Double
  public var interruptsPerSecond: Double

  /// A value from all of its fields.
  public init(
    device: UInt32, index: UInt32, packetsPerSecond: Double, bytesPerSecond: Double, errorsPerSecond: Double,
    kicksPerSecond: Double, interruptsPerSecond: Double
  ) {
    self.device = device
    self.index = index
    self.packetsPerSecond = packetsPerSecond
    self.bytesPerSecond = bytesPerSecond
    self.errorsPerSecond = errorsPerSecond
    self.kicksPerSecond = kicksPerSecond
    self.interruptsPerSecond = interruptsPerSecond
  }
}

/// Per-second rates for one buddy order.
public struct AllocOrderRates: Sendable, Codable, Equatable {
  public var order: UInt64
  public var allocsPerSecond: Double
  public var freesPerSecond: Double
  public var failuresPerSecond: Double
  public var casRetriesPerSecond: Double

  /// A value from all of its fields.
  public init(
    order: UInt64, allocsPerSecond: Double, freesPerSecond: Double, failuresPerSecond: Double,
    casRetriesPerSecond: Double
  ) {
    self.order = order
    self.allocsPerSecond = allocsPerSecond
    self.freesPerSecond = freesPerSecond
    self.failuresPerSecond = failuresPerSecond
    self.casRetriesPerSecond = casRetriesPerSecond
  }
}

/// Rates between two snapshots of the same guest.
public struct SnapshotRates: Sendable, Codable, Equatable {
  /// Host seconds between the two snapshots.
  public var intervalSeconds: Double
  /// One entry per lcpu present in both snapshots.
  public var lcpus: [LCPURates]
  /// True when counters went backwards (the guest rebooted): rates are then zero.
  public var counterReset: Bool
  /// One entry per lock present in both snapshots (matched by address).
  public var locks: [LockRates] = []
  /// One entry per virtqueue present in both.
  public var virtqueues: [VirtqRates] = []
  /// One entry per buddy order present in both.
  public var allocOrders: [AllocOrderRates] = []
  /// Workload operations per second per lcpu.
  public var workloadOpsPerSecond: [Double] = []
  /// Timers fired per second per lcpu (by timer-queue record).
  public var timersFiredPerSecond: [UInt32: Double] = [:]

  /// Rates from `old` to `new`; nil when the interval is empty.
  public init?(from old: Snapshot, to new: Snapshot) {
    guard new.timeNanoseconds > old.timeNanoseconds else { return nil }
    let seconds = Double(new.timeNanoseconds - old.timeNanoseconds) / 1e9
    intervalSeconds = seconds
    var reset = false
    /// Per second between two readings of a counter; a counter that went back is a reset.
    func per(_ a: UInt64, _ b: UInt64) -> Double {
      if b < a {
        reset = true
        return 0
      }
      return Double(b - a) / seconds
    }
    let oldNow = old.clock.now
    let newNow = new.clock.now
    let byIndex = Dictionary(old.lcpus.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
    lcpus = new.lcpus.compactMap { n -> LCPURates? in
      guard let o = byIndex[n.index], o.consistency.isConsistent, n.consistency.isConsistent else {
        return nil
      }
      func rate(_ key: KeyPath<LCPURecord, UInt64>) -> Double { per(o[keyPath: key], n[keyPath: key]) }
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
        index: n.index, busyPercent: busy, timerIRQsPerSecond: rate(\.irqTimer),
        ipisPerSecond: rate(\.irqIPI),
        deviceIRQsPerSecond: rate(\.irqDevice), spuriousPerSecond: rate(\.irqSpurious),
        ipisSentPerSecond: rate(\.ipiSent), ticksPerSecond: rate(\.ticks),
        workLoopsPerSecond: rate(\.workLoops))
    }
    let oldLocks = Dictionary(old.locks.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
    locks = new.locks.compactMap { n in
      guard let o = oldLocks[n.address] else { return nil }
      let acquired = n.acquisitions >= o.acquisitions ? n.acquisitions - o.acquisitions : 0
      let contended = n.contended >= o.contended ? n.contended - o.contended : 0
      let waited = n.waitTotalTSC >= o.waitTotalTSC ? n.waitTotalTSC - o.waitTotalTSC : 0
      return LockRates(
        address: n.address, acquisitionsPerSecond: per(o.acquisitions, n.acquisitions),
        contendedPerSecond: per(o.contended, n.contended),
        contendedPercent: acquired == 0 ? nil : min(100, 100 * Double(contended) / Double(acquired)),
        meanWaitTSC: contended == 0 ? nil : Double(waited) / Double(contended))
    }
    let oldQueues = Dictionary(
      old.virtqueues.map { ("\($0.device).\($0.index)", $0) }, uniquingKeysWith: { a, _ in a })
    virtqueues = new.virtqueues.compactMap { n in
      guard let o = oldQueues["\(n.device).\(n.index)"] else { return nil }
      return VirtqRates(
        device: n.device, index: n.index, packetsPerSecond: per(o.packets, n.packets),
        bytesPerSecond: per(o.bytes, n.bytes), errorsPerSecond: per(o.errors, n.errors),
        kicksPerSecond: per(o.kicks, n.kicks), interruptsPerSecond: per(o.interrupts, n.interrupts))
    }
    if let a = old.allocator, let b = new.allocator {
      let oldOrders = Dictionary(a.orders.map { ($0.order, $0) }, uniquingKeysWith: { x, _ in x })
      allocOrders = b.orders.compactMap { n in
        guard let o = oldOrders[n.order] else { return nil }
        return AllocOrderRates(
          order: n.order, allocsPerSecond: per(o.allocs, n.allocs), freesPerSecond: per(o.frees, n.frees),
          failuresPerSecond: per(o.failures, n.failures), casRetriesPerSecond: per(o.casRetries, n.casRetries)
        )
      }
    }
    if let a = old.workload, let b = new.workload, a.ops.count == b.ops.count {
      workloadOpsPerSecond = zip(a.ops, b.ops).map { per($0, $1) }
    }
    let oldTimers = Dictionary(old.timerQueues.map { ($0.lcpu, $0) }, uniquingKeysWith: { x, _ in x })
    for n in new.timerQueues {
      if let o = oldTimers[n.lcpu] { timersFiredPerSecond[n.lcpu] = per(o.fired, n.fired) }
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
