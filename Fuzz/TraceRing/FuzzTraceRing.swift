import Foundation
import InspectABI

/// A flat guest image holding an ABI root, up to four trace-ring headers and their records,
/// whose ring heads move by a script each time the reader loads one (a writer running, lapping
/// the reader, or a garbage head jumping backwards).
final class FuzzRingImage: GuestMemory {
  let kind = MemorySourceKind.sharedRAM
  let isLive: Bool
  var bytes: [UInt8]
  /// Signed head moves, applied one per head load (cycled).
  let script: [Int8]
  var step = 0
  /// When true a head move also writes well-formed records for the positions it publishes.
  let writes: Bool
  /// Record kinds the writer uses (cycled).
  let kinds: [UInt8]

  static let root: UInt64 = 0x1000
  static let rings: UInt64 = 0x2000
  static let records: UInt64 = 0x4000
  static let ringSize = MemoryLayout<smptop_trace_ring>.stride

  init(bytes: [UInt8], live: Bool, script: [Int8], writes: Bool, kinds: [UInt8]) {
    self.bytes = bytes
    self.isLive = live
    self.script = script
    self.writes = writes
    self.kinds = kinds.isEmpty ? [2] : kinds
  }

  func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    ranges.map { r in
      guard r.count >= 0, let end = r.end, end <= UInt64(bytes.count) else {
        return .failure(GuestMemoryError(.outOfRange, r, "outside the image"))
      }
      return .success(Array(bytes[Int(r.address)..<Int(end)]))
    }
  }

  func words(_ addresses: [UInt64]) -> [UInt64?] {
    addresses.map { a in
      guard a <= UInt64(bytes.count), UInt64(bytes.count) - a >= 8 else { return nil }
      var head = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Int(a), as: UInt64.self) }
      if !script.isEmpty, a >= Self.rings, a < Self.records {
        let move = script[step % script.count]
        step += 1
        let next = move >= 0 ? head &+ UInt64(move) : head &- UInt64(-Int(move))
        if writes, move > 0 { write(ringAt: a, from: head, to: next) }
        head = next
        withUnsafeBytes(of: head) { bytes.replaceSubrange(Int(a)..<Int(a) + 8, with: $0) }
      }
      return head
    }
  }

  /// Writes records for positions [from, to) of the ring whose header is at `header`, as the
  /// guest's Trace.emit does (seq = position + 1), where the header's geometry allows.
  func write(ringAt header: UInt64, from: UInt64, to: UInt64) {
    let ring = bytes.withUnsafeBytes {
      $0.loadUnaligned(fromByteOffset: Int(header), as: smptop_trace_ring.self)
    }
    let capacity = UInt64(ring.capacity)
    guard capacity > 0, capacity & (capacity - 1) == 0, ring.stride >= 64, ring.stride <= 4096 else { return }
    var p = from
    while p < to {
      let address = ring.records &+ (p & (capacity - 1)) &* ring.stride
      guard address <= UInt64(bytes.count), UInt64(bytes.count) - address >= 64 else { return }
      var record = smptop_trace_record()
      record.seq = p &+ 1
      record.tsc = p &* 1000
      record.kind = UInt16(kinds[Int(p % UInt64(kinds.count))])
      record.lcpu = ring.lcpu
      record.object = 0x5000 &+ p % 3
      withUnsafeBytes(of: record) { bytes.replaceSubrange(Int(address)..<Int(address) + 64, with: $0) }
      p &+= 1
    }
  }
}

