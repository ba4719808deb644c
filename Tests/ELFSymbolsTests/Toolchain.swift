import Foundation
import Glibc

/// Runs the toolchain's tools (clang, ld.lld, llvm-nm, llvm-readelf, swift-demangle) for tests.
enum Toolchain {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// Directories searched for tools: next to the real `swiftc`, /opt/swift/usr/bin, then PATH.
  static let searchPath: [String] = {
    var directories: [String] = []
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":").map(String.init) {
      let swiftc = directory + "/swiftc"
      if access(swiftc, X_OK) == 0, let real = realpath(swiftc, nil) {
        directories.append((String(cString: real) as NSString).deletingLastPathComponent)
        free(real)
        break
      }
    }
    directories.append("/opt/swift/usr/bin")
    return directories + path.split(separator: ":").map(String.init)
  }()

  /// The absolute path of a tool.
  static func tool(_ name: String) throws -> String {
    for directory in searchPath where access(directory + "/" + name, X_OK) == 0 {
      return directory + "/" + name
    }
    throw Failure(description: "\(name) not found in \(searchPath)")
  }

  /// Runs a tool and returns its standard output; throws with its stderr on a non-zero exit.
  /// (posix_spawn + waitpid: Foundation's Process notices exits late inside the test runner.)
  @discardableResult
  static func run(_ name: String, _ arguments: [String], stdin: String? = nil) throws -> String {
    let executable = try tool(name)
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let outPath = directory + "/out", errPath = directory + "/err", inPath = directory + "/in"
    try (stdin ?? "").write(toFile: inPath, atomically: false, encoding: .utf8)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard rc == 0 else {
      throw Failure(description: "cannot run \(executable): \(String(cString: strerror(rc)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    guard status == 0 else {
      let errors = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
      throw Failure(description: "\(name) \(arguments.joined(separator: " ")) failed (\(status)): \(errors)")
    }
    return output
  }

  /// A new private temporary directory.
  static func temporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/smptop-elf-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) }
    }
    guard let made else { throw Failure(description: "mkdtemp failed") }
    return String(cString: made)
  }
}

/// A tiny freestanding ELF built at test time with the toolchain's clang and ld.lld.
struct TinyELF {
  static let rodataMarker = "smptop-rodata-marker: hello from .rodata"
  static let textBase: UInt64 = 0xFFFF_FFFF_8010_0000

  static let source = """
    const char greeting[] = "\(rodataMarker)";
    __attribute__((used, section("smptop_probes"))) const unsigned long probe_a = 0x1111;
    __attribute__((used, section("smptop_probes"))) const unsigned long probe_b = 0x2222;
    extern const unsigned long __start_smptop_probes[], __stop_smptop_probes[];
    unsigned long counter;
    unsigned char big_buffer[4096];
    __attribute__((noinline)) static int helper(int x) { return x * 3 + (int)big_buffer[x & 4095]; }
    __attribute__((noinline)) int compute(int x) {
      return helper(x) + (int)(__stop_smptop_probes - __start_smptop_probes) + greeting[x & 7];
    }
    void _start(void) { for (;;) { counter += (unsigned long)compute((int)counter); } }
    """

  let directory: String
  let path: String
  let bytes: [UInt8]

  /// Compiles and links the ELF (once per process; the result is cached).
  static func build() throws -> TinyELF {
    try cached.get()
  }

  private static let cached: Result<TinyELF, any Error> = Result {
    let directory = try Toolchain.temporaryDirectory()
    try source.write(toFile: directory + "/tiny.c", atomically: false, encoding: .utf8)
    try Toolchain.run(
      "clang",
      [
        "--target=x86_64-unknown-none-elf", "-ffreestanding", "-fno-pic", "-mcmodel=kernel",
        "-fno-stack-protector",
        "-O1", "-c", directory + "/tiny.c", "-o", directory + "/tiny.o",
      ])
    try Toolchain.run(
      "ld.lld",
      [
        "-static", "--build-id=sha1", "-e", "_start", "-z", "max-page-size=4096",
        "-Ttext=0x\(String(textBase, radix: 16))", directory + "/tiny.o", "-o", directory + "/tiny.elf",
      ])
    let path = directory + "/tiny.elf"
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return TinyELF(directory: directory, path: path, bytes: [UInt8](data))
  }
}

/// What `readelf -W` (GNU binutils, or llvm-readelf in GNU style) reports about a file.
struct ReadelfReport {
  struct Section: Equatable {
    var index: Int
    var name: String
    var type: String
    var address: UInt64
    var offset: UInt64
    var size: UInt64
  }

  struct Symbol: Hashable {
    var table: String
    var name: String
    var value: UInt64
    var size: UInt64
    var type: String
    var binding: String
    var sectionIndex: String
  }

