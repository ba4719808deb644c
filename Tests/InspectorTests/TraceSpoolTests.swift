import Foundation
import Testing

@testable import Inspector

/// The trace spool: first in, first out, across its memory and its file.
@Suite struct TraceSpoolTests {
  static func events(_ range: Range<Int>) -> [TraceEvent] {
    range.map { i in
      TraceEvent(
        ring: UInt32(i % 4), position: UInt64(i), tsc: UInt64(1_000 + i),
        kind: TraceKind.allCases[i % TraceKind.allCases.count],
        lcpu: UInt32(i % 3), object: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, arg: ~UInt64(i),
        arg2: UInt64(i) << 32, site: 0xffff_8000_0000_0000 | UInt64(i))
    }
  }

  @Test func popsEverythingInPushOrderAcrossMemoryAndFile() throws {
    let spool = TraceSpool(memoryLimit: 100)
    var expected: [TraceEvent] = []
    var got: [TraceEvent] = []
    var next = 0
    // Pushes outrun pops for a while (the file is used), then pops catch up, twice over.
    for round in 0..<40 {
      let n = round < 15 || (round >= 25 && round < 32) ? 73 : 5
      let batch = Self.events(next..<next + n)
      next += n
      expected += batch
      try spool.push(batch)
      got += try spool.pop(round < 15 || (round >= 25 && round < 32) ? 20 : 90)
      #expect(spool.count == expected.count - got.count)
    }
    while spool.count > 0 { got += try spool.pop(33) }
    #expect(got == expected)
    #expect(spool.spilledPeak > 0, "the file was used")
    #expect(try spool.pop(10).isEmpty)
  }

  @Test func withinTheLimitNothingGoesToTheFile() throws {
    let spool = TraceSpool(memoryLimit: 1000)
    try spool.push(Self.events(0..<600))
    #expect(try spool.pop(600) == Self.events(0..<600))
    try spool.push(Self.events(600..<1600))
    #expect(try spool.pop(2000) == Self.events(600..<1600))
    #expect(spool.spilledPeak == 0)
  }

  @Test func anUnwritableDirectoryIsAnErrorNotACrash() throws {
    let spool = TraceSpool(memoryLimit: 1, directory: "/nonexistent/smptop")
    try spool.push(Self.events(0..<1))
    #expect(throws: TraceSpoolError.self) { try spool.push(Self.events(1..<3)) }
    #expect(try spool.pop(5) == Self.events(0..<1))
  }
}
