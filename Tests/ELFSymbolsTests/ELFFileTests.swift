import ELFSymbols
import Foundation
import Testing

/// The reader against a tiny ELF built at test time, checked against readelf and llvm-nm.
struct TinyELFTests {
  static let typeNames: [UInt8: String] = [
    0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS", 10: "IFUNC",
  ]
  static let bindingNames: [UInt8: String] = [0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"]

  static func sectionIndexText(_ index: UInt32) -> String {
    switch index {
    case 0: "UND"
    case 0xFFF1: "ABS"
    case 0xFFF2: "COM"
    default: String(index)
    }
  }

  @Test func sectionsSegmentsSymbolsAndBuildIDAgreeWithReadelf() throws {
    let tiny = try TinyELF.build()
    let elf = try ELFFile(path: tiny.path)
    let report = try ReadelfReport(path: tiny.path)

    #expect(elf.header.machine == ELFHeader.machineX86_64)
    #expect(elf.header.fileType == 2)
    #expect(elf.header.entry == elf.address(of: "_start"))

    #expect(report.sections.count == elf.sections.count)
    #expect(report.sections.count >= 8)
    for (expected, actual) in zip(report.sections, elf.sections) {
      #expect(expected.index == actual.index)
      #expect(expected.name == actual.name)
      #expect(expected.address == actual.address, "\(actual.name)")
      #expect(expected.offset == actual.offset, "\(actual.name)")
      #expect(expected.size == actual.size, "\(actual.name)")
    }
    #expect(elf.sections.map(\.name).contains("smptop_probes"))

    #expect(report.segments.count == elf.programHeaders.count)
    for (expected, actual) in zip(report.segments, elf.programHeaders) {
      #expect(expected.offset == actual.offset && expected.virtualAddress == actual.virtualAddress)
      #expect(expected.physicalAddress == actual.physicalAddress)
      #expect(expected.fileSize == actual.fileSize && expected.memorySize == actual.memorySize)
      #expect((expected.type == "LOAD") == actual.isLoad)
    }

    let reported = report.symbols.filter {
      $0.table == ".symtab" && !($0.name.isEmpty && $0.value == 0 && $0.sectionIndex == "UND")
    }
    let mine = elf.symbols.map {
      ReadelfReport.Symbol(
        table: ".symtab", name: $0.name, value: $0.value, size: $0.size,
        type: Self.typeNames[$0.type.rawValue] ?? "?",
        binding: Self.bindingNames[$0.binding.rawValue] ?? "?",
        sectionIndex: Self.sectionIndexText($0.sectionIndex))
    }
    #expect(reported == mine)
    #expect(mine.count == 11)

    let buildID = try #require(elf.buildIDHex)
    #expect(buildID == report.buildID)
    #expect(buildID.count == 40)  // --build-id=sha1
  }

  @Test func symbolAddressesAgreeWithLLVMNm() throws {
    let tiny = try TinyELF.build()
    let elf = try ELFFile(bytes: tiny.bytes)
    let nm = try Toolchain.run("llvm-nm", ["-S", "--defined-only", tiny.path])
    var checked = 0
    for line in nm.split(separator: "\n") {
      let fields = line.split(separator: " ")
      guard fields.count == 4, let address = UInt64(fields[0], radix: 16),
        let size = UInt64(fields[1], radix: 16)
      else {
        continue
      }
      let name = String(fields[3])
      #expect(elf.address(of: name) == address, "\(name)")
      #expect(elf.symbols(named: name).first?.size == size, "\(name)")
      checked += 1
    }
    #expect(checked == 10)
  }

  @Test func rodataBytesAreReadThroughTheirVirtualAddress() throws {
    let elf = try ELFFile(bytes: try TinyELF.build().bytes)
    let greeting = try #require(elf.address(of: "greeting"))
    let bytes = try elf.bytes(atVirtualAddress: greeting, count: TinyELF.rodataMarker.utf8.count + 1)
    #expect(bytes == Array(TinyELF.rodataMarker.utf8) + [0])
    let rodata = try #require(elf.section(named: ".rodata"))
    #expect(rodata.addressRange.contains(greeting))
    #expect(Array(try elf.data(of: rodata).prefix(bytes.count)) == bytes)
    // The segment path gives the same bytes.
    #expect(elf.loadSegment(containing: greeting)?.isLoad == true)
  }

  @Test func startStopBoundsCoverTheCustomSection() throws {
    let elf = try ELFFile(bytes: try TinyELF.build().bytes)
    let bounds = try #require(elf.bounds(ofSection: "smptop_probes"))
    let section = try #require(elf.section(named: "smptop_probes"))
    #expect(bounds == section.addressRange)
    #expect(bounds.count == 16)
    let bytes = try elf.bytes(atVirtualAddress: bounds.lowerBound, count: 16)
    let values = stride(from: 0, to: 16, by: 8).map { offset in
      bytes[offset..<offset + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
    #expect(values == [0x1111, 0x2222])
    #expect(elf.bounds(ofSection: "no_such_section") == nil)
  }

  @Test func addressLookupsPreferContainingSymbols() throws {
    let elf = try ELFFile(bytes: try TinyELF.build().bytes)
    let compute = try #require(elf.address(of: "compute"))
    #expect(elf.lookup(compute)?.description == "compute")
    #expect(elf.lookup(compute + 5)?.description == "compute+0x5")
    #expect(elf.lookup(compute + 5)?.isWithinSymbol == true)
    let helper = try #require(elf.address(of: "helper"))  // a local (static) function
    #expect(elf.lookup(helper + 0x10)?.name == "helper")
    // In .bss, inside a 4 KiB array.
    let buffer = try #require(elf.address(of: "big_buffer"))
    #expect(elf.lookup(buffer + 0x800)?.description == "big_buffer+0x800")
    // __start_smptop_probes (untyped, unsized) and probe_a (sized object) share an address.
    let probes = try #require(elf.address(of: "__start_smptop_probes"))
    #expect(elf.lookup(probes)?.name == "probe_a")
    // Below every symbol: nothing.
    #expect(elf.lookup(0x1000) == nil)
    // Past the end of the last symbol: the nearest one, flagged as outside it.
    let last = try #require(elf.lookup(buffer + 0x10000))
    #expect(last.name == "big_buffer" && !last.isWithinSymbol)
  }

  @Test func bssAndUnmappedAddressesAreNotInTheFile() throws {
    let elf = try ELFFile(bytes: try TinyELF.build().bytes)
    let counter = try #require(elf.address(of: "counter"))
    #expect {
      _ = try elf.bytes(atVirtualAddress: counter, count: 8)
    } throws: { ($0 as? ELFError)?.code == .addressNotInFile }
    #expect(throws: ELFError.self) { _ = try elf.bytes(atVirtualAddress: 0x1234, count: 1) }
    #expect(throws: ELFError.self) { _ = try elf.bytes(atVirtualAddress: UInt64.max - 2, count: 8) }
  }

  @Test func missingAndNonELFFilesAreClearErrors() throws {
    #expect { _ = try ELFFile(path: "/nonexistent/kernel.elf") } throws: { error in
      let error = error as? ELFError
      return error?.code == .io && error?.errno == ENOENT
    }
    #expect { _ = try ELFFile(path: "/proc") } throws: { ($0 as? ELFError)?.code == .io }
    #expect { _ = try ELFFile(bytes: Array("#!/bin/sh\necho hi\n".utf8)) } throws: {
      ($0 as? ELFError)?.code == .notELF
    }
    var thirtyTwo = try TinyELF.build().bytes
    thirtyTwo[4] = 1
    #expect { _ = try ELFFile(bytes: thirtyTwo) } throws: { ($0 as? ELFError)?.code == .unsupported }
    let truncated = Array(try TinyELF.build().bytes.prefix(40))
    #expect { _ = try ELFFile(bytes: truncated) } throws: { ($0 as? ELFError)?.code == .truncated }
  }
}
