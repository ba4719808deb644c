import InspectABI

/// Where the fuzzed root and the region its tables point into sit in guest memory.
let rootAddress: UInt64 = 0x10_0000
/// The start of the region every table address is folded into.
let regionAddress: UInt64 = 0x20_0000

/// libFuzzer entry: an arbitrary guest image through the snapshot engine. The input's first
/// bytes are the ABI root (magic and version forced, so the fuzzer gets past the header), the
/// rest is the memory its tables point into (a table address outside it is folded into it).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let rootSize = MemoryLayout<smptop_root>.size
  guard size >= rootSize else { return 0 }
  var root = Array(UnsafeBufferPointer(start: data, count: rootSize))
  let region = Array(UnsafeBufferPointer(start: data + rootSize, count: size - rootSize))
  root.withUnsafeMutableBytes { raw in
    var header = raw.load(as: smptop_root.self)
    header.magic = UInt64(SMPTOP_ABI_MAGIC)
    header.version = UInt32(SMPTOP_ABI_VERSION)
    withUnsafeMutableBytes(of: &header.tables) { tables in
      let count = tables.count / MemoryLayout<smptop_table>.stride
      for i in 0..<count {
        let offset = i * MemoryLayout<smptop_table>.stride
        var table = tables.load(fromByteOffset: offset, as: smptop_table.self)
        let inside = table.addr >= regionAddress && table.addr - regionAddress < UInt64(region.count)
        if !inside { table.addr = regionAddress + table.addr % UInt64(max(1, region.count)) }
        tables.storeBytes(of: table, toByteOffset: offset, as: smptop_table.self)
      }
    }
    raw.storeBytes(of: header, as: smptop_root.self)
  }
  let memory = RecordedMemory(frames: [
    .init(timeNanoseconds: 1, ranges: [(rootAddress, root), (regionAddress, region)]),
    .init(timeNanoseconds: 2, ranges: [(rootAddress, root), (regionAddress, region.reversed())]),
  ])
  let engine = SnapshotEngine(memory: memory, rootAddress: rootAddress)
  if let first = try? engine.snapshot(), let second = try? engine.snapshot() {
    _ = first.waitCycles
    _ = first.misusedLocks
    _ = SnapshotRates(from: first, to: second)
  }
  return 0
}
