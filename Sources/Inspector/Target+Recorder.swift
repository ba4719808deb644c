// The recorder: the raw bytes of one snapshot's ranges, for `smptop record`.
extension Target {
  /// Captures the raw bytes of every range one snapshot reads, for `smptop record`.
  /// `trace` is what the trace rings gave since the previous frame, stored with the frame.
  public func captureFrame(trace: RecordedTrace? = nil) throws(TargetError) -> RecordedMemory.Frame {
    guard let source = sharedMemory else {
      throw TargetError(.memory, "recording needs the shared RAM file (--memory-file)")
    }
    _ = try liveSnapshot()  // learns where every table and dynamic lock is
    let ranges = liveEngine?.modelRanges ?? []
    let start = monotonicNanoseconds()
    var captured: [(address: UInt64, bytes: [UInt8])] = []
    for (range, result) in zip(ranges, source.read(ranges)) {
      if case .success(let bytes) = result { captured.append((range.address, bytes)) }
    }
    return RecordedMemory.Frame(timeNanoseconds: start, ranges: captured, trace: trace)
  }
}
