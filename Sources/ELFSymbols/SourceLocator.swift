import Foundation
import NIOConcurrencyHelpers

/// One source frame at a code address: the function and the file, line and column it came from.
///
/// An address inside inlined code has several frames, innermost (the inlined callee) first and
/// the physical function that holds the instruction last.
public struct SourceFrame: Sendable, Hashable, Codable {
  /// The function's name as the debug information (or the symbol table) spells it: mangled for
  /// Swift; pass it through `SwiftDemangler` for display.
  public var function: String
  /// The source file, or nil when unknown (no DWARF, compiler-generated code).
  public var file: String?
  /// The 1-based line, or 0 when unknown.
  public var line: Int
  /// The 1-based column, or 0 when unknown.
  public var column: Int
  /// Whether this frame was inlined into the next one.
  public var isInlined: Bool

  /// Creates a frame.
  public init(function: String, file: String?, line: Int, column: Int, isInlined: Bool) {
    self.function = function
    self.file = file
    self.line = line
    self.column = column
    self.isInlined = isInlined
  }

  /// Whether the frame names a real source line (a file and a line above 0).
  public var hasLine: Bool { file != nil && line > 0 }

  /// `File.swift:27` (the file's last path component), or nil without a line.
  public var shortLocation: String? {
    guard let file, line > 0 else { return nil }
    let name = file.split(separator: "/").last.map(String.init) ?? file
    return "\(name):\(line)"
  }
}

/// Why a `SourceLocator` could not be started.
public struct SourceLocatorError: Error, Sendable, Hashable, CustomStringConvertible {
  /// A sentence saying what is missing and what to do.
  public var message: String

  /// Creates an error.
  public init(_ message: String) { self.message = message }

  public var description: String { message }
}

/// Maps code addresses of an ELF file to source frames (function, file, line, column, inlining)
/// by driving `llvm-symbolizer` as one long-lived subprocess, with a cache.
///
/// `llvm-symbolizer` reads the DWARF this project's toolchain emits (elfutils 0.188 does not, and
/// a DWARF reader of our own would be a second compiler to keep in step). Addresses go to its
/// stdin one per line and come back as one JSON line each (`--output-style=JSON --inlining`).
/// When the subprocess fails, the address has no debug information or lies outside the ELF's
/// executable sections, the answer falls back to the ELF symbol table: one frame with the
/// function name and no file.
///
/// Thread-safe; the subprocess ends with the locator (or with `close()`).
public final class SourceLocator: Sendable {
  /// The symbolizer executable in use.
  public let symbolizerPath: String
  /// The ELF the addresses belong to.
  public let elfPath: String

  private let symbols: ELFFile?
  private let state: NIOLockedValueBox<State>

  private struct State {
    var process: Process?
    var input: Int32 = -1
    var output: Int32 = -1
    var pending: [UInt8] = []
    var cache: [UInt64: [SourceFrame]] = [:]
    var broken = false
  }

  /// How many addresses go to the subprocess before their answers are read (keeps both pipe
  /// buffers well below their 64 KiB capacity).
  static let batchSize = 64

