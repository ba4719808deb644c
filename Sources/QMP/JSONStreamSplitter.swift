import Foundation

/// Splits a QMP byte stream into complete top-level JSON objects.
///
/// QEMU writes one object per line (`\r\n`), but a read may end in the middle of one or hold
/// several, and `-mon mode=control,pretty=on` spreads one over many lines. The splitter only
/// tracks nesting depth and string/escape state to find where each object ends; the objects
/// themselves are decoded by `JSONDecoder`. Bytes other than whitespace between objects mean the
/// peer is not speaking QMP, which is reported as a `.protocolViolation`.
public struct JSONStreamSplitter: Sendable {
  /// The largest message accepted before the stream is declared broken (16 MiB; the largest
  /// real replies, such as `query-qmp-schema`, are a few hundred KiB).
  public static let defaultMaximumMessageSize = 16 << 20

  /// The largest message accepted.
  public let maximumMessageSize: Int

  private var buffer: [UInt8] = []
  /// Index into `buffer` of the first byte not scanned yet.
  private var scanIndex = 0
  /// Index of the `{` that opened the current message, when depth > 0.
  private var messageStart = 0
  private var depth = 0
  private var inString = false
  private var escaped = false

  /// Creates a splitter.
  public init(maximumMessageSize: Int = JSONStreamSplitter.defaultMaximumMessageSize) {
    self.maximumMessageSize = max(2, maximumMessageSize)
  }

  /// The number of buffered bytes that belong to a message not yet complete.
  public var incompleteByteCount: Int { depth > 0 ? buffer.count - messageStart : 0 }

  /// Appends bytes read from the stream and returns the messages they complete, in order.
  public mutating func append(_ bytes: some Sequence<UInt8>) throws(QMPError) -> [Data] {
    buffer.append(contentsOf: bytes)
    var messages: [Data] = []
    var consumed = 0  // every byte before this index is done with
    var index = scanIndex
    while index < buffer.count {
      let byte = buffer[index]
      if depth == 0 {
        switch byte {
        case 0x20, 0x09, 0x0D, 0x0A:
          consumed = index + 1
        case UInt8(ascii: "{"):
          depth = 1
          messageStart = index
        default:
          let preview = buffer[index..<min(buffer.count, index + 40)]
          throw QMPError(
            .protocolViolation,
            "the peer sent data that is not a QMP JSON object: byte 0x\(String(byte, radix: 16)) "
              + "at \"\(String(decoding: preview, as: UTF8.self).debugDescriptionTrimmed)\"")
        }
      } else if inString {
        if escaped {
          escaped = false
        } else if byte == UInt8(ascii: "\\") {
          escaped = true
        } else if byte == UInt8(ascii: "\"") {
          inString = false
        }
      } else {
        switch byte {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
          depth -= 1
          if depth == 0 {
            messages.append(Data(buffer[messageStart...index]))
            consumed = index + 1
          }
        default: break
        }
      }
      if depth > 0 && index - messageStart + 1 > maximumMessageSize {
        throw QMPError(
          .protocolViolation, "a QMP message exceeds \(maximumMessageSize) bytes; the stream is not QMP")
      }
      index += 1
    }
    // Drop what is done with, keep the incomplete tail.
    if consumed > 0 {
      buffer.removeSubrange(0..<consumed)
      if depth > 0 { messageStart -= consumed }
    }
    scanIndex = buffer.count
    return messages
  }
}

extension String {
  /// The string with control characters escaped, for error messages.
  fileprivate var debugDescriptionTrimmed: String {
    String(debugDescription.dropFirst().dropLast())
  }
}
