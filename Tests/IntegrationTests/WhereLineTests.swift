import ELFSymbols
import Foundation
import Inspector
import QEMULaunch
import Testing

/// Source lines of the real guest ELF as smptop reads them (`SourceLocator`, one long-lived
/// `llvm-symbolizer`) against binutils `addr2line -i`, a DWARF reader nobody here wrote.
@Suite(.serialized) struct WhereLineTests {
  /// One source frame as `addr2line -f -i` prints it: linkage name, file's last component, line.
  struct Line: Equatable, CustomStringConvertible {
    var function: String
    var file: String?
    var line: Int
    var description: String { "\(function) \(file ?? "??"):\(line)" }
  }

  /// Runs binutils `addr2line -a -f -i` over `addresses`; the frames of each, innermost first.
  static func addr2line(_ elf: String, _ addresses: [UInt64]) throws -> [UInt64: [Line]] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/addr2line")
    p.arguments = ["-a", "-f", "-i", "-e", elf] + addresses.map { "0x" + String($0, radix: 16) }
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    var result: [UInt64: [Line]] = [:]
    var current: UInt64?
    var pendingFunction: String?
    for raw in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    {
      let line = String(raw)
      if line.hasPrefix("0x"), let address = UInt64(line.dropFirst(2), radix: 16) {
        current = address
        result[address] = []
        pendingFunction = nil
      } else if let address = current {
        if let function = pendingFunction {
          // "file:line" or "file:line (discriminator N)"; "??:0" / "??:?" without a line.
          let place = line.split(separator: " ").first.map(String.init) ?? line
          let parts = place.split(separator: ":")
          let file = parts.first.map(String.init).flatMap { $0 == "??" ? nil : $0 }
          let number = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
          result[address, default: []].append(
            Line(
              function: function, file: file.map { URL(fileURLWithPath: $0).lastPathComponent }, line: number)
          )
          pendingFunction = nil
        } else if !line.isEmpty {
          pendingFunction = line
        }
      }
    }
    return result
  }

  /// A few hundred addresses spread over the guest's functions: starts, middles and just
  /// before the ends (where inlined code and epilogues sit).
  static func sampleAddresses(_ elf: ELFFile, count: Int) -> [UInt64] {
    guard let text = elf.section(named: ".text")?.addressRange else { return [] }
    let functions = elf.symbols
      .filter { $0.type == .function && $0.size > 8 && text.contains($0.value) }
      .sorted { $0.value < $1.value }
    guard !functions.isEmpty else { return [] }
    var out: [UInt64] = []
    let stride = max(1, functions.count * 3 / count)
    for (n, f) in functions.enumerated() where n % stride == 0 {
      out += [f.value, f.value + f.size / 2, f.value + f.size - 2]
      if out.count >= count { break }
    }
    return Array(Set(out)).sorted()
  }

  @Test func fileLinesAndInlinedChainsEqualBinutilsAddr2line() throws {
    let path = try GuestKernel.build()
    let elf = try ELFFile(path: path)
    let addresses = Self.sampleAddresses(elf, count: 300)
    #expect(addresses.count >= 250, "a few hundred addresses (got \(addresses.count))")
    let locator = try SourceLocator(elfPath: path, symbols: elf)
    let ours = locator.frames(at: addresses)
    let theirs = try Self.addr2line(path, addresses)
    var compared = 0
    var inlinedChains = 0
    var withLines = 0
    for address in addresses {
      let expected = try #require(theirs[address], "addr2line answered for \(address)")
      // addr2line prints "??" for code it has no DWARF for (assembly): smptop then falls back to
      // the ELF symbol and no file, which must agree on "no line".
      let mine = (ours[address] ?? []).map { f in
        Line(
          function: f.function, file: f.file.map { URL(fileURLWithPath: $0).lastPathComponent },
          line: f.hasLine ? f.line : 0)
      }
      if expected.allSatisfy({ $0.function == "??" }) {
        #expect(mine.count == 1 && mine[0].file == nil, "0x\(String(address, radix: 16)): \(mine)")
        continue
      }
      // The compiler's trap frames ("Swift runtime failure: arithmetic overflow", an inlined
      // artificial function with a name but no linkage name): llvm-symbolizer names them,
      // binutils repeats the physical function's name; file and line are compared still.
      let same =
        mine.count == expected.count
        && zip(mine, expected).allSatisfy { m, e in
          m.file == e.file && m.line == e.line
            && (m.function == e.function || m.function.hasPrefix("Swift runtime failure: "))
        }
      #expect(same, "0x\(String(address, radix: 16)): smptop \(mine) vs addr2line \(expected)")
      compared += 1
      if expected.count > 1 { inlinedChains += 1 }
      if expected.first?.line ?? 0 > 0 { withLines += 1 }
    }
    #expect(compared >= 200, "compared \(compared) addresses with DWARF")
    #expect(inlinedChains >= 20, "the sample must exercise inlined chains (\(inlinedChains))")
    #expect(withLines >= 150, "\(withLines) addresses with a line")
    // Cached: the second ask does not go to the subprocess and answers the same.
    #expect(locator.frames(at: addresses) == ours)
  }

  @Test func aNegativeControlOneByteOffDisagreesSomewhere() throws {
    // The comparison above would notice wrong lines: the addresses one instruction-ish later
    // (8 bytes) answer differently from the original ones for many samples.
    let path = try GuestKernel.build()
    let elf = try ELFFile(path: path)
    let addresses = Self.sampleAddresses(elf, count: 300)
    let theirs = try Self.addr2line(path, addresses)
    let shifted = try Self.addr2line(path, addresses.map { $0 + 8 })
    let differ = addresses.filter { theirs[$0] != shifted[$0 + 8] }.count
    #expect(differ >= 30, "shifted addresses differ in \(differ) of \(addresses.count)")
  }

  @Test func lockSitesReadAsFileLineInFunction() throws {
    let path = try GuestKernel.build()
    let elf = try ELFFile(path: path)
    let locator = try SourceLocator(elfPath: path, symbols: elf)
    let symbolize = Target.symbolizer(elf, locator: locator, elf: elf)
    // A return address right after a direct call to Mutex.lock: the site names the call's line.
    let lock = try #require(elf.symbols.first { $0.name.contains("5MutexV4lock") && $0.type == .function })
    let text = try #require(elf.section(named: ".text")?.addressRange)
    let code = try elf.bytes(atVirtualAddress: text.lowerBound, count: Int(text.upperBound - text.lowerBound))
    var site: UInt64?
    for i in 0..<(code.count - 5) where code[i] == 0xE8 {
      let rel = Int32(
        bitPattern: UInt32(code[i + 1]) | UInt32(code[i + 2]) << 8 | UInt32(code[i + 3]) << 16
          | UInt32(code[i + 4]) << 24)
      let next = text.lowerBound + UInt64(i + 5)
      if UInt64(bitPattern: Int64(bitPattern: next) &+ Int64(rel)) == lock.value {
        site = next
        break
      }
    }
    let returnAddress = try #require(site, "some code calls Mutex.lock directly")
    let text1 = try #require(symbolize(returnAddress))
    let expected = try #require(Self.addr2line(path, [returnAddress - 1])[returnAddress - 1]?.first)
    #expect(text1.hasPrefix("\(expected.file ?? "?"):\(expected.line) in "), "\(text1) vs \(expected)")
    // Without DWARF lines (no locator) the symbol+offset fallback remains.
    let plain = try #require(Target.symbolizer(elf)(returnAddress))
    #expect(plain.contains("+0x") && !plain.contains(".swift:"))
  }
}
