import ELFSymbols
import Inspector
import Synchronization
import Testing

/// One symbol display per target, one cache: the second question about an address is answered
/// without asking the symbol table again, whichever symbolizer asks.
@Suite struct SymbolDisplayTests {
  /// A symbol table with two functions that counts the lookups it answers.
  final class CountingSymbols: SymbolLookup {
    let lookups = Atomic<Int>(0)
    func address(of name: String) -> UInt64? { nil }
    func lookup(_ address: UInt64) -> SymbolMatch? {
      lookups.add(1, ordering: .relaxed)
      let (name, start): (String, UInt64) = address >= 0x2000 ? ("beta", 0x2000) : ("alpha", 0x1000)
      guard address >= 0x1000 else { return nil }
      return SymbolMatch(name: name, address: start, size: 0x100, offset: address - start)
    }
  }

  @Test func aSecondLookupIsACacheHit() {
    let symbols = CountingSymbols()
    let display = SymbolDisplay(symbols: symbols)
    #expect(display.text(0x1010) == "alpha+0x10")
    let first = symbols.lookups.load(ordering: .relaxed)
    #expect(first > 0)
    // The same address again, as text and as a location: answered from the cache.
    #expect(display.text(0x1010) == "alpha+0x10")
    #expect(display.location(0x1010)?.function == "alpha")
    #expect(symbols.lookups.load(ordering: .relaxed) == first)
    #expect(display.statistics.hits >= 2)
    // Negative control: another address is a miss and asks the table.
    #expect(display.text(0x2004) == "beta+0x4")
    #expect(symbols.lookups.load(ordering: .relaxed) > first)
    #expect(display.text(0x10) == nil)
  }

  @Test func symbolizersOfOneDisplayShareItsCache() {
    let symbols = CountingSymbols()
    let display = SymbolDisplay(symbols: symbols)
    let a: @Sendable (UInt64) -> String? = { display.text($0) }
    let b: @Sendable (UInt64) -> String? = { display.text($0) }
    #expect(a(0x1020) == "alpha+0x20")
    let once = symbols.lookups.load(ordering: .relaxed)
    #expect(b(0x1020) == "alpha+0x20")
    #expect(
      symbols.lookups.load(ordering: .relaxed) == once, "the second symbolizer hit the first one's entry")
    // A separate display does not share the cache: it asks again.
    let other = Target.symbolizer(symbols)
    #expect(other(0x1020) == "alpha+0x20")
    #expect(symbols.lookups.load(ordering: .relaxed) == 2 * once)
  }
}
