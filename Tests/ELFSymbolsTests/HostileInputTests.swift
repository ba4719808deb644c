import ELFSymbols
import Testing

/// Mutated and truncated ELF files: the reader must return a value or an ELFError, never trap.
struct HostileInputTests {
  /// Offsets of header fields worth corrupting (ELF64 layout).
  static let headerFields: [(offset: Int, width: Int)] = [
    (4, 1), (5, 1), (32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2), (62, 2),
  ]

  static let interesting: [UInt64] = [
    0, 1, 2, 0x18, 0x40, 0x7F, 0xFF, 0xFFFF, 0xFFF1, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000_0000_0000,
    UInt64.max, UInt64.max - 7, UInt64(Int.max),
  ]

  static func write(_ value: UInt64, width: Int, at offset: Int, into bytes: inout [UInt8]) {
    for index in 0..<width where offset + index < bytes.count {
      bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))
    }
  }

  /// Exercises every query on a file that parsed, with hostile arguments too.
  static func exercise(_ elf: ELFFile, _ rng: inout SeededGenerator) {
    for section in elf.sections.prefix(64) {
      _ = try? elf.data(of: section)
      _ = try? elf.bytes(atVirtualAddress: section.address, count: Int(min(section.size, 64)))
    }
    for symbol in elf.symbols.prefix(64) {
      _ = elf.lookup(symbol.value)
      _ = elf.lookup(symbol.value &+ symbol.size)
      _ = elf.address(of: symbol.name)
      _ = SwiftDemangler.shared.simplifiedName(symbol.name)
    }
    for _ in 0..<16 {
      let address = rng.next()
      _ = elf.lookup(address)
      _ = try? elf.bytes(atVirtualAddress: address, count: Int.random(in: 0...4096, using: &rng))
      _ = elf.loadSegment(containing: address)
    }
    _ = try? elf.bytes(atVirtualAddress: UInt64.max, count: Int.max)
    _ = elf.buildIDHex
    _ = elf.bounds(ofSection: "smptop_probes")
  }

  @Test func tenThousandMutatedFilesNeverCrash() throws {
    let original = try TinyELF.build().bytes
    let pristine = try ELFFile(bytes: original)
    let sectionTable = Int(pristine.header.sectionHeaderOffset)
    let symtab = try #require(pristine.section(named: ".symtab"))
    var rng = SeededGenerator(seed: 0xE1F)
    var parsed = 0
    var errors: [String: Int] = [:]
    for iteration in 0..<12_000 {
      var bytes = original
      switch iteration % 6 {
      case 0:  // random byte flips anywhere
        for _ in 0..<Int.random(in: 1...24, using: &rng) {
          bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        }
      case 1:  // a header field set to an extreme value
        let field = Self.headerFields.randomElement(using: &rng) ?? (40, 8)
        Self.write(
          Self.interesting.randomElement(using: &rng) ?? 0, width: field.width, at: field.offset, into: &bytes
        )
      case 2:  // a section header field (name, type, offset, size, link, entsize) set to an extreme value
        let section = Int.random(in: 0..<pristine.sections.count, using: &rng)
        let field =
          [(0, 4), (4, 4), (24, 8), (32, 8), (40, 4), (56, 8)].randomElement(using: &rng) ?? (24, 8)
        Self.write(
          Self.interesting.randomElement(using: &rng) ?? 0, width: field.1,
          at: sectionTable + section * 64 + field.0,
          into: &bytes)
      case 3:  // a symbol's name, section index, value or size corrupted
        let symbol = Int.random(in: 0..<Int(symtab.size / 24), using: &rng)
        let field = [(0, 4), (6, 2), (8, 8), (16, 8)].randomElement(using: &rng) ?? (0, 4)
        Self.write(
          Self.interesting.randomElement(using: &rng) ?? 0, width: field.1,
          at: Int(symtab.offset) + symbol * 24 + field.0,
          into: &bytes)
      case 4:  // truncated
        bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
      default:  // truncated and flipped
        bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
        for _ in 0..<Int.random(in: 1...8, using: &rng) where !bytes.isEmpty {
          bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
        }
      }
      do {
        let elf = try ELFFile(bytes: bytes)
        parsed += 1
        Self.exercise(elf, &rng)
      } catch {
        errors[error.code.description, default: 0] += 1
        #expect(!error.message.isEmpty)
      }
    }
    print("hostile ELF inputs: \(parsed) parsed, errors by kind: \(errors.sorted { $0.key < $1.key })")
    // Both outcomes must really occur, or the mutations test nothing.
    #expect(parsed > 1000)
    #expect(errors.values.reduce(0, +) > 1000)
    #expect(errors["truncated"] != nil && errors["malformed"] != nil)
  }

  @Test func randomBytesBehindAValidMagicNeverCrash() {
    var rng = SeededGenerator(seed: 99)
    for _ in 0..<2000 {
      var bytes = (0..<Int.random(in: 0...512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng)
      }
      if bytes.count >= 6 { bytes.replaceSubrange(0..<6, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1]) }
      if let elf = try? ELFFile(bytes: bytes) { Self.exercise(elf, &rng) }
    }
  }

  @Test func hostileSystemMapsNeverCrash() {
    var rng = SeededGenerator(seed: 5)
    let alphabet = Array("0123456789abcdefTtDdBbRrWwAU _[]\n\t\r\u{0}é".unicodeScalars)
    for _ in 0..<3000 {
      var text = String.UnicodeScalarView()
      for _ in 0..<Int.random(in: 0...200, using: &rng) {
        text.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)])
      }
      if let map = try? SystemMap(text: String(text)) {
        _ = map.lookup(rng.next())
        _ = map.address(of: map.entries.first?.name ?? "")
      }
    }
  }

  @Test func hostileNamesNeverCrashTheDemangler() {
    var rng = SeededGenerator(seed: 17)
    let alphabet = Array("$s_T0e0123456789ABCDEFabcdefyySiSgGVCOFfu_<>() ".unicodeScalars)
    for _ in 0..<3000 {
      var name = String.UnicodeScalarView(["$", "s"])
      for _ in 0..<Int.random(in: 0...60, using: &rng) {
        name.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)])
      }
      _ = SwiftDemangler.shared.demangle(String(name))
      _ = SwiftDemangler.shared.simplifiedName(String(name))
    }
  }
}
