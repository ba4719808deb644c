import Foundation
import Testing

@testable import Inspector

/// Recordings that carry the trace (format 2) and those that do not (format 1).
@Suite struct TraceRecordingTests {
  static let frame = RecordedMemory.Frame(timeNanoseconds: 42, ranges: [(0x1000, [1, 2, 3, 4])])

  static var trace: RecordedTrace {
    RecordedTrace(
      events: [
        TraceEvent(
          ring: 1, position: 7, tsc: 0xFFFF_FFFF_0000, kind: .lockAcquired, lcpu: 3, object: 0x5000, arg: 9,
          arg2: 1, site: 0x10_0123),
        TraceEvent(ring: 0, position: 0, tsc: 5, kind: .allocFailure, lcpu: 0, object: 4, arg: 4096),
      ], lost: [1: 3, 2: 0x1_0000_0000], enabled: [.locks, .alloc], tscPerMs: 2_400_000)
  }

  @Test func framesWithTheirTraceSurviveEncodeAndDecode() throws {
    var traced = Self.frame
    traced.trace = Self.trace
    let frames = [traced, Self.frame]
    let file = try RecordedMemory.decodeFile(RecordedMemory.encode(frames))
    #expect(file.version == 2)
    #expect(file.frames == frames)
    #expect(file.frames[1].trace == nil, "a frame recorded without its trace has none")
    let memory = RecordedMemory(frames: file.frames, formatVersion: file.version)
    #expect(memory.hasTrace)
    #expect(memory.trace?.events == Self.trace.events)
    #expect(memory.trace?.totalLost == 3 + 0x1_0000_0000)
  }

  @Test func aFormat1RecordingReplaysWithoutATrace() throws {
    let v2 = RecordedMemory.encode([Self.frame])
    let v1 = Array("SMPTREC1".utf8) + v2.dropFirst(8)
    let file = try RecordedMemory.decodeFile(v1)
    #expect(file.version == 1)
    #expect(file.frames == [Self.frame])
    #expect(!RecordedMemory(frames: file.frames, formatVersion: 1).hasTrace)
    // A trace section is not part of format 1: such a file is refused, not half-read.
    var traced = Self.frame
    traced.trace = Self.trace
    let mixed = Array("SMPTREC1".utf8) + RecordedMemory.encode([traced]).dropFirst(8)
    #expect(throws: GuestMemoryError.self) { try RecordedMemory.decodeFile(mixed) }
  }

  @Test func appendingToAFormat1FileDropsTheTraceAndSaysSo() throws {
    let path = NSTemporaryDirectory() + "smptop-v1-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).rec"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Data(Array("SMPTREC1".utf8) + RecordedMemory.encode([Self.frame]).dropFirst(8)).write(
      to: URL(fileURLWithPath: path))
    var traced = Self.frame
    traced.trace = Self.trace
    #expect(try RecordedMemory.append([traced], to: path) == false)
    let file = try RecordedMemory.decodeFile(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    #expect(file.version == 1 && file.frames == [Self.frame, Self.frame])
    // A new file is format 2 and keeps the trace.
    let fresh = path + ".new"
    defer { try? FileManager.default.removeItem(atPath: fresh) }
    #expect(try RecordedMemory.append([traced], to: fresh) == true)
    #expect(try RecordedMemory(path: fresh).trace?.events == Self.trace.events)
  }

  @Test func truncatedOrGarbageTraceSectionsAreRefusedWithTheirFrame() throws {
    var traced = Self.frame
    traced.trace = Self.trace
    let bytes = RecordedMemory.encode([traced])
    // Every truncation inside the trace section is refused (never a crash, never a partial trace).
    let traceStart = RecordedMemory.encode([Self.frame]).count
    for cut in traceStart + 1..<bytes.count {
      #expect(throws: GuestMemoryError.self) { try RecordedMemory.decodeFile(Array(bytes[..<cut])) }
    }
    // An unknown event kind, and an event count larger than the bytes left.
    var badKind = bytes
    let firstKind = traceStart + 4 + 8 + 8 + 4 + 2 * 12 + 4 + 4 + 8 + 8
    badKind[firstKind] = 0xEE
    #expect(throws: GuestMemoryError.self) { try RecordedMemory.decodeFile(badKind) }
    var hugeCount = bytes
    let countAt = traceStart + 4 + 8 + 8 + 4 + 2 * 12
    for i in 0..<4 { hugeCount[countAt + i] = 0xFF }
    #expect(throws: GuestMemoryError.self) { try RecordedMemory.decodeFile(hugeCount) }
    // A trace section before any frame is not a recording.
    let orphan = Array("SMPTREC2".utf8) + bytes[traceStart...]
    #expect(throws: GuestMemoryError.self) { try RecordedMemory.decodeFile(orphan) }
  }
}
