import ELFSymbols
import NIOConcurrencyHelpers

/// Code addresses as text, for every place that shows one: the dashboard's RIPs and sites,
/// backtraces, trace sites. One per target, with one cache shared by all of them: the dashboard
/// asks for the same addresses every frame.
///
/// Thread-safe: the UI thread and the sampler use the same instance.
public final class SymbolDisplay: Sendable {
  /// What is known about one address, each part worked out on first use.
  struct Entry {
    /// The source location of the address itself (nil inside: nothing known).
    var location: CodeLocation??
    /// The display text of the address read as a return address where it follows a call.
    var text: String??
  }

  private let symbols: (any SymbolLookup)?
  private let locator: SourceLocator?
  private let elf: ELFFile?
  private let cache = NIOLockedValueBox<[UInt64: Entry]>([:])
  private let counts = NIOLockedValueBox<(hits: Int, misses: Int)>((0, 0))
  /// Entries kept before the cache starts over.
  static let capacity = 16384

  /// A display over `symbols` and, when given, the kernel's source lines.
  public init(symbols: (any SymbolLookup)?, locator: SourceLocator? = nil, elf: ELFFile? = nil) {
    self.symbols = symbols
    self.locator = locator
    self.elf = elf
  }

  /// Lookups answered from the cache, and lookups that had to work the answer out.
  public var statistics: (hits: Int, misses: Int) { counts.withLockedValue { $0 } }

  /// The cached part of `address`'s entry, or the value `make` works out (then cached).
  private func cached<T>(
    _ address: UInt64, _ part: WritableKeyPath<Entry, T??>, _ make: () -> T?
  ) -> T? {
    if let hit = cache.withLockedValue({ $0[address]?[keyPath: part] }) {
      counts.withLockedValue { $0.hits += 1 }
      return hit
    }
    counts.withLockedValue { $0.misses += 1 }
    let value = make()
    cache.withLockedValue { c in
      if c.count >= Self.capacity { c.removeAll(keepingCapacity: true) }
      c[address, default: Entry()][keyPath: part] = .some(value)
    }
    return value
  }

  /// The source location of `address` (innermost frame first, the functions it was inlined into
  /// after it), or the ELF symbol alone without source lines for it; nil when nothing is known.
  public func location(_ address: UInt64) -> CodeLocation? {
    cached(address, \.location) {
      if let locator { return Target.location(of: address, locator: locator) }
      return symbols?.lookup(address).map {
        CodeLocation(function: Target.displayName($0.name), file: nil, line: 0)
      }
    }
  }

  /// Whether `address`'s location is already worked out.
  public func hasLocation(_ address: UInt64) -> Bool {
    cache.withLockedValue { $0[address]?.location != nil }
  }

  /// The address looked up for `address`: the call's when `address` follows a call instruction
  /// (a return address, an acquire site).
  private func lookupAddress(_ address: UInt64) -> UInt64 {
    elf.map { Target.isAfterCall(address, in: $0) } == true ? address - 1 : address
  }

  /// `File.swift:27 in Mutex.lock()` when the kernel has source lines for it (a return address
  /// names the line of its call), else `symbol+0x1a`; nil when nothing is known.
  public func text(_ address: UInt64) -> String? {
    cached(address, \.text) {
      if let l = location(lookupAddress(address)), l.shortFileLine != nil {
        return l.text + (l.inlined ? " [inlined]" : "")
      }
      return Target.shortName(symbols, address)
    }
  }

  /// The source line and function of a code site, nil without source lines for it.
  public func site(_ address: UInt64) -> TraceSite? {
    guard let l = location(lookupAddress(address)), let line = l.shortFileLine else { return nil }
    return TraceSite(fileLine: line, function: l.function + (l.inlined ? " [inlined]" : ""))
  }
}
