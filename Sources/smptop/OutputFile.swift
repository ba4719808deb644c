import Foundation

/// Opens `path` for writing: created (mode 0644) or truncated in place.
///
/// In place, not through a temporary file renamed over it (which `FileManager.createFile`
/// does): `/dev/null`, a FIFO or a symbolic link stays what it is, and only what it points at
/// is written.
func openOutputFile(_ path: String) throws -> FileHandle {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
  guard fd >= 0 else {
    throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))", code: .usage)
  }
  return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
}
