import InspectABI
import Inspector

/// Synthetic guest memory images laid out exactly as the C header says.
enum Images {
  static let rootAddress: UInt64 = 0x10_0000
  static let tableAddress: UInt64 = 0x20_0000

  /// A root describing `lcpus` records at `tableAddress`.
  static func root(lcpus: Int) -> smptop_root {
    var root = smptop_root()
    root.magic = UInt64(SMPTOP_ABI_MAGIC)
    root.version = UInt32(SMPTOP_ABI_VERSION)
    root.size = UInt32(MemoryLayout<smptop_root>.size)
    root.boot_stage = UInt64(SMPTOP_BOOT_RUNNING.rawValue)
    root.tsc_per_ms = 2_000_000
    root.boot_tsc = 1_000
    root.lcpus_present = UInt64(lcpus)
    root.lcpus_online = UInt64(lcpus)
    root.build_id_len = 4
    withUnsafeMutableBytes(of: &root.build_id) { raw in
      for (i, b) in [0xde, 0xad, 0xbe, 0xef].enumerated() { raw[i] = UInt8(b) }
    }
    withUnsafeMutableBytes(of: &root.cmdline) { raw in
      for (i, b) in "panic=2 quiet".utf8.enumerated() { raw[i] = b }
    }
    root.table_count = 1
    withUnsafeMutableBytes(of: &root.tables) { raw in
      var table = smptop_table()
      table.addr = tableAddress
      table.count = UInt32(lcpus)
      table.stride = UInt32(MemoryLayout<smptop_lcpu>.stride)
      raw.storeBytes(of: table, toByteOffset: 0, as: smptop_table.self)
    }
    return root
  }

  /// lcpu records with distinct, recognisable counters.
  static func lcpus(_ count: Int) -> [smptop_lcpu] {
    (0..<count).map { i in
      var r = smptop_lcpu()
      r.seq = 2
      r.index = UInt32(i)
      r.apic_id = UInt32(i)
      r.state = UInt32(i % 2 == 0 ? SMPTOP_LCPU_IDLE.rawValue : SMPTOP_LCPU_BUSY.rawValue)
      r.busy_depth = i % 2 == 0 ? 0 : 1
      r.irq_timer = UInt64(100 + i)
      r.ticks = UInt64(100 + i)
      r.cycles_idle = UInt64(1_000 * (i + 1))
      r.last_tick_tsc = 2_000_001_000
      r.last_tick_rip = 0x10_1234
      return r
    }
  }

  static func bytes<T>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
  }

  static func tableBytes(_ records: [smptop_lcpu]) -> [UInt8] {
    records.flatMap { bytes($0) }
  }

  /// A stopped-VM image (a one-frame recording).
  static func memory(root: smptop_root, lcpus: [smptop_lcpu]) -> RecordedMemory {
    RecordedMemory(frames: [
      .init(timeNanoseconds: 0, ranges: [(rootAddress, bytes(root)), (tableAddress, tableBytes(lcpus))])
    ])
  }
}

/// A live source over a byte image whose writer is mid-update for a given number of reads:
/// the faithful stand-in for a guest caught writing, which the real guest cannot do on demand.
final class TornMemory: GuestMemory {
  let kind = MemorySourceKind.sharedRAM
  let isLive = true
  var image: [UInt64: [UInt8]]
  /// Sequence-word reads of `tornAddress` that see an odd value before the writer finishes.
  var tornReads: Int
  let tornAddress: UInt64
  private(set) var reads = 0

  init(image: [UInt64: [UInt8]], tornAddress: UInt64, tornReads: Int) {
    self.image = image
    self.tornAddress = tornAddress
    self.tornReads = tornReads
  }

  func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    ranges.map { range in
      reads += 1
      for (base, bytes) in image
      where range.address >= base
        && range.address + UInt64(range.count) <= base + UInt64(bytes.count)
      {
        let start = Int(range.address - base)
        var out = Array(bytes[start..<start + range.count])
        if range.address == tornAddress && range.count == 8 && tornReads > 0 {
          tornReads -= 1
          out = Images.bytes(UInt64(3))  // odd: a write is in progress
        }
        return .success(out)
      }
      return .failure(GuestMemoryError(.outOfRange, range, "outside the image"))
    }
  }
}
