import Foundation
import Testing

@testable import Inspector

@Suite struct MemorySourceTests {
  /// One expected mapping: machine, RAM size, guest-physical address, file offset (nil = not RAM).
  struct Mapping: Sendable, CustomTestStringConvertible {
    var machine: String
    var size: UInt64
    var gpa: UInt64
    var offset: UInt64?
    var testDescription: String { "\(machine) \(size >> 20) MiB 0x\(String(gpa, radix: 16))" }
  }

  static let gib: UInt64 = 1 << 30
  /// Offsets measured against QEMU 7.2 with a pattern written through the gdbstub (notes §4).
  static let mappings: [Mapping] = [
    Mapping(machine: "pc", size: 4 * gib, gpa: 0x7000, offset: 0x7000),
    Mapping(machine: "pc", size: 4 * gib, gpa: 0xBFFF_F000, offset: 0xBFFF_F000),
    Mapping(machine: "pc", size: 4 * gib, gpa: 0x1_0000_0000, offset: 0xC000_0000),
    Mapping(machine: "pc", size: 4 * gib, gpa: 0x1_3FFF_F000, offset: 0xFFFF_F000),
    Mapping(machine: "pc", size: 4 * gib, gpa: 0xC000_0000, offset: nil),
    Mapping(machine: "q35", size: 4 * gib, gpa: 0x7FFF_F000, offset: 0x7FFF_F000),
    Mapping(machine: "q35", size: 4 * gib, gpa: 0x1_0000_0000, offset: 0x8000_0000),
    Mapping(machine: "q35", size: 4 * gib, gpa: 0x1_7FFF_F000, offset: 0xFFFF_F000),
    Mapping(machine: "q35", size: 4 * gib, gpa: 0x8000_0000, offset: nil),
    Mapping(machine: "pc", size: 128 << 20, gpa: 0x7FF_F000, offset: 0x7FF_F000),
    Mapping(machine: "pc", size: 128 << 20, gpa: 0x800_0000, offset: nil),
  ]

  @Test(arguments: mappings)
  func ramLayoutMapsGuestPhysicalToFileOffsets(_ m: Mapping) {
    #expect(RAMLayout(machine: m.machine, size: m.size).fileOffset(of: m.gpa, count: 4096) == m.offset)
  }

  @Test func rangesThatCrossTheEndOfRAMAreRefused() {
    let layout = RAMLayout(machine: "pc", size: 1 << 20)
    #expect(layout.fileOffset(of: 0xF_F000, count: 4096) == 0xF_F000)
    #expect(layout.fileOffset(of: 0xF_F001, count: 4096) == nil)
    #expect(layout.fileOffset(of: UInt64.max - 10, count: 4096) == nil)
  }

  @Test func sharedMemoryReadsTheFileAndRefusesOutsideIt() throws {
    let path = NSTemporaryDirectory() + "smptop-ram-\(getpid())"
    let bytes = (0..<8192).map { UInt8(truncatingIfNeeded: $0 * 7) }
    #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let memory = try SharedMemory(path: path)
    #expect(try memory.read(100, count: 16) == Array(bytes[100..<116]))
    let results = memory.read([MemoryRange(address: 8000, count: 300), MemoryRange(address: 0, count: 4)])
    #expect(throws: GuestMemoryError.self) { try results[0].get() }
    #expect(try results[1].get() == Array(bytes[0..<4]))
  }

  @Test func missingMemoryFileIsAClearError() {
    #expect {
      _ = try SharedMemory(path: "/nonexistent/ram")
    } throws: { error in
      (error as? GuestMemoryError)?.description.contains("/nonexistent/ram") == true
    }
  }

  @Test func recordingsRoundTripAndRejectCorruption() throws {
    let frames: [RecordedMemory.Frame] = [
      .init(timeNanoseconds: 5, ranges: [(0x1000, [1, 2, 3]), (0x2000, Array(repeating: 9, count: 100))]),
      .init(timeNanoseconds: 9, ranges: [(0x1000, [4, 5, 6])]),
    ]
    let encoded = RecordedMemory.encode(frames)
    #expect(try RecordedMemory.decode(encoded) == frames)
    let replay = RecordedMemory(frames: frames)
    #expect(try replay.read(0x1001, count: 2) == [2, 3])
    #expect(replay.advance())
    #expect(try replay.read(0x1000, count: 3) == [4, 5, 6])
    #expect(throws: GuestMemoryError.self) { try replay.read(0x2000, count: 1) }
    #expect(!replay.advance())
    for cut in [3, 12, 20, encoded.count - 1] {
      #expect(throws: GuestMemoryError.self) { try RecordedMemory.decode(Array(encoded.prefix(cut))) }
    }
    var rng = SplitMix64(seed: 7)
    for _ in 0..<20_000 {
      var mutated = encoded
      for _ in 0..<4 {
        mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
      }
      _ = try? RecordedMemory.decode(mutated)
    }
  }
}
