/// Shortens a demangled Swift name towards what `swift demangle --simplified` prints.
///
/// The runtime's `swift_demangle` has no option for the simplified form, so this works on the
/// demangled text: it drops module qualifiers, private discriminators, `(extension in M):`,
/// generic `where` clauses, closure signatures, parameter types (keeping argument labels),
/// `throws`/`async`, return types, type annotations (`: T`) and conformance modules. It is a
/// best effort for display; the full demangled name stays available.
enum SwiftNameSimplifier {
  static func simplify(_ demangled: String) -> String {
    var text = Substring(demangled)
    if let suffix = text.firstRange(of: " with unmangled suffix ") { text = text[..<suffix.lowerBound] }
    // `(2) suspend resume partial function for X` / `(1) await resume partial function for X` -> X.
    for marker in [" suspend resume partial function for ", " await resume partial function for "] {
      if text.hasPrefix("("), let range = text.firstRange(of: marker) { text = text[range.upperBound...] }
    }
    for marker in ["generic specialization <", "function signature specialization <"]
    where text.hasPrefix(marker) {
      // `generic specialization <Swift.Int> of f` -> `specialized f`.
      var scanner = Scanner(Array(text.unicodeScalars))
      scanner.position = marker.unicodeScalars.count - 1
      let end = scanner.matchingEnd(from: scanner.position)
      let rest = String(String.UnicodeScalarView(scanner.chars[end...]))
      if rest.hasPrefix(" of ") { return "specialized " + simplify(String(rest.dropFirst(4))) }
    }
    var scanner = Scanner(Array(text.unicodeScalars))
    return scanner.entity(until: [])
  }

  private struct Scanner {
    let chars: [Unicode.Scalar]
    var position = 0
    /// Inside `[K : V]` sugar the colon is part of the type, not an annotation.
    var keepsColons = false

    init(_ chars: [Unicode.Scalar], keepsColons: Bool = false) {
      self.chars = chars
      self.keepsColons = keepsColons
    }

    var atEnd: Bool { position >= chars.count }

    func peek(_ literal: String, at offset: Int = 0) -> Bool {
      var index = position + offset
      for scalar in literal.unicodeScalars {
        guard index < chars.count, chars[index] == scalar else { return false }
        index += 1
      }
      return true
    }

    static func isIdentifier(_ scalar: Unicode.Scalar) -> Bool {
      scalar == "_" || scalar == "$" || scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
        || scalar.value > 0x7F
    }

    /// Index just past the group opened at `start` (`(`, `<` or `[`), respecting nesting.
    func matchingEnd(from start: Int) -> Int {
      var depth = 0
      var index = start
      while index < chars.count {
        switch chars[index] {
        case "(", "<", "[": depth += 1
        case ")", ">", "]":
          // `->` is an arrow, not a closing angle bracket.
          if chars[index] == ">" && index > 0 && chars[index - 1] == "-" { break }
          depth -= 1
          if depth == 0 { return index + 1 }
        default: break
        }
        index += 1
      }
      return chars.count
    }

    /// Index of the next top-level occurrence of `literal` from `position`, or nil.
    func nextTopLevel(_ literal: String, from start: Int) -> Int? {
      var depth = 0
      var index = start
      let target = Array(literal.unicodeScalars)
      while index < chars.count {
        let scalar = chars[index]
        if depth == 0 && index + target.count <= chars.count
          && Array(chars[index..<index + target.count]) == target
        {
          return index
        }
        switch scalar {
        case "(", "<", "[": depth += 1
        case ")", "]": depth -= 1
        case ">": if !(index > 0 && chars[index - 1] == "-") { depth -= 1 }
        default: break
        }
        if depth < 0 { return nil }
        index += 1
      }
      return nil
    }

    /// Skips a type or signature until the next top-level ` in ` (or ` and `, or the end).
    mutating func skipToConnector() {
      let candidates = [" in ", " and "].compactMap { nextTopLevel($0, from: position) }
      position = candidates.min() ?? chars.count
    }

    /// Reads a dotted path and returns it without its module prefix.
    mutating func path() -> String {
      // A path that continues a member chain (`Generic<A>.member`) has no module to strip.
      let continuesChain = position > 0 && chars[position - 1] == "."
      var components: [String] = []
      var current = ""
      while !atEnd {
        let scalar = chars[position]
        if Self.isIdentifier(scalar) {
          current.unicodeScalars.append(scalar)
          position += 1
        } else if scalar == "." && !current.isEmpty && position + 1 < chars.count
          && (Self.isIdentifier(chars[position + 1]) || chars[position + 1] == "(")
        {
          components.append(current)
          current = ""
          position += 1
        } else if scalar == "(" && peek(" in _", at: 1 + identifierLength(at: position + 1)) {
          // A private discriminator: (name in _0123ABCD) -> name.
          let end = matchingEnd(from: position)
          let inner = String(String.UnicodeScalarView(chars[(position + 1)..<end]))
          current += inner.prefix { $0 != " " }
          position = end
        } else {
          break
        }
      }
      if !current.isEmpty { components.append(current) }
      if components.count >= 2 && !continuesChain { components.removeFirst() }  // the module
      return components.joined(separator: ".")
    }

    func identifierLength(at start: Int) -> Int {
      var index = start
      while index < chars.count && Self.isIdentifier(chars[index]) { index += 1 }
      return index - start
    }

