/// libFuzzer entry: a Linux System.map (any bytes, read as lenient UTF-8), then lookups.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let map = try? SystemMap(text: text) else { return 0 }
  for entry in map.entries.prefix(8) {
    _ = map.lookup(entry.address &+ 1)
    _ = map.address(of: entry.name)
  }
  _ = map.lookup(0xffff_ffff_8100_0000)
  return 0
}
