import ELFSymbols
import Foundation
import QEMULaunch
import Testing

/// The reader on its real customer: the bundled Embedded Swift guest kernel, built with
/// QEMULaunch's `GuestKernel` (no-change rebuilds take about half a second).
@Suite struct GuestKernelELFTests {
  /// Builds (or finds) the guest on a thread of its own: a cold build takes a minute, and a
  /// synchronous test would hold one of the cooperative pool's threads all that time.
  static func kernel() async throws -> (path: String, elf: ELFFile) {
    let path = try await withCheckedThrowingContinuation {
      (continuation: CheckedContinuation<String, any Error>) in
      Thread { continuation.resume(with: Result { try GuestKernel.build() }) }.start()
    }
    return (path, try ELFFile(path: path))
  }

  @Test func theKernelAgreesWithReadelf() async throws {
    let (path, elf) = try await Self.kernel()
    let report = try ReadelfReport(path: path)
    #expect(report.sections.map(\.name) == elf.sections.map(\.name))
    #expect(report.sections.map(\.address) == elf.sections.map(\.address))
    #expect(report.sections.map(\.size) == elf.sections.map(\.size))
    let reported = report.symbols.filter { $0.table == ".symtab" }.dropFirst()
    #expect(reported.map(\.name) == elf.symbols.map(\.name))
    #expect(reported.map(\.value) == elf.symbols.map(\.value))
    #expect(reported.map(\.size) == elf.symbols.map(\.size))
    #expect(elf.buildIDHex != nil && elf.buildIDHex == report.buildID)
    #expect(elf.header.machine == ELFHeader.machineX86_64)
    #expect(
      elf.lookup(elf.header.entry)?.name
        == elf.symbols.first { $0.value == elf.header.entry && $0.binding == .global }?.name)
  }

  @Test func theBuildIDNoteReadThroughItsAddressMatchesTheParsedNote() async throws {
    // What the dashboard does with guest memory: read the note bytes at their address and
    // compare. Here the "memory" is the file itself.
    let (_, elf) = try await Self.kernel()
    let note = try #require(elf.section(named: ".note.gnu.build-id"))
    #expect(note.isAllocated)
    let bytes = try elf.bytes(atVirtualAddress: note.address, count: Int(note.size))
    func u32(_ offset: Int) -> UInt32 {
      bytes[offset..<offset + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
    #expect(u32(0) == 4 && u32(8) == ELFNote.typeGNUBuildID)
    #expect(Array(bytes[12..<16]) == Array("GNU\0".utf8))
    #expect(Array(bytes[16..<16 + Int(u32(4))]) == elf.buildID)
  }

  @Test func theInspectionRootIsFoundAndLivesInBSS() async throws {
    let (_, elf) = try await Self.kernel()
    let root = try #require(elf.symbols(named: "smptop_root").first)
    #expect(root.type == .object && root.size > 0)
    #expect(elf.lookup(root.value + 8)?.description == "smptop_root+0x8")
    // Filled at boot: the file has no bytes for it, only the segment's memory size.
    #expect { _ = try elf.bytes(atVirtualAddress: root.value, count: 8) } throws: {
      ($0 as? ELFError)?.code == .addressNotInFile
    }
    let segment = try #require(elf.loadSegment(containing: root.value))
    #expect(segment.memorySize > segment.fileSize)
  }

  @Test func embeddedSwiftSymbolsDemangleLikeTheTool() async throws {
    let (_, elf) = try await Self.kernel()
    let names = Array(Set(elf.symbols.map(\.name).filter(SwiftDemangler.isMangledSwift))).sorted()
    #expect(names.count > 20)
    let tool = try Toolchain.run("swift-demangle", ["--compact"], stdin: names.joined(separator: "\n") + "\n")
      .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let simplified = try Toolchain.run(
      "swift-demangle", ["--compact", "--simplified"], stdin: names.joined(separator: "\n") + "\n"
    ).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    #expect(tool.count >= names.count && simplified.count >= names.count)
    let demangler = SwiftDemangler()
    for (index, name) in names.enumerated() {
      #expect(demangler.demangle(name) == tool[index])
      #expect(demangler.simplifiedName(name) == simplified[index])
      #expect(demangler.demangleSwift(name) != nil)  // every $e symbol is a valid Swift mangling
    }
    // Every function address symbolizes to a Swift name in the kernel module.
    let function = try #require(
      elf.symbols.first { $0.type == .function && $0.name.hasPrefix("$e6Kernel") && $0.size > 4 })
    let match = try #require(elf.lookup(function.value + 2))
    #expect(match.formatted(demangler: demangler).contains("Kernel."))
    #expect(!match.formatted(demangler: demangler, simplified: true).contains("Kernel."))
  }
}