    /// Argument labels of a parameter list at `position` (which is at `(`): `(a: T, _: U)` -> `(a:_:)`.
    mutating func labels() -> String {
      let end = matchingEnd(from: position)
      var labels = ""
      var index = position + 1
      var depth = 0
      var segmentStart = index
      func label(_ from: Int, _ to: Int) -> String {
        let segment = chars[from..<to]
        if segment.isEmpty { return "" }
        // "label: Type" has a top-level ": " right after an identifier.
        var cursor = from
        while cursor < to && Self.isIdentifier(chars[cursor]) { cursor += 1 }
        if cursor > from && cursor + 1 < to && chars[cursor] == ":" && chars[cursor + 1] == " " {
          return String(String.UnicodeScalarView(chars[from..<cursor])) + ":"
        }
        return "_:"
      }
      while index < end - 1 {
        switch chars[index] {
        case "(", "<", "[": depth += 1
        case ")", "]": depth -= 1
        case ">": if chars[index - 1] != "-" { depth -= 1 }
        case "," where depth == 0:
          labels += label(segmentStart, index)
          segmentStart = index + 2
        default: break
        }
        index += 1
      }
      labels += label(segmentStart, max(segmentStart, end - 1))
      position = end
      return "(" + labels + ")"
    }

    /// Generic arguments at `position` (at `<`), without any `where` clause, paths simplified.
    mutating func generics() -> String {
      let end = matchingEnd(from: position)
      let whereClause = nextTopLevel(" where ", from: position + 1).flatMap { $0 < end ? $0 : nil }
      let stop = whereClause ?? (end - 1)
      position += 1
      var out = "<"
      out += entity(until: [], limit: stop)
      position = end
      return out + ">"
    }

    /// Copies text up to `limit`, simplifying paths and signatures as it goes.
    mutating func entity(until terminators: [String], limit: Int? = nil) -> String {
      let limit = limit ?? chars.count
      var out = ""
      while position < limit {
        if peek("(extension in ") {
          let close = matchingEnd(from: position)
          position = close
          if position < limit && chars[position] == ":" { position += 1 }
          continue
        }
        if peek(" value witness for ") {
          position += " value witness".unicodeScalars.count
          continue
        }
        if peek("partial apply forwarder for ") {
          out += "partial apply for "
          position += "partial apply forwarder for ".unicodeScalars.count
          continue
        }
        if peek(" -> ") || (peek(" : ") && !keepsColons) {
          let isAnnotation = peek(" : ")
          position += 3
          skipToConnector()
          if isAnnotation && peek(" in ") {
            // A conformance's module (` : P in M`) goes too.
            let afterIn = position + 4
            let length = identifierLength(at: afterIn)
            if afterIn + length >= limit || peekAt(afterIn + length, " and ") {
              position = afterIn + length
            }
          }
          continue
        }
        if peek(" throws") || peek(" rethrows") || peek(" async") {
          let word = peek(" throws") ? " throws" : peek(" rethrows") ? " rethrows" : " async"
          position += word.unicodeScalars.count
          if position < limit && chars[position] == "(" { position = matchingEnd(from: position) }
          continue
        }
        if peek("closure #") || peek("implicit closure #") {
          let word = peek("closure #") ? "closure #" : "implicit closure #"
          position += word.unicodeScalars.count
          out += word
          while position < limit && ("0"..."9").contains(chars[position]) {
            out.unicodeScalars.append(chars[position])
            position += 1
          }
          if position < limit && chars[position] == " " && !peek(" in ") { skipToConnector() }
          continue
        }
        let scalar = chars[position]
        let discriminator = scalar == "(" && peek(" in _", at: 1 + identifierLength(at: position + 1))
        if Self.isIdentifier(scalar) || discriminator {
          out += path()
          if position < limit && chars[position] == "(" && !peek(" in _", at: 1) {
            out += labels()
          } else if peek(" #") {
            // A local function: `send #1 (Swift.String) -> ()` -> `send #1 (_:)`.
            var cursor = position + 2
            while cursor < limit && ("0"..."9").contains(chars[cursor]) { cursor += 1 }
            if cursor > position + 2 && peekAt(cursor, " (") {
              out += String(String.UnicodeScalarView(chars[position..<cursor])) + " "
              position = cursor + 1
              out += labels()
            }
          }
          continue
        }
        if scalar == "[" {
          // Array/dictionary sugar: simplify the inside, keeping `K : V`.
          let end = matchingEnd(from: position)
          var inner = Scanner(Array(chars[(position + 1)..<max(position + 1, end - 1)]), keepsColons: true)
          out += "[" + inner.entity(until: []) + (end - 1 > position && chars[end - 1] == "]" ? "]" : "")
          position = end
          continue
        }
        if scalar == "<" && !(position > 0 && chars[position - 1] == ".") {  // `.< infix` is an operator
          out += generics()
          if position < limit && chars[position] == "(" { out += labels() }
          continue
        }
        out.unicodeScalars.append(scalar)
        position += 1
      }
      return out
    }

    func peekAt(_ index: Int, _ literal: String) -> Bool {
      var cursor = index
      for scalar in literal.unicodeScalars {
        guard cursor < chars.count, chars[cursor] == scalar else { return false }
        cursor += 1
      }
      return true
    }
  }
}
