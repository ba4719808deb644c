import Foundation
import Model

/// Records for synthetic snapshots, decoded from JSON (the model types have no public memberwise
/// initializers), shared by the suites that test the model and its outputs.
public enum Make {
  /// A consistent record's `consistency` value.
  public static let ok = "{\"state\":\"consistent\"}"

  /// `json` decoded as `type`.
  public static func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(json.utf8))
  }

  /// An idle lcpu whose newest tick is at `lastTick`, with `busy` and `idle` cycles.
  public static func lcpu(_ index: UInt32, lastTick: UInt64, busy: UInt64 = 0, idle: UInt64 = 0) throws
    -> LCPURecord
  {
    try decode(
      LCPURecord.self,
      """
      {"index":\(index),"apicID":\(index),"state":"IDLE","rawState":2,"busyDepth":0,"errorCode":0,
       "stateSinceTSC":0,"irqTimer":\(index + 10),"irqIPI":0,"irqDevice":0,"irqSpurious":0,"ipiSent":0,
       "ipiReceived":0,"remoteCalls":0,"ticks":0,"cyclesIdle":\(idle),"cyclesBusy":\(busy),"currentThread":0,
       "nextDeadlineTSC":0,"lastTickRIP":0,"lastTickTSC":\(lastTick),"stackBottom":0,"stackTop":0,"workLoops":0,
       "consistency":\(ok)}
      """)
  }

  /// A running two-lcpu guest whose TSC ticks `tscPerMs` times a millisecond (1 GHz by default).
  public static func guest(tscPerMs: UInt64 = 1_000_000, bootTSC: UInt64 = 0) throws -> GuestInfo {
    try decode(
      GuestInfo.self,
      """
      {"abiVersion":3,"buildID":"x","bootStage":2,"features":0,"bootTSC":\(bootTSC),"tscPerMs":\(tscPerMs),
       "lapicPerMs":0,"tickMicroseconds":1000,"lcpusPresent":2,"lcpusOnline":2,"ramBytes":0,"kernelStart":0,
       "kernelEnd":0,"textStart":0,"textEnd":0,"shutdownCode":0,"commandLine":""}
      """)
  }

  /// A free lock of `kind` with `acquisitions` and `contended` counts, each contended
  /// acquisition having waited 2 µs at 1 GHz.
  public static func lock(
    _ name: String, _ kind: LockKind = .spin, address: UInt64, acquisitions: UInt64 = 0, contended: UInt64 = 0
  ) throws -> LockRecord {
    var l = try decode(
      LockRecord.self,
      """
      {"name":"","kind":"spin","flags":0,"address":0,"recordAddress":0,"dynamic":false,"stateWord":0,
       "readers":0,"acquireSite":0,"acquiredTSC":0,"acquisitions":0,"contended":0,"trylockFailures":0,
       "waitTotalTSC":0,"waitMaxTSC":0,"holdTotalTSC":0,"holdMaxTSC":0,"misuseIRQUnsafe":0,"misuseSleepInIRQ":0,
       "misuseRecursion":0,"misuseBadUnlock":0,"waiterCount":0,"pendingWriters":0,"waiters":[],"consistency":\(ok)}
      """)
    l.name = name
    l.kind = kind
    l.address = address
    l.acquisitions = acquisitions
    l.contended = contended
    l.waitTotalTSC = contended * 2_000
    return l
  }

  /// A ready thread, blocked on `blockedOn` when it is not 0.
  public static func thread(_ id: UInt64, _ name: String, blockedOn: UInt64 = 0) throws -> ThreadRecord {
    var t = try decode(
      ThreadRecord.self,
      """
      {"id":\(id),"name":"","state":"ready","lcpu":0,"blockedOn":\(blockedOn),"wakeTSC":0,"cpuTSC":0,
       "switches":0,"ops":0,"consistency":\(ok)}
      """)
    t.name = name
    return t
  }

  /// `lcpu`'s timer queue with its lateness histogram.
  public static func timers(lcpu: UInt32, histogram: [UInt64], lateTotalTSC: UInt64) throws
    -> TimerQueueRecord
  {
    try decode(
      TimerQueueRecord.self,
      """
      {"lcpu":\(lcpu),"pending":0,"nextDeadlineTSC":0,"fired":\(histogram.reduce(0, +)),"lateTotalTSC":\(lateTotalTSC),
       "lateMaxTSC":0,"lateHistogram":\(histogram),"timers":[],"consistency":\(ok)}
      """)
  }

  /// A 1 GHz guest at host time `seconds`.
  public static func snapshot(seconds: Double, lcpus: [LCPURecord]) throws -> Snapshot {
    Snapshot(timeNanoseconds: UInt64(seconds * 1e9), source: .sharedRAM, guest: try guest(), lcpus: lcpus)
  }

  /// A 2 GHz guest whose newest tick is at 10 s, holding `locks` and `threads`.
  public static func snapshot(locks: [LockRecord], threads: [ThreadRecord] = []) throws -> Snapshot {
    var s = Snapshot(
      timeNanoseconds: 1, source: .sharedRAM, guest: try guest(tscPerMs: 2_000_000, bootTSC: 0),
      lcpus: [try lcpu(0, lastTick: 20_000_000_000)])
    s.locks = locks
    s.threads = threads
    return s
  }
}
