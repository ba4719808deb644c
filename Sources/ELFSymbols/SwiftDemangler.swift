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

/// Demangles Swift symbol names (`$s…`, `_$s…`, Embedded `$e…`, Swift 4 `_T0…`) with the
/// runtime's `swift_demangle`, caching results. Other names pass through unchanged.
///
/// Thread-safe: the cache is behind a lock (`NIOLockedValueBox`); share `SwiftDemangler.shared`.
public final class SwiftDemangler: Sendable {
  /// A process-wide demangler.
  public static let shared = SwiftDemangler()

  private struct Cache {
    var full: [String: String] = [:]
    var simplified: [String: String] = [:]
  }

  private let cache = NIOLockedValueBox(Cache())
  private let capacity: Int

  /// Creates a demangler whose caches hold at most `capacity` names each (cleared when full).
  public init(capacity: Int = 1 << 16) {
    self.capacity = max(1, capacity)
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
    let result = name.withCString { pointer -> String? in
      guard let output = _swiftDemangle(pointer, strlen(pointer), nil, nil, 0) else { return nil }
      defer { free(output) }
      return SwiftTypeSugar.apply(String(cString: output))
    }
    guard let result else { return nil }
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

  /// A short form of a Swift symbol, close to `swift demangle --simplified`: no module names,
  /// no types, argument labels only (`Counter.increment(by:)`). Other names pass through.
  public func simplifiedName(_ name: String) -> String {
    if let hit = cache.withLockedValue({ $0.simplified[name] }) { return hit }
    guard let full = demangleSwift(name) else { return name }
    let result = SwiftNameSimplifier.simplify(full)
    cache.withLockedValue { cache in
      if cache.simplified.count >= capacity { cache.simplified.removeAll(keepingCapacity: true) }
      cache.simplified[name] = result
    }
    return result
  }
}
