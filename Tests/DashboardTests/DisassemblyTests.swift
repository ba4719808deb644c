import Dashboard
import Disassembly
import Testing

/// The Capstone wrapper: known bytes decode to known instructions, garbage never crashes.
@Suite struct DisassemblyTests {
  @Test func knownBytesDecodeInIntelSyntax() throws {
    let d = try Disassembler()
    let insns = d.disassemble(Fixtures.code, at: Fixtures.codeBase)
    #expect(
      insns.map(\.text) == [
        "push rbp", "mov rbp, rsp", "mov rax, qword ptr [rdi + 8]", "add rax, 1",
        "mov qword ptr [rdi + 8], rax",
        "ud2", "pop rbp", "ret",
      ])
    #expect(
      insns.map(\.address) == [
        0x10_3030, 0x10_3031, 0x10_3034, 0x10_3038, 0x10_303c, 0x10_3040, 0x10_3042, 0x10_3043,
      ])
    #expect(insns[1].bytes == [0x48, 0x89, 0xe5])
    #expect(insns.allSatisfy { $0.isValid })
    #expect(insns.last?.end == Fixtures.codeBase + UInt64(Fixtures.code.count))
  }

  @Test func moreInstructions() throws {
    let d = try Disassembler()
    // call rel32; jmp rel8; hlt; int3; syscall; lock cmpxchg [rdi], ecx
    let bytes: [UInt8] = [
      0xe8, 0x00, 0x00, 0x00, 0x00, 0xeb, 0xfe, 0xf4, 0xcc, 0x0f, 0x05, 0xf0, 0x0f, 0xb1, 0x0f,
    ]
    let insns = d.disassemble(bytes, at: 0x1000)
    #expect(
      insns.map(\.text) == [
        "call 0x1005", "jmp 0x1005", "hlt", "int3", "syscall", "lock cmpxchg dword ptr [rdi], ecx",
      ])
  }

  @Test func maxCountStopsEarly() throws {
    let d = try Disassembler()
    #expect(d.disassemble(Fixtures.code, at: 0, maxCount: 3).count == 3)
    #expect(d.disassemble([], at: 0).isEmpty)
  }

  @Test func undecodableBytesBecomeBadInstructionsAndDecodingGoesOn() throws {
    let d = try Disassembler()
    // 0x06 (push es) is invalid in 64-bit mode; then a valid nop; a lone 0x0f at the end is truncated.
    let insns = d.disassemble([0x06, 0x90, 0x0f], at: 0x2000)
    #expect(insns.map(\.mnemonic) == [Instruction.bad, "nop", Instruction.bad])
    #expect(insns[0].operands == ".byte 0x6")
    #expect(insns.map(\.address) == [0x2000, 0x2001, 0x2002])
  }

  @Test func garbageNeverCrashesAndEveryByteIsAccountedFor() throws {
    let d = try Disassembler()
    var rng = SplitMix(seed: 0x5eed)
    for round in 0..<300 {
      let count = Int(rng.next() % 96)
      let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      let insns = d.disassemble(bytes, at: 0xffff_ffff_ffff_ff00 &+ UInt64(round))
      #expect(insns.reduce(0) { $0 + $1.bytes.count } == count)
      #expect(insns.flatMap(\.bytes) == bytes)
      #expect(insns.allSatisfy { $0.bytes.count >= 1 && $0.bytes.count <= 15 })
    }
  }

  @Test func windowFindsTheInstructionBoundaryBeforeRIP() throws {
    let d = try Disassembler()
    // Start 3 bytes into `mov rbp, rsp`: a naive decode from there would be misaligned.
    let base = Fixtures.codeBase + 2
    let bytes = Array(Fixtures.code.dropFirst(2))
    let w = d.window(around: 0x10_303c, bytes: bytes, base: base, before: 2, after: 3)
    #expect(w.map(\.address) == [0x10_3034, 0x10_3038, 0x10_303c, 0x10_3040, 0x10_3042])
    #expect(w[2].text == "mov qword ptr [rdi + 8], rax")
    #expect(d.window(around: 0x5000, bytes: bytes, base: base).isEmpty, "RIP outside the bytes")
  }

  @Test func instructionsBecomeDashboardLines() throws {
    let d = try Disassembler()
    let lines = d.disassemble(Fixtures.code, at: Fixtures.codeBase).map {
      DisassemblyLine(address: $0.address, bytes: $0.bytes, mnemonic: $0.mnemonic, operands: $0.operands)
    }
    #expect(lines.count == 8)
    #expect(lines[5].mnemonic == "ud2")
  }

  @Test func capstoneReportsItsVersion() {
    #expect(Disassembler.capstoneVersion.hasPrefix("4.") || Disassembler.capstoneVersion.hasPrefix("5."))
  }
}

/// A small deterministic generator for fuzz inputs.
struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
