import ELFSymbols
import Foundation
import Testing

/// A function with a known name, to find in this test binary's own symbol table.
@inline(never)
func elfSymbolsTestMarker(_ value: Int) -> Int { value &* 31 &+ 7 }

/// The reader on a real Swift ELF: this test binary (/proc/self/exe).
@Suite struct SelfExecutableTests {
  static let path: String = {
    guard let real = realpath("/proc/self/exe", nil) else { return "/proc/self/exe" }
    defer { free(real) }
    return String(cString: real)
  }()

  @Test func everySymtabSymbolAgreesWithReadelf() throws {
    let elf = try ELFFile(path: Self.path)
    let report = try ReadelfReport(path: Self.path)
    #expect(elf.symbols.count > 1000)
    let reported = report.symbols.filter { $0.table == ".symtab" }.dropFirst()  // entry 0 is the null symbol
    #expect(reported.count == elf.symbols.count)
    var mismatches = 0
    for (expected, actual) in zip(reported, elf.symbols) {
      // A name with a newline shows up to its first one (see ReadelfReport.readelf()).
      let shown = actual.name.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map(
        String.init)
      if expected.name != shown || expected.value != actual.value
        || expected.size != actual.size
      {
        mismatches += 1
        if mismatches <= 5 { Issue.record("readelf \(expected) vs \(actual)") }
      }
    }
    #expect(mismatches == 0)
    let dynamic = report.symbols.filter { $0.table == ".dynsym" }.dropFirst()
    #expect(dynamic.count == elf.dynamicSymbols.count)
    #expect(
      zip(dynamic, elf.dynamicSymbols).allSatisfy { $0.value == $1.value && $0.name.hasPrefix($1.name) })
    #expect(report.sections.map(\.name) == elf.sections.map(\.name))
    #expect(report.buildID == elf.buildIDHex)
  }

  @Test func definedSymbolsAgreeWithLLVMNm() throws {
    let elf = try ELFFile(path: Self.path)
    let nm = try Toolchain.run("llvm-nm", ["--defined-only", "--no-sort", Self.path])
    var expected: [String: Set<UInt64>] = [:]
    // llvm-nm prints a newline inside a name raw (sanitizer builds name string literals' globals
    // after their text): lines that are part of such a name (ours says which) are skipped, even
    // when they look like `ADDRESS TYPE NAME` because the literal held nm output.
    let multiline = elf.symbols.map(\.name).filter { $0.contains(where: \.isNewline) }
    for line in nm.split(whereSeparator: \.isNewline) {
      let fields = line.split(separator: " ", maxSplits: 2)
      guard fields.count == 3, let address = UInt64(fields[0], radix: 16) else { continue }
      let name = String(fields[2])
      if multiline.contains(where: {
        $0.contains(line)
          || $0.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first == fields[2]
      }) {
        continue
      }
      expected[name, default: []].insert(address)
    }
    #expect(expected.count > 1000)
    var mismatches = 0
    for (name, addresses) in expected {
      let mine = Set(elf.symbols(named: name).filter(\.isDefined).map(\.value))
      if !addresses.isSubset(of: mine) {
        mismatches += 1
        if mismatches <= 5 {
          Issue.record("llvm-nm \(name.debugDescription) at \(addresses.sorted()) vs \(mine.sorted())")
        }
      }
    }
    #expect(mismatches == 0)
  }

  @Test func swiftSymbolsDemangleLikeTheSwiftDemangleTool() throws {
    let elf = try ELFFile(path: Self.path)
    let names = Array(Set(elf.symbols.map(\.name).filter(SwiftDemangler.isMangledSwift))).sorted()
    #expect(names.count > 1000)
    let input = names.joined(separator: "\n") + "\n"
    func lines(_ text: String) -> [String] {
      text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
    let full = lines(try Toolchain.run("swift-demangle", ["--compact"], stdin: input))
    let simplified = lines(try Toolchain.run("swift-demangle", ["--compact", "--simplified"], stdin: input))
    #expect(full.count >= names.count && simplified.count >= names.count)

    // Both forms come from the toolchain's libswiftDemangle, the tool's own library.
    #expect(SwiftDemangler.libraryPath != nil)
    let demangler = SwiftDemangler()
    var fullMismatches: [String] = []
    var simplifiedMismatches: [String] = []
    for (index, name) in names.enumerated() {
      if demangler.demangle(name) != full[index] {
        fullMismatches.append("\(demangler.demangle(name)) != \(full[index])")
      }
      if demangler.simplifiedName(name) != simplified[index] {
        simplifiedMismatches.append("\(demangler.simplifiedName(name)) != \(simplified[index])")
      }
    }
    #expect(fullMismatches.isEmpty, "\(fullMismatches.count) of \(names.count): \(fullMismatches.prefix(3))")
    #expect(
      simplifiedMismatches.isEmpty,
      "\(simplifiedMismatches.count) of \(names.count): \(simplifiedMismatches.prefix(3))")
  }

  /// Without the toolchain library the runtime's `swift_demangle` answers: the same names
  /// without type sugar, and the full name where a simplified one is asked for.
  @Test func theRuntimeIsTheFallback() {
    let runtime = SwiftDemangler(useLibrary: false)
    let library = SwiftDemangler()
    #expect(runtime.demangle("$e6kernel5kmainyyF") == "kernel.kmain() -> ()")
    #expect(runtime.simplifiedName("$e6kernel5kmainyyF") == "kernel.kmain() -> ()")
    #expect(library.simplifiedName("$e6kernel5kmainyyF") == "kmain()")
    // Optional<[Int]> as the result: sugar from the library only.
    let name = "$s4main3fooSaySiGSgyF"
    #expect(library.demangle(name) == "main.foo() -> [Swift.Int]?")
    #expect(runtime.demangle(name) == "main.foo() -> Swift.Optional<Swift.Array<Swift.Int>>")
    #expect(runtime.demangle("memcpy") == "memcpy" && runtime.simplifiedName("memcpy") == "memcpy")
  }

  @Test func nonSwiftNamesPassThroughAndEmbeddedNamesDemangle() {
    let demangler = SwiftDemangler(capacity: 4)
    #expect(demangler.demangle("kmain") == "kmain")
    #expect(demangler.demangle("_ZN3foo3barEv") == "_ZN3foo3barEv")
    #expect(demangler.demangleSwift("memcpy") == nil)
    #expect(demangler.demangle("$e6kernel5kmainyyF") == "kernel.kmain() -> ()")
    #expect(demangler.simplifiedName("$e6kernel5kmainyyF") == "kmain()")
    #expect(demangler.demangle("$s6kernel5kmainyyF") == "kernel.kmain() -> ()")
    #expect(demangler.demangle("_$s6kernel5kmainyyF") == "kernel.kmain() -> ()")
    // A Swift-looking prefix that is not a valid mangling stays as it is.
    #expect(demangler.demangle("$snot-a-symbol") == "$snot-a-symbol")
    // More names than the cache holds: results stay correct after eviction.
    for round in 0..<3 {
      for name in [
        "$e6kernel5kmainyyF", "$s6kernel5kmainyyF", "$s4main3fooyyF", "$s4main3baryyF", "$s4main3bazyyF",
      ] {
        #expect(demangler.demangle(name).hasSuffix("() -> ()"), "round \(round)")
      }
    }
  }

  @Test func theDemanglerIsSafeToShareBetweenTasks() async throws {
    let elf = try ELFFile(path: Self.path)
    let names = Array(elf.symbols.map(\.name).filter(SwiftDemangler.isMangledSwift).prefix(2000))
    let serial = SwiftDemangler()
    let expected = names.map(serial.demangle)
    let shared = SwiftDemangler(capacity: 500)
    let results = await withTaskGroup(of: Bool.self) { group in
      for worker in 0..<8 {
        group.addTask {
          var ok = true
          for (index, name) in names.enumerated() where index % 8 != worker {
            ok = ok && shared.demangle(name) == expected[index]
          }
          return ok
        }
      }
      return await group.reduce(true) { $0 && $1 }
    }
    #expect(results)
  }

  @Test func theMarkerFunctionIsFoundByNameAndAddress() throws {
    let elf = try ELFFile(path: Self.path)
    let demangler = SwiftDemangler()
    let marker = try #require(
      elf.symbols.first {
        $0.type == .function
          && demangler.demangle($0.name) == "ELFSymbolsTests.elfSymbolsTestMarker(Swift.Int) -> Swift.Int"
      })
    #expect(marker.name == "$s15ELFSymbolsTests20elfSymbolsTestMarkeryS2iF")
    #expect(elf.address(of: marker.name) == marker.value)
    let match = try #require(elf.lookup(marker.value + 1))
    #expect(match.name == marker.name && match.offset == 1)
    #expect(
      match.formatted(demangler: demangler)
        == "ELFSymbolsTests.elfSymbolsTestMarker(Swift.Int) -> Swift.Int+0x1")
    #expect(match.formatted(demangler: demangler, simplified: true) == "elfSymbolsTestMarker(_:)+0x1")
    #expect(elfSymbolsTestMarker(1) == 38)
  }

  @Test func lookupsMatchABruteForceOracle() throws {
    let elf = try ELFFile(path: Self.path)
    let candidates = elf.symbols.filter {
      $0.isDefined && ($0.type == .function || $0.type == .object) && !$0.name.isEmpty
    }
    let text = try #require(elf.section(named: ".text"))
    var rng = SeededGenerator(seed: 42)
    for _ in 0..<300 {
      let address = UInt64.random(in: text.addressRange, using: &rng)
      let containing = candidates.filter {
        $0.size > 0 && $0.value <= address && address - $0.value < $0.size
      }
      guard let match = elf.lookup(address) else {
        Issue.record("no symbol for 0x\(String(address, radix: 16))")
        continue
      }
      if let innermost = containing.map(\.value).max() {
        #expect(match.address == innermost, "0x\(String(address, radix: 16))")
        #expect(match.isWithinSymbol)
        #expect(containing.contains { $0.name == match.name })
      } else {
        #expect(match.address <= address)
      }
    }
  }

  @Test func loadAndLookupTimings() throws {
    let started = ContinuousClock.now
    let elf = try ELFFile(path: Self.path)
    let loaded = ContinuousClock.now
    let functions = elf.symbols.filter { $0.type == .function && $0.size > 0 }
    var rng = SeededGenerator(seed: 7)
    let addresses = (0..<100_000).map { _ -> UInt64 in
      let symbol = functions[Int.random(in: 0..<functions.count, using: &rng)]
      return symbol.value + UInt64.random(in: 0..<symbol.size, using: &rng)
    }
    let lookupStart = ContinuousClock.now
    var hits = 0
    for address in addresses where elf.lookup(address) != nil { hits += 1 }
    let done = ContinuousClock.now
    let size = (try? FileManager.default.attributesOfItem(atPath: Self.path)[.size] as? Int) ?? 0
    print(
      "ELF load of \(Self.path) (\(size) bytes, \(elf.symbols.count) symbols): \(loaded - started); "
        + "100000 lookups: \(done - lookupStart)")
    #expect(hits == 100_000)
  }
}
