import ELFSymbols
import Foundation
import ISRCheck
import QEMULaunch
import Testing

/// `SourceLocator` (llvm-symbolizer) checked against binutils `addr2line -i` on the guest.
@Suite struct SourceLocatorTests {
  /// One frame as both tools can print it: function, file name, line (0 = unknown).
  struct Frame: Hashable, CustomStringConvertible {
    var function: String
    var file: String
    var line: Int
    var description: String { "\(function) \(file):\(line)" }
  }

  /// addr2line's frames for each address (innermost first).
  static func addr2line(_ elf: String, _ addresses: [UInt64]) throws -> [UInt64: [Frame]] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/addr2line")
    process.arguments = ["-e", elf, "-i", "-f", "-a"] + addresses.map { "0x" + String($0, radix: 16) }
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    var result: [UInt64: [Frame]] = [:]
    var current: UInt64?
    var lines = text.split(separator: "\n").map(String.init)[...]
    while let line = lines.popFirst() {
      if line.hasPrefix("0x"), let address = UInt64(line.dropFirst(2), radix: 16) {
        current = address
        result[address] = []
        continue
      }
      guard let current, let location = lines.popFirst() else { break }
      var place = location
      if let space = place.firstIndex(of: " ") { place = String(place[..<space]) }  // (discriminator N)
      let colon = place.lastIndex(of: ":") ?? place.endIndex
      let file = String(place[..<colon]).split(separator: "/").last.map(String.init) ?? ""
      let number = colon < place.endIndex ? Int(place[place.index(after: colon)...]) ?? 0 : 0
      result[current, default: []].append(Frame(function: line, file: file == "??" ? "" : file, line: number))
    }
    return result
  }

  @Test func framesMatchAddr2lineOnHundredsOfGuestAddresses() throws {
    let kernel = try GuestKernel.build()
    let elf = try ELFFile(path: kernel)
    let graph = try CallGraph(elf: elf)
    let calls = graph.calls.map(\.address)
    let stride = max(1, calls.count / 300)
    let addresses = Swift.stride(from: 0, to: calls.count, by: stride).map { calls[$0] }
    #expect(addresses.count >= 200)

    let locator = try SourceLocator(elfPath: kernel, symbols: elf)
    defer { locator.close() }
    let ours = locator.frames(at: addresses)
    let theirs = try Self.addr2line(kernel, addresses)
    var mismatches: [String] = []
    var withLines = 0
    var inlined = 0
    for address in addresses {
      let mine = (ours[address] ?? []).map { frame in
        Frame(
          function: frame.function, file: frame.file?.split(separator: "/").last.map(String.init) ?? "",
          line: frame.line)
      }
      var reference = theirs[address] ?? []
      // Assembly has no DWARF function entries: both tools name it from the symbol table and may
      // pick different aliases at one address (`_start` / `__text_start`); compare its lines only.
      if reference.count == mine.count {
        for index in reference.indices where reference[index].file.hasSuffix(".S") {
          reference[index].function = mine[index].function
        }
      }
      if mine != reference {
        mismatches.append("0x\(String(address, radix: 16)): \(mine) vs addr2line \(reference)")
      }
      if mine.contains(where: { $0.line > 0 }) { withLines += 1 }
      if mine.count > 1 { inlined += 1 }
    }
    #expect(
      mismatches.isEmpty,
      "\(mismatches.count) of \(addresses.count):\n\(mismatches.prefix(10).joined(separator: "\n"))")
    #expect(withLines > addresses.count / 2)
    #expect(inlined > 0)
    // The cache answers again without the subprocess.
    locator.close()
    #expect(locator.frames(at: addresses[0]) == ours[addresses[0]])
  }

  @Test func aMissingSymbolizerIsAClearError() {
    do {
      _ = try SourceLocator(elfPath: "/nonexistent", symbolizerPath: "/nonexistent/llvm-symbolizer")
      Issue.record("no error")
    } catch {
      #expect(error.message.contains("/nonexistent/llvm-symbolizer"))
    }
  }

  @Test func addressesWithoutDebugInformationFallBackToSymbols() throws {
    let kernel = try GuestKernel.build()
    let elf = try ELFFile(path: kernel)
    let stubs = try #require(elf.address(of: "isr_stubs"))
    let locator = try SourceLocator(elfPath: kernel, symbols: elf)
    defer { locator.close() }
    // Below the kernel: no section, so no symbolizer answer (its DWARF would name a function that
    // --gc-sections dropped, at address 0) and no symbol.
    let frames = locator.frames(at: 0x10)
    #expect(frames.count == 1 && frames[0].file == nil && frames[0].function == "0x10")
    // The assembly stubs have line information of their own (traps.S) or at least the symbol.
    let stub = locator.frames(at: stubs)
    #expect(stub.last?.function == "isr_stubs" || stub.last?.file?.hasSuffix("traps.S") == true)
  }
}
