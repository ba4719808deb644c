import Glibc
import NIOConcurrencyHelpers

/// The Swift runtime's demangler, exported by libswiftCore (which every host Swift binary links):
/// `char *swift_demangle(const char *mangled, size_t length, char *buffer, size_t *size, uint32_t flags)`.
/// With a NULL buffer the result is malloc'd (free it); `flags` must be 0; non-Swift input gives NULL.
@_silgen_name("swift_demangle")
private func _swiftDemangle(
  _ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int,
  _ outputBuffer: UnsafeMutablePointer<CChar>?,
  _ outputBufferSize: UnsafeMutablePointer<Int>?, _ flags: UInt32
) -> UnsafeMutablePointer<CChar>?

/// The toolchain's `libswiftDemangle.so`, the library behind the `swift-demangle` tool, loaded
/// once with `dlopen`. Its C API prints both forms the tool prints: the full name with type
/// sugar (`[Swift.Int]?`) and the simplified name (`Counter.increment(by:)`).
struct DemangleLibrary: @unchecked Sendable {
  /// `size_t swift_demangle_get…DemangledName(const char *mangled, char *buffer, size_t length)`:
  /// the length of the demangled name (0 when `mangled` is not a Swift symbol); the buffer
  /// receives as much as fits, NUL-terminated.
  typealias Function = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int

  /// The library's path.
  let path: String
  private let full: Function
  private let simplified: Function

  /// The library beside the first `swift` in `PATH` (its `../lib`), else the dynamic linker's
  /// search path; nil when neither has it.
  static let shared: DemangleLibrary? = {
    var candidates: [String] = []
    if let path = getenv("PATH") {
      for directory in String(cString: path).split(separator: ":") {
        guard let real = realpath(directory + "/swift", nil) else { continue }
        let binary = String(cString: real)
        free(real)
        let bin = binary[..<(binary.lastIndex(of: "/") ?? binary.startIndex)]
        candidates.append(bin + "/../lib/libswiftDemangle.so")
        break
      }
    }
    candidates.append("libswiftDemangle.so")
    for path in candidates {
      guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { continue }
      guard let full = dlsym(handle, "swift_demangle_getDemangledName"),
        let simplified = dlsym(handle, "swift_demangle_getSimplifiedDemangledName")
      else {
        dlclose(handle)
        continue
      }
      // The handle stays open for the life of the process: the functions live in it.
      return DemangleLibrary(
        path: path, full: unsafeBitCast(full, to: Function.self),
        simplified: unsafeBitCast(simplified, to: Function.self))
    }
    return nil
  }()

  /// The full demangled name, nil when `name` is not a Swift symbol.
  func demangle(_ name: String) -> String? { call(full, name) }

  /// The simplified demangled name, nil when `name` is not a Swift symbol.
  func simplify(_ name: String) -> String? { call(simplified, name) }

  private func call(_ function: Function, _ name: String) -> String? {
    name.withCString { mangled -> String? in
      var capacity = 512
      while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let length = function(mangled, &buffer, capacity)
        if length == 0 { return nil }
        if length < capacity {
          return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        capacity = length + 1
      }
    }
  }
}

/// Demangles Swift symbol names (`$s…`, `_$s…`, Embedded `$e…`, Swift 4 `_T0…`), caching results.
/// Other names pass through unchanged.
///
/// The names are those of the `swift-demangle` tool (`--compact`, and `--compact --simplified`
/// for ``simplifiedName(_:)``), printed by the toolchain's `libswiftDemangle.so`. Without that
/// library (no toolchain beside `swift` in `PATH`) the runtime's `swift_demangle` is the
/// fallback: full names without type sugar (`Swift.Optional<Swift.Int>`), and the same full
/// name where a simplified one is asked for.
///
/// Thread-safe: the cache is behind a lock (`NIOLockedValueBox`); share `SwiftDemangler.shared`.
public final class SwiftDemangler: Sendable {
  /// A process-wide demangler.
  public static let shared = SwiftDemangler()

  /// The path of the toolchain library in use, nil when demangling falls back to the runtime.
  public static var libraryPath: String? { DemangleLibrary.shared?.path }

  private struct Cache {
    var full: [String: String] = [:]
    var simplified: [String: String] = [:]
  }

  private let cache = NIOLockedValueBox(Cache())
  private let capacity: Int
  private let library: DemangleLibrary?

  /// Creates a demangler whose caches hold at most `capacity` names each (cleared when full).
  /// With `useLibrary` false it uses the runtime's `swift_demangle` only (the fallback).
  public init(capacity: Int = 1 << 16, useLibrary: Bool = true) {
    self.capacity = max(1, capacity)
    self.library = useLibrary ? DemangleLibrary.shared : nil
  }

  /// Whether `name` has a Swift mangling prefix.
  public static func isMangledSwift(_ name: String) -> Bool {
    let utf8 = name.utf8
    var rest = Substring(name)
    if utf8.first == UInt8(ascii: "_") { rest = rest.dropFirst() }
    return rest.hasPrefix("$s") || rest.hasPrefix("$S") || rest.hasPrefix("$e") || rest.hasPrefix("_T0")
  }

  /// The demangled name, or nil when `name` is not a Swift symbol.
  public func demangleSwift(_ name: String) -> String? {
    guard Self.isMangledSwift(name) else { return nil }
    if let hit = cache.withLockedValue({ $0.full[name] }) { return hit }
    guard let result = library.map({ $0.demangle(name) }) ?? Self.runtimeDemangle(name) else { return nil }
    cache.withLockedValue { cache in
      if cache.full.count >= capacity { cache.full.removeAll(keepingCapacity: true) }
      cache.full[name] = result
    }
    return result
  }

  /// The demangled name for Swift symbols, `name` itself otherwise.
  public func demangle(_ name: String) -> String {
    demangleSwift(name) ?? name
  }

  /// The short form `swift-demangle --simplified` prints: no module names, no types, argument
  /// labels only (`Counter.increment(by:)`). Other names pass through; without the toolchain
  /// library, the full demangled name.
  public func simplifiedName(_ name: String) -> String {
    guard Self.isMangledSwift(name) else { return name }
    if let hit = cache.withLockedValue({ $0.simplified[name] }) { return hit }
    guard let result = library.map({ $0.simplify(name) }) ?? Self.runtimeDemangle(name) else { return name }
    cache.withLockedValue { cache in
      if cache.simplified.count >= capacity { cache.simplified.removeAll(keepingCapacity: true) }
      cache.simplified[name] = result
    }
    return result
  }

  private static func runtimeDemangle(_ name: String) -> String? {
    name.withCString { pointer -> String? in
      guard let output = _swiftDemangle(pointer, strlen(pointer), nil, nil, 0) else { return nil }
      defer { free(output) }
      return String(cString: output)
    }
  }
}
