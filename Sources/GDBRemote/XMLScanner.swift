/// A small, strict-enough XML tokenizer for gdb target descriptions.
///
/// Target descriptions use elements, attributes, comments, a DOCTYPE line, the
/// predefined entities and character references; this scanner handles exactly that (plus
/// processing instructions and CDATA, skipped or passed as text) without a libxml2
/// dependency, and reports malformed input as an error instead of guessing.
struct XMLScanner {
  enum Token: Equatable {
    case start(name: String, attributes: [String: String], selfClosing: Bool)
    case end(name: String)
    case text(String)
  }

  struct Failure: Error, Equatable {
    var message: String
    var offset: Int
  }

  private let bytes: [UInt8]
  private var i = 0

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  static func tokenize(_ bytes: [UInt8]) throws(Failure) -> [Token] {
    var scanner = XMLScanner(bytes)
    var tokens: [Token] = []
    while let t = try scanner.next() { tokens.append(t) }
    return tokens
  }

  private func fail(_ message: String) -> Failure { Failure(message: message, offset: i) }

  private func starts(with text: StaticString) -> Bool {
    let count = text.utf8CodeUnitCount
    guard i + count <= bytes.count else { return false }
    return text.withUTF8Buffer { bytes[i..<(i + count)].elementsEqual($0) }
  }

  private mutating func skip(past terminator: StaticString) throws(Failure) {
    let t = terminator.withUTF8Buffer { Array($0) }
    while i + t.count <= bytes.count {
      if bytes[i..<(i + t.count)].elementsEqual(t) {
        i += t.count
        return
      }
      i += 1
    }
    throw fail("unterminated construct, expected \(terminator)")
  }

  private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d }

  private static func isNameByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: ":"),
      UInt8(ascii: "-"), UInt8(ascii: "."), 0x80...0xff:
      return true
    default:
      return false
    }
  }

  private mutating func skipSpace() {
    while i < bytes.count, XMLScanner.isSpace(bytes[i]) { i += 1 }
  }

  private mutating func name() throws(Failure) -> String {
    let start = i
    while i < bytes.count, XMLScanner.isNameByte(bytes[i]) { i += 1 }
    guard i > start else { throw fail("expected a name") }
    return String(decoding: bytes[start..<i], as: UTF8.self)
  }

  static func decodeEntities(_ raw: ArraySlice<UInt8>) throws(Failure) -> String {
    guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
    var out = ""
    var j = raw.startIndex
    while j < raw.endIndex {
      let b = raw[j]
      guard b == UInt8(ascii: "&") else {
        let start = j
        while j < raw.endIndex, raw[j] != UInt8(ascii: "&") { j += 1 }
        out += String(decoding: raw[start..<j], as: UTF8.self)
        continue
      }
      guard let semi = raw[j...].firstIndex(of: UInt8(ascii: ";")), semi - j <= 12 else {
        throw Failure(message: "unterminated entity", offset: j)
      }
      let entity = String(decoding: raw[(j + 1)..<semi], as: UTF8.self)
      switch entity {
      case "lt": out += "<"
      case "gt": out += ">"
      case "amp": out += "&"
      case "quot": out += "\""
      case "apos": out += "'"
      default:
        var value: UInt32? = nil
        if entity.hasPrefix("#x") {
          value = UInt32(entity.dropFirst(2), radix: 16)
        } else if entity.hasPrefix("#") {
          value = UInt32(entity.dropFirst(1), radix: 10)
        }
        guard let v = value, let scalar = Unicode.Scalar(v) else {
          throw Failure(message: "unknown entity &\(entity);", offset: j)
        }
        out.unicodeScalars.append(scalar)
      }
      j = semi + 1
    }
    return out
  }

  mutating func next() throws(Failure) -> Token? {
    while i < bytes.count {
      if bytes[i] != UInt8(ascii: "<") {
        let start = i
        while i < bytes.count, bytes[i] != UInt8(ascii: "<") { i += 1 }
        let text = try XMLScanner.decodeEntities(bytes[start..<i])
        if text.contains(where: { !$0.isWhitespace }) { return .text(text) }
        continue
      }
      if starts(with: "<!--") {
        try skip(past: "-->")
        continue
      }
      if starts(with: "<![CDATA[") {
        let start = i + 9
        try skip(past: "]]>")
        return .text(String(decoding: bytes[start..<(i - 3)], as: UTF8.self))
      }
      if starts(with: "<?") {
        try skip(past: "?>")
        continue
      }
      if starts(with: "<!") {
        // DOCTYPE, possibly with an internal subset in brackets.
        var depth = 0
        i += 2
        while i < bytes.count {
          let b = bytes[i]
          i += 1
          if b == UInt8(ascii: "[") { depth += 1 }
          if b == UInt8(ascii: "]") { depth -= 1 }
          if b == UInt8(ascii: ">") && depth <= 0 { break }
          if i == bytes.count { throw fail("unterminated declaration") }
        }
        continue
      }
      if starts(with: "</") {
        i += 2
        let n = try name()
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { throw fail("expected > after </\(n)") }
        i += 1
        return .end(name: n)
      }
      i += 1
      let n = try name()
      var attributes: [String: String] = [:]
      while true {
        skipSpace()
        guard i < bytes.count else { throw fail("unterminated tag <\(n)") }
        if bytes[i] == UInt8(ascii: ">") {
          i += 1
          return .start(name: n, attributes: attributes, selfClosing: false)
        }
        if starts(with: "/>") {
          i += 2
          return .start(name: n, attributes: attributes, selfClosing: true)
        }
        let key = try name()
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { throw fail("expected = after \(key)") }
        i += 1
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") else {
          throw fail("expected a quoted value for \(key)")
        }
        let quote = bytes[i]
        i += 1
        let start = i
        while i < bytes.count, bytes[i] != quote { i += 1 }
        guard i < bytes.count else { throw fail("unterminated attribute value") }
        attributes[key] = try XMLScanner.decodeEntities(bytes[start..<i])
        i += 1
      }
    }
    return nil
  }
}
