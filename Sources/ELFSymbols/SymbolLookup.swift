/// Address ↔ symbol lookups shared by ELF symbol tables and Linux `System.map` files.
public protocol SymbolLookup: Sendable {
  /// The address of the symbol called `name` (a global definition preferred), or nil.
  func address(of name: String) -> UInt64?
  /// The symbol that best describes `address`: the innermost sized symbol containing it, or
  /// else the nearest symbol at or below it. Nil when no symbol lies at or below `address`.
  func lookup(_ address: UInt64) -> SymbolMatch?
}

/// The answer to an address lookup: a symbol and the offset into it.
public struct SymbolMatch: Sendable, Hashable, CustomStringConvertible {
  /// The symbol's name as stored (mangled, for Swift symbols).
  public var name: String
  /// The symbol's start address.
  public var address: UInt64
  /// The symbol's size, or nil when unknown (System.map, assembler labels).
  public var size: UInt64?
  /// `address - symbol address`.
  public var offset: UInt64

  public init(name: String, address: UInt64, size: UInt64?, offset: UInt64) {
    self.name = name
    self.address = address
    self.size = size
    self.offset = offset
  }

  /// Whether the symbol's known size covers the looked-up address (false when size is unknown
  /// or the address lies in padding after the symbol).
  public var isWithinSymbol: Bool {
    guard let size else { return false }
    return offset < size
  }

  /// `name+0x1a` (just `name` at offset 0), as a kernel backtrace would print it.
  public var description: String { Self.format(name, offset) }

  /// The same, with Swift names demangled (and optionally simplified).
  public func formatted(demangler: SwiftDemangler = .shared, simplified: Bool = false) -> String {
    Self.format(simplified ? demangler.simplifiedName(name) : demangler.demangle(name), offset)
  }

  static func format(_ name: String, _ offset: UInt64) -> String {
    offset == 0 ? name : "\(name)+0x\(String(offset, radix: 16))"
  }
}

/// Symbols sorted by address for binary search.
///
/// At one address the preferred symbol comes last (higher `rank`; the ELF reader ranks sized
/// over unsized, functions/objects over untyped labels, global over local), so a search that
/// walks down from the upper bound meets it first. `maxEnd[i]` is the largest end address of
/// any sized symbol at index ≤ i, which bounds how far down a containing symbol can start.
struct AddressIndex: Sendable {
  struct Entry: Sendable {
    var address: UInt64
    var size: UInt64  // 0 = unknown
    var name: String
    var rank: Int
  }

  let entries: [Entry]
  private let maxEnd: [UInt64]

  init(_ unsorted: [Entry]) {
    let sorted = unsorted.sorted { lhs, rhs in
      if lhs.address != rhs.address { return lhs.address < rhs.address }
      if lhs.rank != rhs.rank { return lhs.rank < rhs.rank }
      return lhs.name > rhs.name  // deterministic: the alphabetically first name wins ties
    }
    var maxEnd: [UInt64] = []
    maxEnd.reserveCapacity(sorted.count)
    var running: UInt64 = 0
    for entry in sorted {
      if entry.size > 0 {
        let (end, overflow) = entry.address.addingReportingOverflow(entry.size)
        running = max(running, overflow ? UInt64.max : end)
      }
      maxEnd.append(running)
    }
    entries = sorted
    self.maxEnd = maxEnd
  }

  var isEmpty: Bool { entries.isEmpty }

  func lookup(_ address: UInt64) -> SymbolMatch? {
    // First index whose address is > the target.
    var low = 0
    var high = entries.count
    while low < high {
      let mid = low + (high - low) / 2
      if entries[mid].address <= address { low = mid + 1 } else { high = mid }
    }
    guard low > 0 else { return nil }
    let nearest = low - 1
    // The innermost sized symbol containing the address.
    var index = nearest
    while index >= 0 && maxEnd[index] > address {
      let entry = entries[index]
      if entry.size > 0 && address - entry.address < entry.size {
        return SymbolMatch(
          name: entry.name, address: entry.address, size: entry.size, offset: address - entry.address)
      }
      index -= 1
    }
    let entry = entries[nearest]
    return SymbolMatch(
      name: entry.name, address: entry.address, size: entry.size > 0 ? entry.size : nil,
      offset: address - entry.address)
  }
}

extension ELFFile: SymbolLookup {
  public func address(of name: String) -> UInt64? {
    let candidates = symbols(named: name).filter(\.isDefined)
    return (candidates.first { $0.binding != .local } ?? candidates.first)?.value
  }

  public func lookup(_ address: UInt64) -> SymbolMatch? {
    addressIndex.lookup(address)
  }
}

/// Another lookup whose addresses are all moved by `slide` (wrapping), for a kernel loaded away
/// from its link address: KASLR, or a PIE. `slide = runtime address − link address`, e.g. the
/// guest's `_text` minus the System.map's.
public struct SlidSymbolLookup: SymbolLookup {
  /// The symbols at their link addresses.
  public let base: any SymbolLookup
  /// What to add to a link address to get a runtime address.
  public let slide: UInt64

  /// Wraps `base`, moving its addresses by `slide` (two's complement for a negative slide).
  public init(_ base: any SymbolLookup, slide: UInt64) {
    self.base = base
    self.slide = slide
  }

  public func address(of name: String) -> UInt64? {
    base.address(of: name).map { $0 &+ slide }
  }

  public func lookup(_ address: UInt64) -> SymbolMatch? {
    guard var match = base.lookup(address &- slide) else { return nil }
    match.address = match.address &+ slide
    return match
  }
}
