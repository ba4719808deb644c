/// Rewrites `Swift.Optional<T>`, `Swift.Array<T>` and `Swift.Dictionary<K, V>` in demangled
/// text as `T?`, `[T]` and `[K : V]`, the sugar the `swift demangle` tool prints (the runtime's
/// `swift_demangle` does not synthesize it).
enum SwiftTypeSugar {
  static func apply(_ text: String) -> String {
    guard mentionsSugarableType(text) else { return text }
    return sugar(Array(text.unicodeScalars)[...])
  }

  /// A fast byte scan for `Swift.Optional<`, `Swift.Array<` or `Swift.Dictionary<`.
  private static func mentionsSugarableType(_ text: String) -> Bool {
    let needles: [[UInt8]] = [Array("Optional<".utf8), Array("Array<".utf8), Array("Dictionary<".utf8)]
    let prefix = Array("Swift.".utf8)
    var copy = text
    return copy.withUTF8 { bytes in
      guard bytes.count > prefix.count else { return false }
      var index = 0
      while index + prefix.count < bytes.count {
        if bytes[index] == UInt8(ascii: "S") && bytes[index + 5] == UInt8(ascii: ".")
          && bytes[index..<index + prefix.count].elementsEqual(prefix)
        {
          let rest = index + prefix.count
          for needle in needles where bytes.count - rest >= needle.count {
            if bytes[rest..<rest + needle.count].elementsEqual(needle) { return true }
          }
        }
        index += 1
      }
      return false
    }
  }

  private static let optional = Array("Swift.Optional<".unicodeScalars)
  private static let array = Array("Swift.Array<".unicodeScalars)
  private static let dictionary = Array("Swift.Dictionary<".unicodeScalars)

  private static func isIdentifier(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII {
      let value = scalar.value
      return (0x61...0x7A).contains(value) || (0x41...0x5A).contains(value) || (0x30...0x39).contains(value)
        || value == 0x5F || value == 0x2E
    }
    return scalar.properties.isAlphabetic
  }

  private static let rewrites: [([Unicode.Scalar], Int)] = [(optional, 0), (array, 1), (dictionary, 2)]

  private static func starts(
    _ chars: ArraySlice<Unicode.Scalar>, at index: Int, with prefix: [Unicode.Scalar]
  ) -> Bool {
    guard chars.endIndex - index >= prefix.count else { return false }
    return chars[index..<index + prefix.count].elementsEqual(prefix)
  }

  /// Index of the `>` closing the `<` at `open`, or nil.
  private static func closing(_ chars: ArraySlice<Unicode.Scalar>, from open: Int) -> Int? {
    var depth = 0
    var index = open
    while index < chars.endIndex {
      switch chars[index] {
      case "<", "(", "[": depth += 1
      case ")", "]": depth -= 1
      case ">":
        if index > chars.startIndex && chars[index - 1] == "-" { break }
        depth -= 1
        if depth == 0 { return index }
      default: break
      }
      index += 1
    }
    return nil
  }

  /// Splits at top-level ", ".
  private static func splitArguments(_ chars: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
    var parts: [ArraySlice<Unicode.Scalar>] = []
    var depth = 0
    var start = chars.startIndex
    var index = chars.startIndex
    while index < chars.endIndex {
      switch chars[index] {
      case "<", "(", "[": depth += 1
      case ")", "]": depth -= 1
      case ">": if !(index > chars.startIndex && chars[index - 1] == "-") { depth -= 1 }
      case "," where depth == 0 && index + 1 < chars.endIndex && chars[index + 1] == " ":
        parts.append(chars[start..<index])
        start = index + 2
        index += 1
      default: break
      }
      index += 1
    }
    parts.append(chars[start..<chars.endIndex])
    return parts
  }

  /// Whether an optional's payload needs parentheses before `?` (function types, attributes,
  /// compositions, `any`/`some`).
  private static func needsParentheses(_ text: String) -> Bool {
    if text.hasPrefix("@") || text.hasPrefix("any ") || text.hasPrefix("some ") || text.hasPrefix("inout ") {
      return true
    }
    var depth = 0
    let chars = Array(text.unicodeScalars)
    for (index, scalar) in chars.enumerated() {
      switch scalar {
      case "<", "(", "[": depth += 1
      case ")", "]": depth -= 1
      case ">": if !(index > 0 && chars[index - 1] == "-") { depth -= 1 }
      case " " where depth == 0: return true  // `A -> B`, `A & B`, `A async`, ...
      default: break
      }
    }
    return false
  }

  private static func sugar(_ chars: ArraySlice<Unicode.Scalar>) -> String {
    var out = String.UnicodeScalarView()
    var index = chars.startIndex
    while index < chars.endIndex {
      if startsAType(chars, at: index), let (text, next) = rewrite(chars, at: index) {
        out.append(contentsOf: text.unicodeScalars)
        index = next
        continue
      }
      out.append(chars[index])
      index += 1
    }
    return String(out)
  }

  /// Whether a type name can start at `index`: after a non-identifier character, or right after
  /// a qualified name (`Swift.UInt64Swift.Optional<…>`: the tool prints a substitution list
  /// `for <A, B>` without separators). A module name has no `.`, so `MySwift.Optional<` is no type
  /// of the standard library.
  private static func startsAType(_ chars: ArraySlice<Unicode.Scalar>, at index: Int) -> Bool {
    guard index > chars.startIndex, isIdentifier(chars[index - 1]) else { return true }
    var start = index
    while start > chars.startIndex, isIdentifier(chars[start - 1]) { start -= 1 }
    return chars[start..<index].contains(".")
  }

  /// The sugared form of the bound generic type starting at `index`, and the index after it.
  private static func rewrite(_ chars: ArraySlice<Unicode.Scalar>, at index: Int) -> (String, Int)? {
    guard chars[index] == "S" else { return nil }
    for (prefix, kind) in rewrites where starts(chars, at: index, with: prefix) {
      let open = index + prefix.count - 1
      guard let close = closing(chars, from: open) else { return nil }
      let inner = chars[(open + 1)..<close]
      // `<A where ...>` or `< where ...>` is a generic context (an extension), not a type.
      if inner.isEmpty || inner.first == " " || containsTopLevelWhere(inner) { return nil }
      switch kind {
      case 0:
        let payload = sugar(inner)
        return (needsParentheses(payload) ? "(\(payload))?" : "\(payload)?", close + 1)
      case 1:
        return ("[\(sugar(inner))]", close + 1)
      default:
        let parts = splitArguments(inner)
        guard parts.count == 2 else { return nil }
        return ("[\(sugar(parts[0])) : \(sugar(parts[1]))]", close + 1)
      }
    }
    return nil
  }

  private static func containsTopLevelWhere(_ chars: ArraySlice<Unicode.Scalar>) -> Bool {
    let marker = Array(" where ".unicodeScalars)
    var depth = 0
    var index = chars.startIndex
    while index < chars.endIndex {
      switch chars[index] {
      case "<", "(", "[": depth += 1
      case ")", "]": depth -= 1
      case ">": if !(index > chars.startIndex && chars[index - 1] == "-") { depth -= 1 }
      case " " where depth == 0:
        if chars.endIndex - index >= marker.count && chars[index..<index + marker.count].elementsEqual(marker)
        {
          return true
        }
      default: break
      }
      index += 1
    }
    return false
  }
}