  /// Starts `llvm-symbolizer` for `elfPath`.
  ///
  /// - Parameters:
  ///   - elfPath: the ELF file whose addresses will be asked for.
  ///   - symbols: the parsed ELF, for the fallback to symbol names (read from `elfPath` when nil;
  ///     without a readable symbol table the fallback gives `0x…` names).
  ///   - symbolizerPath: the executable; `findSymbolizer()` when nil.
  /// - Throws: `SourceLocatorError` when no `llvm-symbolizer` exists or it cannot be started.
  public init(elfPath: String, symbols: ELFFile? = nil, symbolizerPath: String? = nil)
    throws(SourceLocatorError)
  {
    guard let tool = symbolizerPath ?? Self.findSymbolizer() else {
      throw SourceLocatorError(
        "llvm-symbolizer not found (looked beside `swift` in PATH, in PATH and /usr/bin); "
          + "install Debian's llvm or set SMPTOP_SYMBOLIZER")
    }
    guard FileManager.default.isExecutableFile(atPath: tool) else {
      throw SourceLocatorError("\(tool) is not an executable file")
    }
    self.symbolizerPath = tool
    self.elfPath = elfPath
    self.symbols = symbols ?? (try? ELFFile(path: elfPath))
    signal(SIGPIPE, SIG_IGN)  // a symbolizer that dies must fail a write, not end this process

    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = [
      "--obj=" + elfPath, "--output-style=JSON", "--inlining", "--no-demangle", "--functions=linkage",
    ]
    let stdin = Pipe()
    let stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw SourceLocatorError("cannot start \(tool): \(error.localizedDescription)")
    }
    var initial = State()
    initial.process = process
    initial.input = dup(stdin.fileHandleForWriting.fileDescriptor)
    initial.output = dup(stdout.fileHandleForReading.fileDescriptor)
    try? stdin.fileHandleForWriting.close()
    try? stdout.fileHandleForReading.close()
    state = NIOLockedValueBox(initial)
  }

  deinit {
    close()
  }

  /// Ends the subprocess; later lookups answer from the cache or the symbol table.
  public func close() {
    state.withLockedValue { state in
      Self.shutDown(&state)
    }
  }

  /// The first usable `llvm-symbolizer`: `SMPTOP_SYMBOLIZER`, then the one beside `swift` in PATH
  /// (it matches the compiler's DWARF), then PATH, then Debian's `/usr/bin/llvm-symbolizer*`.
  public static func findSymbolizer() -> String? {
    let environment = ProcessInfo.processInfo.environment
    let manager = FileManager.default
    if let explicit = environment["SMPTOP_SYMBOLIZER"], !explicit.isEmpty {
      return manager.isExecutableFile(atPath: explicit) ? explicit : nil
    }
    let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
    for directory in path where manager.isExecutableFile(atPath: directory + "/swift") {
      let candidate = directory + "/llvm-symbolizer"
      if manager.isExecutableFile(atPath: candidate) { return candidate }
    }
    for directory in path + ["/usr/bin"] {
      let candidate = directory + "/llvm-symbolizer"
      if manager.isExecutableFile(atPath: candidate) { return candidate }
    }
    let versioned = ((try? manager.contentsOfDirectory(atPath: "/usr/bin")) ?? [])
      .filter { $0.hasPrefix("llvm-symbolizer-") }.sorted()
    return versioned.last.map { "/usr/bin/" + $0 }
  }

  /// The frames at `address`, innermost first; never empty.
  public func frames(at address: UInt64) -> [SourceFrame] {
    frames(at: [address])[address] ?? [fallback(address)]
  }

  /// The frames at each address (innermost first, never empty), asking the subprocess only for
  /// addresses not yet cached.
  public func frames(at addresses: [UInt64]) -> [UInt64: [SourceFrame]] {
    var result: [UInt64: [SourceFrame]] = [:]
    var missing: [UInt64] = []
    state.withLockedValue { state in
      for address in addresses where result[address] == nil {
        if let hit = state.cache[address] {
          result[address] = hit
        } else if isCode(address) {
          missing.append(address)
        } else {
          result[address] = [fallback(address)]
        }
      }
      var seen = Set<UInt64>()
      missing = missing.filter { seen.insert($0).inserted }
      var index = 0
      while index < missing.count {
        let batch = Array(missing[index..<min(missing.count, index + Self.batchSize)])
        index += batch.count
        let answers = Self.ask(&state, batch)
        for (offset, address) in batch.enumerated() {
          var frames = offset < answers.count ? answers[offset] : []
          if frames.isEmpty { frames = [fallback(address)] }
          state.cache[address] = frames
          result[address] = frames
        }
      }
    }
    return result
  }

  /// The outermost-first search for the best single location: the innermost frame with a source
  /// line, else the first frame.
  public func location(at address: UInt64) -> SourceFrame {
    let all = frames(at: address)
    return all.first(where: \.hasLine) ?? all[0]
  }

  /// Whether `address` lies in an executable section (always true without a readable ELF).
  ///
  /// Addresses elsewhere are not sent: DWARF of code that `--gc-sections` dropped keeps address 0
  /// onwards, and the symbolizer would name a discarded function for a small address.
  private func isCode(_ address: UInt64) -> Bool {
    guard let symbols else { return true }
    return symbols.sections.contains { section in
      section.isAllocated && section.flags & 0x4 != 0 && section.addressRange.contains(address)
    }
  }

  /// The symbol-table answer: the containing function, no file.
  private func fallback(_ address: UInt64) -> SourceFrame {
    let name = symbols?.lookup(address)?.name ?? "0x" + String(address, radix: 16)
    return SourceFrame(function: name, file: nil, line: 0, column: 0, isInlined: false)
  }

  // MARK: The subprocess

  /// One JSON line of `llvm-symbolizer --output-style=JSON`.
  private struct Reply: Decodable {
    struct Frame: Decodable {
      var FunctionName: String?
      var FileName: String?
      var Line: Int?
      var Column: Int?
    }
    var Address: String?
    var Symbol: [Frame]?
    var Error: ErrorBody?
    struct ErrorBody: Decodable { var Message: String? }
  }

  /// Sends a batch and reads one reply line per address; empty arrays where it failed.
  private static func ask(_ state: inout State, _ batch: [UInt64]) -> [[SourceFrame]] {
    guard !state.broken, state.process != nil else { return [] }
    let text = batch.map { "0x" + String($0, radix: 16) + "\n" }.joined()
    guard writeAll(state.input, Array(text.utf8)) else {
      shutDown(&state)
      return []
    }
    var out: [[SourceFrame]] = []
    let decoder = JSONDecoder()
    for _ in batch {
      guard let line = readLine(&state) else {
        shutDown(&state)
        return out
      }
      out.append(parse(line, decoder))
    }
    return out
  }

  /// The frames of one reply; the last is the physical function, all before it were inlined.
  private static func parse(_ line: [UInt8], _ decoder: JSONDecoder) -> [SourceFrame] {
    guard let reply = try? decoder.decode(Reply.self, from: Data(line)), let raw = reply.Symbol else {
      return []
    }
    let frames = raw.enumerated().compactMap { index, frame -> SourceFrame? in
      guard let name = frame.FunctionName, !name.isEmpty, name != "??" else { return nil }
      let file = frame.FileName.flatMap { $0.isEmpty || $0 == "??" ? nil : $0 }
      return SourceFrame(
        function: name, file: file, line: max(0, frame.Line ?? 0), column: max(0, frame.Column ?? 0),
        isInlined: index < raw.count - 1)
    }
    return frames
  }

  private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
      let count = bytes.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return write(fd, base + done, raw.count - done)
      }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return false }
      done += count
    }
    return true
  }

  private static func readLine(_ state: inout State) -> [UInt8]? {
    while true {
      if let newline = state.pending.firstIndex(of: UInt8(ascii: "\n")) {
        let line = Array(state.pending[..<newline])
        state.pending.removeSubrange(...newline)
        if line.isEmpty { continue }  // the blank line JSON style may print between replies
        return line
      }
      var buffer = [UInt8](repeating: 0, count: 65536)
      let count = buffer.withUnsafeMutableBytes { read(state.output, $0.baseAddress, $0.count) }
      if count < 0 && errno == EINTR { continue }
      guard count > 0 else { return nil }
      state.pending += buffer[0..<count]
    }
  }

  private static func shutDown(_ state: inout State) {
    state.broken = true
    if state.input >= 0 {
      Glibc.close(state.input)
      state.input = -1
    }
    if let process = state.process {
      if process.isRunning { process.terminate() }
      process.waitUntilExit()
      state.process = nil
    }
    if state.output >= 0 {
      Glibc.close(state.output)
      state.output = -1
    }
  }
}
