/// Why a pane is empty in generic mode: its tables come from the guest's inspection ABI.
func placeholderText(for pane: Pane, generic: Bool) -> [String] {
  guard generic && pane != .lcpus else { return [] }
  return [
    "No data in generic mode.",
    "This pane reads the guest's own bookkeeping through the smptop inspection ABI, which this guest does not have.",
  ]
}

/// Draws a pane's placeholder: a title and a wrapped explanation, centred in the body.
func drawPlaceholder(into g: inout Grid, lines: [String], body: Rect) {
  let width = min(body.width - 2, 72)
  guard width > 8 else { return }
  var wrapped: [(String, Style)] = []
  for (i, text) in lines.enumerated() {
    if i > 0 { wrapped.append(("", .normal)) }
    for line in wrap(text, width: width) { wrapped.append((line, i == 0 ? .warn : .dim)) }
  }
  let top = body.y + max(0, (body.height - wrapped.count) / 2)
  let left = body.x + (body.width - width) / 2
  for (n, (line, style)) in wrapped.enumerated() where top + n < body.maxY {
    g.put(line, x: left, y: top + n, style: style, maxWidth: width)
  }
}

/// Splits text into lines of at most `width` columns at spaces (long words are cut).
func wrap(_ text: String, width: Int) -> [String] {
  guard width > 0 else { return [] }
  var lines: [String] = []
  var line = ""
  for word in text.split(separator: " ", omittingEmptySubsequences: true) {
    var word = String(word)
    while displayWidth(word) > width {
      if !line.isEmpty {
        lines.append(line)
        line = ""
      }
      lines.append(String(word.prefix(width)))
      word = String(word.dropFirst(width))
    }
    if line.isEmpty {
      line = word
    } else if displayWidth(line) + 1 + displayWidth(word) <= width {
      line += " " + word
    } else {
      lines.append(line)
      line = word
    }
  }
  if !line.isEmpty { lines.append(line) }
  return lines
}
