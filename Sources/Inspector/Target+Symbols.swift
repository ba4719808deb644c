import ELFSymbols

// Symbol display: addresses as symbols and source lines, through the target's one `SymbolDisplay`.
extension Target {
  /// An address as text: `File.swift:27 in Mutex.lock()` when the kernel has DWARF (a return
  /// address names the line of its call), else `symbol+0x1a`; Swift names demangled and
  /// shortened for display.
  public func symbolize(_ address: UInt64) -> String? { symbolDisplay().text(address) }

  /// `symbol+0x1a` for an address (no source line): the `symbol` field of records.
  public func symbolName(_ address: UInt64) -> String? {
    Self.shortName(symbols, address)
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

  /// The source location of `address` through the kernel's source lines, or the ELF symbol
  /// alone (System.map guests, no `llvm-symbolizer`); nil when nothing is known.
  public func location(of address: UInt64) -> CodeLocation? { symbolDisplay().location(address) }

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
