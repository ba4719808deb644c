import Foundation

/// Drained trace events waiting for a slower writer, first in first out, in bounded memory.
///
/// The rings hold a fraction of a second of `trace=all`, so a capture drains first and writes
/// when it can; when the writer is slower than the guest produces, the wait grows with the run.
/// The spool keeps up to `memoryLimit` events in memory and puts the rest in a temporary file
/// that is unlinked as soon as it is created (nothing is left behind, whatever ends the process).
/// Once events went to the file, later ones follow them there until the file is read to its end,
/// so the order is always the order of `push`.
public final class TraceSpool {
  /// Events kept in memory before the file is used.
  public let memoryLimit: Int
  private var memory: [TraceEvent] = []
  private var memoryRead = 0
  private var fd: Int32 = -1
  private var fileWritten = 0
  private var fileRead = 0
  private let directory: String
  /// The most events the file held at once (0: it was never used).
  public private(set) var spilledPeak = 0

  /// Creates an empty spool; the file, when needed, goes to `directory`.
  public init(memoryLimit: Int = 1 << 18, directory: String = NSTemporaryDirectory()) {
    self.memoryLimit = max(1, memoryLimit)
    self.directory = directory
  }

  deinit { if fd >= 0 { close(fd) } }

  /// Events waiting.
  public var count: Int { memory.count - memoryRead + fileWritten - fileRead }

  /// Appends events after every event pushed before.
  public func push(_ events: [TraceEvent]) throws(TraceSpoolError) {
    guard !events.isEmpty else { return }
    if fileWritten == fileRead && memory.count - memoryRead + events.count <= memoryLimit {
      memory += events
      return
    }
    try openFile()
    let size = MemoryLayout<TraceEvent>.stride
    let written = events.withUnsafeBytes { raw -> Int in
      guard let base = raw.baseAddress else { return 0 }
      var done = 0
      while done < raw.count {
        let n = pwrite(fd, base + done, raw.count - done, off_t(fileWritten * size + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return -1 }
        done += n
      }
      return done
    }
    guard written == events.count * size else {
      throw TraceSpoolError(
        "cannot write the trace spool in \(directory): \(String(cString: strerror(errno)))")
    }
    fileWritten += events.count
    spilledPeak = max(spilledPeak, fileWritten - fileRead)
  }

  /// Takes up to `limit` of the oldest events (empty when none wait).
  public func pop(_ limit: Int) throws(TraceSpoolError) -> [TraceEvent] {
    let limit = max(1, limit)
    if memoryRead < memory.count {
      let end = min(memory.count, memoryRead + limit)
      let out = Array(memory[memoryRead..<end])
      memoryRead = end
      if memoryRead == memory.count {
        memory.removeAll(keepingCapacity: memory.capacity <= memoryLimit)
        memoryRead = 0
      } else if memoryRead > memoryLimit / 2 {
        memory.removeFirst(memoryRead)
        memoryRead = 0
      }
      return out
    }
    guard fileRead < fileWritten else { return [] }
    let n = min(limit, fileWritten - fileRead)
    let size = MemoryLayout<TraceEvent>.stride
    var failure: String?
    let out = [TraceEvent](unsafeUninitializedCapacity: n) { buffer, initialized in
      guard let base = UnsafeMutableRawBufferPointer(buffer).baseAddress else { return }
      var done = 0
      while done < n * size {
        let got = pread(fd, base + done, n * size - done, off_t(fileRead * size + done))
        if got < 0 && errno == EINTR { continue }
        guard got > 0 else {
          failure = got < 0 ? String(cString: strerror(errno)) : "the file is shorter than what was written"
          return
        }
        done += got
      }
      initialized = n
    }
    if let failure { throw TraceSpoolError("cannot read the trace spool back: \(failure)") }
    fileRead += n
    if fileRead == fileWritten {
      // Read to its end: the space is given back and the next push may use memory again.
      _ = ftruncate(fd, 0)
      fileRead = 0
      fileWritten = 0
    }
    return out
  }

  private func openFile() throws(TraceSpoolError) {
    guard fd < 0 else { return }
    var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8CString.dropLast())
    template += Array("smptop-trace-spool.XXXXXX".utf8CString)
    let opened = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard opened >= 0 else {
      throw TraceSpoolError(
        "cannot create a trace spool in \(directory): \(String(cString: strerror(errno)))")
    }
    let path = String(cString: template)
    unlink(path)
    fd = opened
  }
}

/// A trace spool that could not use its file.
public struct TraceSpoolError: Error, CustomStringConvertible {
  /// What failed.
  public var description: String
  init(_ description: String) { self.description = description }
}
