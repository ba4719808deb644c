import ELFSymbols
import NIOConcurrencyHelpers

extension Target {
  /// A thread-safe namer for profile frames: the function an address lies in (demangled and
  /// shortened, as everywhere else), `0x…` when no symbol covers it, or `[unseen]` for the
  /// stack of an unseen sample.
  public func makeFunctionNamer() -> @Sendable (UInt64) -> String {
    let symbols = self.symbols
    let cache = NIOLockedValueBox<[UInt64: String]>([:])
    return { address in
      if address == ProfileSample.unseenAddress { return ProfileSample.unseenName }
      if let hit = cache.withLockedValue({ $0[address] }) { return hit }
      let name =
        symbols?.lookup(address).map { SymbolDisplay.displayName($0.name) } ?? "0x"
        + String(address, radix: 16)
      cache.withLockedValue { c in
        if c.count >= 16384 { c.removeAll(keepingCapacity: true) }
        c[address] = name
      }
      return name
    }
  }

  /// A thread-safe namer for profile frames by source line (`File.swift:27 in function`, the
  /// innermost inlined frame), through the kernel's DWARF; the function name where the
  /// address has no line, or when the kernel has no DWARF or no symbolizer is installed.
  public func makeLineNamer() -> @Sendable (UInt64) -> String {
    let function = makeFunctionNamer()
    guard let locator = try? sourceLocator() else { return function }
    let cache = NIOLockedValueBox<[UInt64: String]>([:])
    return { address in
      if address == ProfileSample.unseenAddress { return ProfileSample.unseenName }
      if let hit = cache.withLockedValue({ $0[address] }) { return hit }
      var name = function(address)
      if let location = SymbolDisplay.location(of: address, locator: locator), location.shortFileLine != nil {
        name = location.text
      }
      cache.withLockedValue { c in
        if c.count >= 16384 { c.removeAll(keepingCapacity: true) }
        c[address] = name
      }
      return name
    }
  }
}
