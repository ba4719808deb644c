import Foundation
import Testing

/// Compares text with a golden file under `__Snapshots__/`; `SNAPSHOT_RECORD=1 swift test` rewrites them.
///
/// A missing golden is written and the test fails ("recorded"), so a new baseline is always reviewed
/// before it counts as passing.
func assertGolden(
  _ actual: String, named name: String, fileID: String = #fileID, filePath: String = #filePath,
  line: Int = #line, column: Int = #column
) {
  let location = SourceLocation(fileID: fileID, filePath: filePath, line: line, column: column)
  let directory = URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent(
    "__Snapshots__")
  let url = directory.appendingPathComponent(name + ".txt")
  let record = ProcessInfo.processInfo.environment["SNAPSHOT_RECORD"].map { $0 != "" && $0 != "0" } ?? false
  let expected = try? String(contentsOf: url, encoding: .utf8)
  if record || expected == nil {
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      try (actual + "\n").write(to: url, atomically: true, encoding: .utf8)
      Issue.record("recorded golden \(name).txt; review it and run the tests again", sourceLocation: location)
    } catch {
      Issue.record("could not write golden \(url.path): \(error)", sourceLocation: location)
    }
    return
  }
  guard let expected else { return }
  let want = expected.hasSuffix("\n") ? String(expected.dropLast()) : expected
  if want != actual {
    Issue.record(
      "golden \(name).txt differs (SNAPSHOT_RECORD=1 to accept):\n\(lineDiff(expected: want, actual: actual))",
      sourceLocation: location)
  }
}

/// The differing lines, numbered, as `-expected` / `+actual` pairs.
func lineDiff(expected: String, actual: String) -> String {
  let a = expected.components(separatedBy: "\n")
  let b = actual.components(separatedBy: "\n")
  var out: [String] = []
  for i in 0..<max(a.count, b.count) {
    let x = i < a.count ? a[i] : "<none>"
    let y = i < b.count ? b[i] : "<none>"
    if x != y { out.append("line \(i + 1)\n  -\(x)\n  +\(y)") }
  }
  return out.prefix(12).joined(separator: "\n")
}
