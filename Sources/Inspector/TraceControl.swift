#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why the trace control word could not be written.
public struct TraceControlError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What went wrong, for a person.
  public var description: String
  /// Creates an error.
  public init(_ description: String) { self.description = description }
}

/// Writes `smptop_root.trace_control`: the one word of guest memory smptop ever writes, and only
/// when its user asks (a key in the timeline pane, `smptop trace --enable`). The write goes
/// through the shared RAM file (QEMU's memory-backend-file,share=on), so the guest sees it at
/// its next trace point without being stopped.
public enum TraceControl {
  /// Stores `classes` into the control word of the root at `rootAddress` in `memoryFile`.
  public static func write(
    _ classes: TraceClasses, memoryFile: String, machine: String = "pc", rootAddress: UInt64
  ) throws(TraceControlError) {
    let fd = open(memoryFile, O_RDWR | O_CLOEXEC)
    guard fd >= 0 else {
      throw TraceControlError("cannot open \(memoryFile) for writing: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw TraceControlError("cannot stat \(memoryFile)") }
    let layout = RAMLayout(machine: machine, size: UInt64(info.st_size))
    let address = rootAddress &+ UInt64(TraceDrain.controlOffset)
    guard address % 8 == 0, let offset = layout.fileOffset(of: address, count: 8),
      offset + 8 <= UInt64(info.st_size)
    else {
      throw TraceControlError("the control word at 0x\(String(address, radix: 16)) is outside \(memoryFile)")
    }
    var value = classes.rawValue.littleEndian
    let written = withUnsafeBytes(of: &value) { pwrite(fd, $0.baseAddress, 8, off_t(offset)) }
    guard written == 8 else {
      throw TraceControlError("cannot write the control word: \(String(cString: strerror(errno)))")
    }
  }
}
