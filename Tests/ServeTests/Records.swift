import Foundation
import Model

/// Records for synthetic snapshots, decoded from JSON (the model types have no public memberwise
/// initializers).
enum Make {
  static let ok = "{\"state\":\"consistent\"}"

  static func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(json.utf8))
  }

  static func lcpu(_ index: UInt32, lastTick: UInt64, busy: UInt64 = 0, idle: UInt64 = 0) throws -> LCPURecord
  {
    try decode(
      LCPURecord.self,
      """
      {"index":\(index),"apicID":\(index),"state":"OFFLINE","rawState":0,"busyDepth":0,"errorCode":0,
       "stateSinceTSC":0,"irqTimer":\(index + 10),"irqIPI":0,"irqDevice":0,"irqSpurious":0,"ipiSent":0,
       "ipiReceived":0,"remoteCalls":0,"ticks":0,"cyclesIdle":\(idle),"cyclesBusy":\(busy),"currentThread":0,
       "nextDeadlineTSC":0,"lastTickRIP":0,"lastTickTSC":\(lastTick),"stackBottom":0,"stackTop":0,"workLoops":0,
       "consistency":\(ok)}
      """)
  }

  static func guest() throws -> GuestInfo {
    try decode(
      GuestInfo.self,
      """
      {"abiVersion":3,"buildID":"x","bootStage":2,"features":0,"bootTSC":0,"tscPerMs":1000000,
       "lapicPerMs":0,"tickMicroseconds":1000,"lcpusPresent":2,"lcpusOnline":2,"ramBytes":0,"kernelStart":0,
       "kernelEnd":0,"textStart":0,"textEnd":0,"shutdownCode":0,"commandLine":""}
      """)
  }

  static func lock(_ name: String, address: UInt64, acquisitions: UInt64, contended: UInt64) throws
    -> LockRecord
  {
    var l = try decode(
      LockRecord.self,
      """
      {"name":"","kind":"spin","flags":0,"address":0,"recordAddress":0,"dynamic":false,"stateWord":0,
       "readers":0,"acquireSite":0,"acquiredTSC":0,"acquisitions":0,"contended":0,"trylockFailures":0,
       "waitTotalTSC":0,"waitMaxTSC":0,"holdTotalTSC":0,"holdMaxTSC":0,"misuseIRQUnsafe":0,"misuseSleepInIRQ":0,
       "misuseRecursion":0,"misuseBadUnlock":0,"waiterCount":0,"pendingWriters":0,"waiters":[],"consistency":\(ok)}
      """)
    l.name = name
    l.address = address
    l.acquisitions = acquisitions
    l.contended = contended
    l.waitTotalTSC = contended * 2_000  // 2 µs each at 1 GHz
    return l
  }

  static func timers(lcpu: UInt32, histogram: [UInt64], lateTotalTSC: UInt64) throws -> TimerQueueRecord {
    try decode(
      TimerQueueRecord.self,
      """
      {"lcpu":\(lcpu),"pending":0,"nextDeadlineTSC":0,"fired":\(histogram.reduce(0, +)),"lateTotalTSC":\(lateTotalTSC),
       "lateMaxTSC":0,"lateHistogram":\(histogram),"timers":[],"consistency":\(ok)}
      """)
  }

  /// A 1 GHz guest at host time `seconds`, its newest tick `tick`.
  static func snapshot(seconds: Double, tick: UInt64, lcpus: [LCPURecord]) throws -> Snapshot {
    Snapshot(timeNanoseconds: UInt64(seconds * 1e9), source: .sharedRAM, guest: try guest(), lcpus: lcpus)
  }
}

/// One sample of a text exposition: `name{labels} value`.
struct Sample: Equatable {
  var name: String
  var labels: [String: String]
  var value: Double

  /// The samples of an exposition (comments and blank lines skipped). Label values hold no `,` or `"`
  /// in these tests.
  static func parse(_ text: String) -> [Sample] {
    text.split(separator: "\n").compactMap { line -> Sample? in
      guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
        let value = Double(line[line.index(after: space)...])
      else { return nil }
      let series = line[..<space]
      guard let brace = series.firstIndex(of: "{") else {
        return Sample(name: String(series), labels: [:], value: value)
      }
      var labels: [String: String] = [:]
      for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(
        separator: ",")
      {
        let kv = pair.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { labels[String(kv[0])] = String(kv[1].dropFirst().dropLast()) }
      }
      return Sample(name: String(series[..<brace]), labels: labels, value: value)
    }
  }
}

extension [Sample] {
  /// The value of the one sample named `name` whose labels include `labels`.
  func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
    let matching = filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }
    return matching.count == 1 ? matching[0].value : nil
  }
}
