import ELFSymbols
import GDBRemote
import Testing

@testable import Inspector

/// The frame walk of a pausing sample over synthetic stacks: where it may start, the chains it
/// follows, and the hostile ones (loops, stray pointers, refused pages) it ends without reading on.
@Suite struct StackWindowTests {
  /// Long mode on (EFER.LMA | LME).
  static let longMode: UInt64 = 0x500

  /// One code range as the only symbol.
  struct Code: SymbolLookup {
    var range: Range<UInt64>
    func address(of name: String) -> UInt64? { name == "code" ? range.lowerBound : nil }
    func lookup(_ address: UInt64) -> SymbolMatch? {
      guard range.contains(address) else { return nil }
      return SymbolMatch(
        name: "code", address: range.lowerBound, size: UInt64(range.count),
        offset: address - range.lowerBound)
    }
  }

  /// A stack image of `size` bytes starting at `base`, with 64-bit words written at offsets.
  static func stack(base: UInt64, size: Int, words: [UInt64: UInt64]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    for (address, value) in words {
      let at = Int(address - base)
      for k in 0..<8 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
    }
    return bytes
  }

  /// The window's pieces cut from one image (as the stub would return them).
  static func pieces(_ w: StackWindow, _ image: [UInt8]) -> [Result<[UInt8], GDBRemoteError>] {
    w.pages.map { p in
      let at = Int(p.address - w.base)
      return .success(Array(image[at..<(at + p.count)]))
    }
  }

  @Test func aWellFormedChainIsFollowedInnermostFirst() throws {
    let base: UInt64 = 0x20_0000
    let words: [UInt64: UInt64] = [
      base: base + 0x40, base + 8: 0x10_1234,
      base + 0x40: base + 0x100, base + 0x48: 0x10_2000,
      base + 0x100: 0, base + 0x108: 0x10_3000,
    ]
    let w = try #require(
      StackWindow(rbp: base, rsp: base - 0x30, efer: Self.longMode, sampling: PauseSampling()))
    let image = Self.stack(base: base, size: 1024, words: words)
    let walk = w.walk(Self.pieces(w, image), maxFrames: 16, symbols: Code(range: 0x10_0000..<0x11_0000))
    #expect(walk.frames == [0x10_1234, 0x10_2000, 0x10_3000])
    #expect(!walk.truncated)
  }

  @Test func theWalkStartsOnlyOnAPlausibleFramePointerInLongMode() {
    let s = PauseSampling()
    #expect(StackWindow(rbp: 0x2000, rsp: 0x1000, efer: 0, sampling: s) == nil, "not in long mode")
    #expect(StackWindow(rbp: 0x2000, rsp: 0x3000, efer: Self.longMode, sampling: s) == nil, "RBP below RSP")
    #expect(StackWindow(rbp: 0x2004, rsp: 0x1000, efer: Self.longMode, sampling: s) == nil, "misaligned")
    #expect(StackWindow(rbp: 0x100_0000, rsp: 0x1000, efer: Self.longMode, sampling: s) == nil, "too far")
    #expect(
      StackWindow(rbp: 0x8000_0000_0000_0000, rsp: 0x7FFF_FFFF_FFFF_F000, efer: Self.longMode, sampling: s)
        == nil,
      "non-canonical")
    #expect(StackWindow(rbp: nil, rsp: 0x1000, efer: Self.longMode, sampling: s) == nil)
    #expect(StackWindow(rbp: 0x2000, rsp: 0x1000, efer: Self.longMode, sampling: s) != nil)
  }

  @Test func loopsStrayPointersAndNonCodeEndTheChain() throws {
    let base: UInt64 = 0x20_0000
    let code = Code(range: 0x10_0000..<0x11_0000)
    let w = try #require(StackWindow(rbp: base, rsp: base, efer: Self.longMode, sampling: PauseSampling()))
    // A frame pointing at itself: one frame, then the walk stops (no endless loop).
    let loop = Self.stack(base: base, size: 1024, words: [base: base, base + 8: 0x10_0010])
    #expect(w.walk(Self.pieces(w, loop), maxFrames: 16, symbols: code).frames == [0x10_0010])
    // A saved RBP going down the stack ends it too.
    let down = Self.stack(
      base: base, size: 1024,
      words: [base + 0x20: base, base + 0x28: 0x10_0020, base: base + 0x20, base + 8: 0x10_0030])
    #expect(w.walk(Self.pieces(w, down), maxFrames: 16, symbols: code).frames == [0x10_0030, 0x10_0020])
    // A return address outside the code, or non-canonical without symbols: nothing kept.
    let data = Self.stack(base: base, size: 1024, words: [base: base + 0x10, base + 8: 0x50_0000])
    #expect(w.walk(Self.pieces(w, data), maxFrames: 16, symbols: code).frames.isEmpty)
    let wild = Self.stack(
      base: base, size: 1024, words: [base: base + 0x10, base + 8: 0x8000_0000_0000_0000])
    #expect(w.walk(Self.pieces(w, wild), maxFrames: 16, symbols: nil).frames.isEmpty)
  }

  @Test func theWindowAndTheFrameLimitBoundTheWalk() throws {
    // RBP 0x40 bytes before a page end: two pieces; the second page refused by the stub.
    let base: UInt64 = 0x20_0FC0
    let w = try #require(StackWindow(rbp: base, rsp: base, efer: Self.longMode, sampling: PauseSampling()))
    #expect(w.pages.map(\.count) == [0x40, 1024 - 0x40])
    var words: [UInt64: UInt64] = [:]
    var fp = base
    for i in 0..<40 {
      words[fp] = fp + 0x10
      words[fp + 8] = 0x10_0000 + UInt64(i)
      fp += 0x10
    }
    let image = Self.stack(base: base, size: 1024 + 0x10 * 40, words: words)
    var results = Self.pieces(w, image)
    results[1] = .failure(GDBRemoteError(.memoryFault, "E14"))
    let cut = w.walk(results, maxFrames: 16, symbols: nil)
    #expect(cut.frames.count == 4 && cut.truncated, "4 frames fit in the first 0x40 bytes")
    let capped = w.walk(Self.pieces(w, image), maxFrames: 16, symbols: nil)
    #expect(capped.frames.count == 16 && capped.truncated)
    #expect(capped.frames.first == 0x10_0000)
  }
}
