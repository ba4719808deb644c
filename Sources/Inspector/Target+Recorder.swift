// The recorder: the bytes one snapshot decoded, for `smptop record`.
extension Target {
  /// Takes a live snapshot and returns the bytes it decoded (the root, every table and every
  /// dynamic lock, read once), for `smptop record`. `trace` is what the trace rings gave since
  /// the previous frame, stored with the frame.
  ///
  /// The frame replays to the records the snapshot saw: a record torn in the batch read and
  /// read again is stored as read again.
  public func captureFrame(trace: RecordedTrace? = nil) throws(TargetError) -> RecordedMemory.Frame {
    guard sharedMemory != nil else {
      throw TargetError(.memory, "recording needs the shared RAM file (--memory-file)")
    }
    liveEngine?.keepsBytes = true
    let snap = try liveSnapshot()
    return RecordedMemory.Frame(
      timeNanoseconds: snap.timeNanoseconds, ranges: liveEngine?.decodedBytes ?? [], trace: trace)
  }
}
