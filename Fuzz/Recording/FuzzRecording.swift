/// libFuzzer entry: a recording file as `smptop replay` reads it, every decoded frame then fed
/// through the snapshot engine at the address of its first range (where a recorder puts the root).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard let frames = try? RecordedMemory.decode(bytes), let root = frames.first?.ranges.first?.address else {
    return 0
  }
  // A decoded recording encodes back to frames equal to it.
  if (try? RecordedMemory.decode(RecordedMemory.encode(frames))) != frames {
    fatalError("a decoded recording did not survive encode and decode")
  }
  let engine = SnapshotEngine(memory: RecordedMemory(frames: frames), rootAddress: root)
  var previous: Snapshot?
  for _ in frames.prefix(4) {
    guard let snap = try? engine.snapshot() else { break }
    if let previous { _ = SnapshotRates(from: previous, to: snap) }
    previous = snap
  }
  return 0
}