  struct Segment: Equatable {
    var type: String
    var offset: UInt64
    var virtualAddress: UInt64
    var physicalAddress: UInt64
    var fileSize: UInt64
    var memorySize: UInt64
  }

  var sections: [Section] = []
  var symbols: [Symbol] = []
  var segments: [Segment] = []
  var buildID: String?

  /// Everything after the first `index` space-separated fields of `line` and the one space that
  /// follows them, verbatim: a symbol name may hold (or end in) spaces.
  static func field(_ index: Int, restOf line: Substring) -> String {
    var rest = line[...]
    for _ in 0..<index {
      rest = rest.drop { $0 == " " }
      rest = rest.drop { $0 != " " }
    }
    return rest.first == " " ? String(rest.dropFirst()) : ""
  }

  /// The readelf in use: binutils' (every Swift installation on Linux has it, since the driver
  /// links with gold). It prints a control character in a name as `^J`, where llvm-readelf
  /// prints the raw newline and splits the name over lines (sanitizer builds name string
  /// literals' globals after their text): see ``escaped(_:)``.
  static func readelf() throws -> String { "readelf" }

  /// A symbol name as binutils' readelf prints it: each control character as `^` and the
  /// character 64 places up (`\n` is `^J`, DEL is `^?`).
  static func escaped(_ name: String) -> String {
    var out = ""
    for scalar in name.unicodeScalars {
      if scalar.value < 0x20 {
        out += "^" + String(UnicodeScalar(UInt8(scalar.value + 0x40)))
      } else if scalar.value == 0x7f {
        out += "^?"
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  init(path: String) throws {
    let tool = try Self.readelf()
    let sectionText = try Toolchain.run(tool, ["-S", "-W", path])
    for line in sectionText.split(separator: "\n") {
      let trimmed = line.drop { $0 == " " }
      guard trimmed.hasPrefix("["), let close = trimmed.firstIndex(of: "]"),
        let index = Int(
          trimmed[trimmed.index(after: trimmed.startIndex)..<close].trimmingCharacters(in: .whitespaces))
      else { continue }
      let tokens = trimmed[trimmed.index(after: close)...].split(separator: " ").map(String.init)
      // The type is the token followed by the 16-digit address.
      guard
        let typeIndex = tokens.indices.first(where: {
          $0 + 1 < tokens.count && tokens[$0 + 1].count == 16 && UInt64(tokens[$0 + 1], radix: 16) != nil
        }),
        typeIndex + 3 < tokens.count
      else { continue }
      sections.append(
        Section(
          index: index, name: tokens[..<typeIndex].joined(separator: " "), type: tokens[typeIndex],
          address: UInt64(tokens[typeIndex + 1], radix: 16) ?? 0,
          offset: UInt64(tokens[typeIndex + 2], radix: 16) ?? 0,
          size: UInt64(tokens[typeIndex + 3], radix: 16) ?? 0))
    }

    var table = ""
    for line in try Toolchain.run(tool, ["-s", "-W", path]).split(separator: "\n") {
      if line.hasPrefix("Symbol table '") {
        table = String(line.split(separator: "'")[1])
        continue
      }
      let tokens = line.split(separator: " ").map(String.init)
      guard tokens.count >= 7, tokens[0].hasSuffix(":"), Int(tokens[0].dropLast()) != nil,
        let value = UInt64(tokens[1], radix: 16)
      else { continue }
      let size = tokens[2].hasPrefix("0x") ? UInt64(tokens[2].dropFirst(2), radix: 16) : UInt64(tokens[2])
      symbols.append(
        Symbol(
          table: table, name: Self.field(7, restOf: line), value: value,
          size: size ?? UInt64.max,
          type: tokens[3], binding: tokens[4], sectionIndex: tokens[6]))
    }

    for line in try Toolchain.run(tool, ["-l", "-W", path]).split(separator: "\n") {
      let tokens = line.split(separator: " ").map(String.init)
      guard tokens.count >= 6, tokens[1].hasPrefix("0x"), tokens[2].hasPrefix("0x"),
        let values = Optional(tokens[1...5].map { UInt64($0.dropFirst(2), radix: 16) }), !values.contains(nil)
      else { continue }
      segments.append(
        Segment(
          type: tokens[0], offset: values[0] ?? 0, virtualAddress: values[1] ?? 0,
          physicalAddress: values[2] ?? 0,
          fileSize: values[3] ?? 0, memorySize: values[4] ?? 0))
    }

    for line in try Toolchain.run(tool, ["-n", path]).split(separator: "\n") {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.hasPrefix("Build ID: ") { buildID = String(trimmed.dropFirst("Build ID: ".count)) }
    }
  }
}
