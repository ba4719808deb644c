import ELFSymbols

// Symbol display: addresses as symbols and source lines, through the target's one `SymbolDisplay`.
extension Target {
  /// An address as text: `File.swift:27 in Mutex.lock()` when the kernel has DWARF (a return
  /// address names the line of its call), else `symbol+0x1a`; Swift names demangled and
  /// shortened for display.
  public func symbolize(_ address: UInt64) -> String? { symbolDisplay().text(address) }

  /// `symbol+0x1a` for an address (no source line): the `symbol` field of records.
  public func symbolName(_ address: UInt64) -> String? {
    SymbolDisplay.shortName(symbols, address)
  }

  /// This target's symbol display (one per target, one cache): every symbolizer and site
  /// locator it hands out uses it.
  public func symbolDisplay() -> SymbolDisplay {
    if let display { return display }
    let made = SymbolDisplay(symbols: symbols, locator: try? sourceLocator(), elf: elf)
    display = made
    return made
  }

  /// A thread-safe symbolizer for this target's kernel, with source lines when it has DWARF
  /// (the target's one symbol display, shared with `symbolize(_:)`).
  public func makeSymbolizer() -> @Sendable (UInt64) -> String? {
    let display = symbolDisplay()
    return { display.text($0) }
  }

  /// A thread-safe symbolizer over `symbols` and, when given, the kernel's source lines (for
  /// the UI thread): every place that shows an address as text goes through this.
  ///
  /// With a locator the text is `File.swift:LINE in function` (the innermost frame with a line;
  /// an inlined function is marked `[inlined]`). An address right after a call instruction is
  /// taken for a return address (acquire sites, backtrace frames) and named by the call's line.
  /// Without DWARF for the address it falls back to `symbol+0x1a`.
  public static func symbolizer(
    _ symbols: (any SymbolLookup)?, locator: SourceLocator? = nil, elf: ELFFile? = nil
  ) -> @Sendable (UInt64) -> String? {
    let display = SymbolDisplay(symbols: symbols, locator: locator, elf: elf)
    return { display.text($0) }
  }

  /// The source location of `address` through the kernel's source lines, or the ELF symbol
  /// alone (System.map guests, no `llvm-symbolizer`); nil when nothing is known.
  public func location(of address: UInt64) -> CodeLocation? { symbolDisplay().location(address) }

  /// The kernel's source-line reader, started on first use (one `llvm-symbolizer` process).
  public func sourceLocator() throws(TargetError) -> SourceLocator {
    if let lineReader { return lineReader }
    if let lineReaderError { throw lineReaderError }
    guard let path = options.kernel else {
      let error = TargetError(.symbols, "source lines need the kernel ELF: give --kernel PATH")
      lineReaderError = error
      throw error
    }
    do {
      let locator = try SourceLocator(elfPath: path, symbols: elf)
      lineReader = locator
      return locator
    } catch {
      let failure = TargetError(.symbols, "cannot read source lines of \(path): \(error)")
      lineReaderError = failure
      throw failure
    }
  }
}
