/// A Linux `System.map` (or `/proc/kallsyms`): lines of `ADDRESS TYPE NAME [MODULE]`, such as
/// `ffffffff81000000 T _stext`, so a generic mode can symbolize a Linux guest.
public struct SystemMap: Sendable, SymbolLookup {
  /// One line of the map.
  public struct Entry: Sendable, Hashable {
    public var address: UInt64
    /// The `nm` type letter: `T`/`t` text, `D`/`d` data, `B`/`b` bss, `R`/`r` read-only,
    /// `W`/`w` weak, `A` absolute, `U` undefined, ... (upper case = global).
    public var type: Character
    public var name: String
    /// The module in brackets (kallsyms only), without the brackets.
    public var module: String?

    /// Whether the symbol names a location worth symbolizing addresses with.
    public var isAddressSymbol: Bool {
      !"AaUNn?".contains(type) && !name.isEmpty
    }
  }

  /// The entries in file order.
  public let entries: [Entry]
  private let index: AddressIndex
  private let byName: [String: Int]

  /// Reads a map file.
  public init(path: String) throws(ELFError) {
    let bytes = try ELFFile.readFile(path)
    try self.init(text: String(decoding: bytes, as: UTF8.self))
  }

  /// Parses map text. Blank lines are skipped; any other line that is not
  /// `HEX TYPE NAME [[MODULE]]` is a `.malformed` error naming the line.
  public init(text: String) throws(ELFError) {
    var entries: [Entry] = []
    var lineNumber = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
      if fields.isEmpty { continue }
      guard fields.count >= 3, fields.count <= 4, fields[0].count <= 16,
        let address = UInt64(fields[0], radix: 16),
        fields[1].count == 1, let type = fields[1].first
      else {
        throw ELFError(
          .malformed, "System.map line \(lineNumber) is not \"ADDRESS TYPE NAME\": \(line.prefix(80))")
      }
      var module: String?
      if fields.count == 4 {
        guard fields[3].hasPrefix("["), fields[3].hasSuffix("]"), fields[3].count >= 2 else {
          throw ELFError(.malformed, "System.map line \(lineNumber) has a fourth field that is not [module]")
        }
        module = String(fields[3].dropFirst().dropLast())
      }
      entries.append(Entry(address: address, type: type, name: String(fields[2]), module: module))
    }
    guard !entries.isEmpty else { throw ELFError(.notELF, "the System.map has no symbols") }
    self.entries = entries
    var byName: [String: Int] = [:]
    for (position, entry) in entries.enumerated() where entry.type != "U" {
      // Keep the first global definition, else the first definition.
      if let existing = byName[entry.name], entries[existing].type.isUppercase || !entry.type.isUppercase {
        continue
      }
      byName[entry.name] = position
    }
    self.byName = byName
    index = AddressIndex(
      entries.filter(\.isAddressSymbol).map {
        AddressIndex.Entry(address: $0.address, size: 0, name: $0.name, rank: $0.type.isUppercase ? 1 : 0)
      })
  }

  public func address(of name: String) -> UInt64? {
    byName[name].map { entries[$0].address }
  }

  public func lookup(_ address: UInt64) -> SymbolMatch? {
    index.lookup(address)
  }
}
