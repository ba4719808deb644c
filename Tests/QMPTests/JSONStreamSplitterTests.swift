import Foundation
import Testing

@testable import QMP

/// The stream splitter against the recorded QEMU 7.2 session, cut at every byte boundary.
struct JSONStreamSplitterTests {
  /// The messages of the recorded session, split by line (QEMU writes one per line).
  static let expected: [Data] = Recorded.session.split(separator: "\r\n").map { Data($0.utf8) }

  @Test func wholeSessionInOneReadYieldsEveryMessage() throws {
    var splitter = JSONStreamSplitter()
    let messages = try splitter.append(Array(Recorded.session.utf8))
    #expect(messages == Self.expected)
    #expect(messages.count == 22)
    #expect(splitter.incompleteByteCount == 0)
  }

  @Test func everyTwoWaySplitYieldsTheSameMessages() throws {
    let bytes = Array(Recorded.session.utf8)
    for cut in 0...bytes.count {
      var splitter = JSONStreamSplitter()
      var messages = try splitter.append(bytes[..<cut])
      messages += try splitter.append(bytes[cut...])
      #expect(messages == Self.expected, "cut at \(cut)")
      if messages != Self.expected { break }
    }
  }

  @Test(arguments: [1, 2, 3, 7, 64, 4096])
  func fixedSizeReadsYieldTheSameMessages(chunk: Int) throws {
    let bytes = Array(Recorded.session.utf8)
    var splitter = JSONStreamSplitter()
    var messages: [Data] = []
    var offset = 0
    while offset < bytes.count {
      let end = min(bytes.count, offset + chunk)
      messages += try splitter.append(bytes[offset..<end])
      if offset + chunk < bytes.count && end < bytes.count {
        // Mid-stream, the splitter holds only what belongs to an unfinished message.
        #expect(splitter.incompleteByteCount <= end)
      }
      offset = end
    }
    #expect(messages == Self.expected)
  }

  @Test func randomReadSizesYieldTheSameMessages() throws {
    let bytes = Array(Recorded.session.utf8)
    var rng = SeededGenerator(seed: 0x5EED)
    for _ in 0..<200 {
      var splitter = JSONStreamSplitter()
      var messages: [Data] = []
      var offset = 0
      while offset < bytes.count {
        let end = min(bytes.count, offset + Int.random(in: 1...300, using: &rng))
        messages += try splitter.append(bytes[offset..<end])
        offset = end
      }
      #expect(messages == Self.expected)
    }
  }

  @Test func bracesAndQuotesInsideStringsDoNotEndAMessage() throws {
    let tricky = #"{"return": "} ] { [ \" \\\" \\", "id": 1}"# + "\r\n" + #"{"event": "X"}"#
    var splitter = JSONStreamSplitter()
    let messages = try splitter.append(Array(tricky.utf8))
    #expect(messages.count == 2)
    let first = try JSONValue(jsonText: messages[0])
    #expect(first["return"] == .string(#"} ] { [ " \" \"#))
  }

  @Test func prettyPrintedMessagesSpanningLinesAreSplitCorrectly() throws {
    // What `-mon chardev=...,mode=control,pretty=on` sends.
    let pretty =
      "{\n    \"return\": {\n        \"status\": \"running\",\n        \"running\": true\n    },\n"
      + "    \"id\": 3\n}\n{\n    \"timestamp\": {\n        \"seconds\": 1\n    },\n    \"event\": \"STOP\"\n}\n"
    var splitter = JSONStreamSplitter()
    let messages = try splitter.append(Array(pretty.utf8))
    #expect(messages.count == 2)
    #expect(try JSONValue(jsonText: messages[0])["return"]?["status"] == "running")
    #expect(try JSONValue(jsonText: messages[1])["event"] == "STOP")
  }

  @Test(arguments: ["garbage\r\n", "+$T05thread:p01.01;#7c", "[1, 2]\r\n", "\"str\"\r\n", "}\r\n"])
  func bytesOutsideAnObjectAreAProtocolViolation(input: String) throws {
    var splitter = JSONStreamSplitter()
    _ = try splitter.append(Array(Recorded.greeting.utf8))
    #expect {
      _ = try splitter.append(Array(input.utf8))
    } throws: { error in
      (error as? QMPError)?.code == .protocolViolation
    }
  }

  @Test func anOversizedMessageIsAProtocolViolation() throws {
    var splitter = JSONStreamSplitter(maximumMessageSize: 1000)
    let big = "{\"return\": \"" + String(repeating: "x", count: 2000)
    #expect(throws: QMPError.self) { _ = try splitter.append(Array(big.utf8)) }
  }

  @Test func incompleteMessageBytesAreCounted() throws {
    var splitter = JSONStreamSplitter()
    let messages = try splitter.append(Array((Recorded.greeting + #"{"return": {"#).utf8))
    #expect(messages.count == 1)
    #expect(splitter.incompleteByteCount == 12)
  }
}

/// JSONValue decoding of recorded replies and address parsing.
struct QMPValueTests {
  @Test func recordedVirtioStatusDecodesWithFullIntegerPrecision() throws {
    let text = Recorded.fill(Recorded.virtioStatus, 7)
    let value = try JSONValue(jsonText: Data(text.utf8))
    #expect(value["id"] == .int(7))
    #expect(value["return"]?["host-features"]?["unknown-dev-features"]?.uint64Value == 1_099_511_627_776)
    #expect(value["return"]?["broken"] == .bool(false))
    #expect(value["return"]?["num-vqs"]?.intValue == 3)
    let big = try JSONValue(jsonText: Data("[18446744073709551615, -1, 1.5, null]".utf8))
    #expect(big == [.uint(UInt64.max), .int(-1), .double(1.5), .null])
  }

  @Test func encodedCommandsRoundTrip() throws {
    let command: JSONValue = [
      "execute": "human-monitor-command", "arguments": ["command-line": "info registers -a \"/\""], "id": 5,
    ]
    #expect(try JSONValue(jsonText: command.jsonText()) == command)
  }

  @Test func runStatesRoundTripAndUnknownOnesAreKept() {
    for name in ["running", "paused", "debug", "prelaunch", "guest-panicked", "shutdown", "internal-error"] {
      #expect(QMPRunState(rawValue: name).rawValue == name)
    }
    #expect(QMPRunState(rawValue: "guest-panicked") == .guestPanicked)
    #expect(QMPRunState(rawValue: "future-state") == .other("future-state"))
  }

  @Test func recordedEventsDecodeTheirKinds() throws {
    func event(_ line: String) throws -> QMPEvent {
      let value = try JSONValue(jsonText: Data(line.utf8))
      return try QMPEvent(message: value.objectValue ?? [:])
    }
    #expect(try event(Recorded.stop).kind == .stop)
    #expect(try event(Recorded.resume).kind == .resume)
    #expect(try event(Recorded.shutdownQuit).kind == .shutdown(guest: false, reason: "host-qmp-quit"))
    #expect(try event(Recorded.resetGuest).kind == .reset(guest: true, reason: "guest-reset"))
    #expect(try event(Recorded.guestPanicked).kind == .guestPanicked(action: "pause", info: nil))
    let stop = try event(Recorded.stop)
    #expect(stop.timestamp == QMPTimestamp(seconds: 1_795_708_728, microseconds: 185_023))
    #expect(stop.data == nil)
    let other = try event(
      #"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "WATCHDOG", "data": {"action": "pause"}}"#)
    #expect(other.kind == .other && other.name == "WATCHDOG" && other.data?["action"] == "pause")
  }
}
