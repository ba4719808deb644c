import Foundation

/// Where a C struct member lies, as the ELF's DWARF says, asked from gdb.
///
/// gdb reads this guest's DWARF (elfutils 0.188 does not), and `offsetof` is one expression for it:
/// `print/d (unsigned long)&((struct T *)0)->member`.
enum StructLayout {
  /// The byte offset of `member` in `struct type`, from the DWARF of the ELF at `elfPath`.
  static func offset(of member: String, in type: String, elfPath: String) throws(ISRCheckError) -> UInt64 {
    guard ISRRules.isCIdentifier(type), ISRRules.isCIdentifier(member) else {
      throw ISRCheckError(.rules, "`\(type).\(member)` is not a C struct member name")
    }
    let what = "struct \(type).\(member)"
    guard let gdb = findGDB() else {
      throw ISRCheckError(
        .rules, "gdb is needed to find \(what) in the ELF's debug information; install gdb or give the offset"
      )
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: gdb)
    process.arguments = [
      "-batch", "-nx", "-ex", "print/d (unsigned long)&((struct \(type) *)0)->\(member)", elfPath,
    ]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch {
      throw ISRCheckError(.rules, "cannot run \(gdb) to find \(what): \(error.localizedDescription)")
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    // "$1 = 76"
    guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("$1 = ") }),
      let offset = UInt64(line.dropFirst(5).trimmingCharacters(in: " "))
    else {
      throw ISRCheckError(.rules, "the ELF's debug information has no \(what) (gdb: \(text.prefix(200)))")
    }
    return offset
  }

  /// `gdb` in PATH or /usr/bin.
  static func findGDB() -> String? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    return (path + ["/usr/bin"]).map { $0 + "/gdb" }.first {
      FileManager.default.isExecutableFile(atPath: $0)
    }
  }
}
