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
      if let locator { return Self.location(of: address, locator: locator) }
      return symbols?.lookup(address).map {
        CodeLocation(function: Self.displayName($0.name), file: nil, line: 0)
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
    elf.map { Self.isAfterCall(address, in: $0) } == true ? address - 1 : address
  }

  /// `File.swift:27 in Mutex.lock()` when the kernel has source lines for it (a return address
  /// names the line of its call), else `symbol+0x1a`; nil when nothing is known.
  public func text(_ address: UInt64) -> String? {
    cached(address, \.text) {
      if let l = location(lookupAddress(address)), l.shortFileLine != nil {
        return l.text + (l.inlined ? " [inlined]" : "")
      }
      return Self.shortName(symbols, address)
    }
  }

  /// The source line and function of a code site, nil without source lines for it.
  public func site(_ address: UInt64) -> TraceSite? {
    guard let l = location(lookupAddress(address)), let line = l.shortFileLine else { return nil }
    return TraceSite(fileLine: line, function: l.function + (l.inlined ? " [inlined]" : ""))
  }

  /// The source location of `address` (innermost frame first, the functions it was inlined
  /// into after it), or the symbol alone without DWARF for it; nil when nothing is known.
  public static func location(of address: UInt64, locator: SourceLocator) -> CodeLocation? {
    let frames = locator.frames(at: address)
    guard let first = frames.first, !first.function.hasPrefix("0x") else { return nil }
    let chain = frames.map { f in
      CodeLocation(
        function: displayName(f.function), file: f.hasLine ? f.file : nil, line: f.hasLine ? f.line : 0,
        inlined: f.isInlined)
    }
    var head = chain[0]
    head.inlinedInto = Array(chain.dropFirst())
    return head
  }

  /// Whether the instruction that ends right before `address` is a call (`call rel32`, or
  /// `call` through a register or memory operand), read from the ELF's code.
  static func isAfterCall(_ address: UInt64, in elf: ELFFile) -> Bool {
    guard address >= 7, let b = try? elf.bytes(atVirtualAddress: address - 7, count: 7), b.count == 7 else {
      return false
    }
    if b[2] == 0xE8 { return true }  // call rel32
    // FF /2: call r/m64, with ModRM at b[i] and the instruction ending at `address`.
    func ffCall(_ op: Int) -> Bool {
      guard b[op] == 0xFF else { return false }
      let modrm = b[op + 1]
      guard (modrm >> 3) & 7 == 2 else { return false }
      let mod = modrm >> 6
      let rm = modrm & 7
      var length = 2
      if mod != 3 && rm == 4 { length += 1 }  // SIB
      if mod == 1 { length += 1 } else if mod == 2 || (mod == 0 && rm == 5) { length += 4 }
      return op + length == 7
    }
    return (0..<6).contains { ffCall($0) }
  }

  /// The display form of a function's symbol: demangled, shortened, without optimizer
  /// annotations and the module prefix.
  public static func displayName(_ symbol: String) -> String {
    var name = SwiftDemangler.shared.simplifiedName(symbol)
    // Optimizer annotations say nothing to a kernel engineer reading a RIP column.
    for prefix in ["specialized ", "merged ", "outlined ", "static "] {
      while name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
    }
    if name.hasPrefix("Kernel.") { name.removeFirst("Kernel.".count) }
    return name
  }

  /// The display form of the symbol at `address`.
  static func shortName(_ symbols: (any SymbolLookup)?, _ address: UInt64) -> String? {
    guard let match = symbols?.lookup(address) else { return nil }
    let name = displayName(match.name)
    return match.offset == 0 ? name : "\(name)+0x\(String(match.offset, radix: 16))"
  }
}