/// libFuzzer entry: the trace-ring reader (`TraceDrain`) over arbitrary ring headers, records
/// and head movements. Input: a flags byte (live, start at the oldest record, capacities forced
/// to powers of two, stride forced to 64, the head script writes records, heads below 4096, the
/// events also go through both exports), a ring count, four
/// 32-byte ring headers, eight head moves, eight record kinds, then the record bytes. Ring
/// record addresses are folded into the record bytes so the fuzzer reaches the decoder.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  let ringSize = FuzzRingImage.ringSize
  let fixed = 2 + 4 * ringSize + 8 + 8
  guard input.count >= fixed else { return 0 }
  let flags = input[0]
  let rings = 1 + Int(input[1] % 4)
  let script = input[(2 + 4 * ringSize)..<(2 + 4 * ringSize + 8)].map { Int8(bitPattern: $0) }
  let kinds = Array(input[(fixed - 8)..<fixed])
  let records = Array(input[fixed...])
  var image = [UInt8](repeating: 0, count: Int(FuzzRingImage.records) + max(records.count, 64))
  image.replaceSubrange(
    Int(FuzzRingImage.records)..<Int(FuzzRingImage.records) + records.count, with: records)
  // The root: version and magic right, table 9 pointing at the ring headers.
  var root = smptop_root()
  root.magic = UInt64(SMPTOP_ABI_MAGIC)
  root.version = UInt32(SMPTOP_ABI_VERSION)
  root.size = UInt32(MemoryLayout<smptop_root>.size)
  root.tsc_per_ms = 1_000_000
  root.table_count = UInt32(SMPTOP_TABLE_TRACE.rawValue) + 1
  root.trace_control = UInt64(flags)
  withUnsafeMutableBytes(of: &root.tables) { raw in
    var table = smptop_table()
    table.addr = FuzzRingImage.rings
    table.count = UInt32(rings)
    table.stride = UInt32(ringSize)
    raw.storeBytes(
      of: table, toByteOffset: Int(SMPTOP_TABLE_TRACE.rawValue) * MemoryLayout<smptop_table>.stride,
      as: smptop_table.self)
  }
  withUnsafeBytes(of: root) {
    image.replaceSubrange(Int(FuzzRingImage.root)..<Int(FuzzRingImage.root) + $0.count, with: $0)
  }
  for i in 0..<4 {
    var ring = input.withUnsafeBytes {
      $0.loadUnaligned(fromByteOffset: 2 + i * ringSize, as: smptop_trace_ring.self)
    }
    let region = UInt64(max(records.count, 64))
    if ring.records < FuzzRingImage.records || ring.records - FuzzRingImage.records >= region {
      ring.records = FuzzRingImage.records + ring.records % region
    }
    if flags & 4 != 0 { ring.capacity = 1 << (ring.capacity % 9) }
    if flags & 8 != 0 { ring.stride = 64 }
    if flags & 32 != 0 { ring.head %= 4096 }
    withUnsafeBytes(of: ring) {
      let at = Int(FuzzRingImage.rings) + i * ringSize
      image.replaceSubrange(at..<at + ringSize, with: $0)
    }
  }
  let memory = FuzzRingImage(
    bytes: image, live: flags & 1 != 0, script: script, writes: flags & 16 != 0, kinds: kinds)
  var drain = TraceDrain(rootAddress: FuzzRingImage.root, startAtOldest: flags & 2 != 0)
  var delivered: UInt64 = 0
  var lostSeen: UInt64 = 0
  let exports = flags & 64 != 0
  var output = Data()
  var bytes = 0
  let chrome = ChromeTraceWriter(tscPerMs: 1_000_000, names: TraceNames()) { piece in
    output.append(piece)
    bytes += piece.count
  }
  for _ in 0..<4 {
    let batch = drain.drain(memory)
    delivered += UInt64(batch.events.count)
    lostSeen &+= batch.totalLost  // garbage heads make the loss count anything
    // Within one drain a ring's events come in position order, at most one ring's worth.
    var last: [UInt32: UInt64] = [:]
    var count: [UInt32: UInt64] = [:]
    for e in batch.events {
      if let previous = last[e.ring], previous >= e.position {
        fatalError("ring \(e.ring): position \(e.position) after \(previous) in one drain")
      }
      last[e.ring] = e.position
      count[e.ring, default: 0] += 1
      if count[e.ring]! > TraceDrain.maxCapacity { fatalError("ring \(e.ring) gave more than its capacity") }
    }
    // With flag 64, whatever the rings held goes through the streaming Chrome writer and JSON
    // lines too (a few events per drain: JSONEncoder's per-event cost would dominate the run).
    if exports {
      let some = Array(batch.events.prefix(8))
      try? chrome.append(some)
      _ = TraceExport.jsonLines(some, tscPerMs: drain.tscPerMs, names: TraceNames())
    }
  }
  if exports {
    try? chrome.finish(lost: lostSeen)
    if (try? JSONSerialization.jsonObject(with: output)) == nil {
      fatalError("the Chrome trace written is not JSON (\(bytes) bytes)")
    }
  }
  if drain.totalEvents != delivered || drain.totalLost != lostSeen {
    fatalError("the drain's totals disagree with its batches")
  }
  return 0
}
