import Foundation
import Model
@_exported import ModelFixtures

/// One sample of a text exposition: `name{labels} value`.
struct Sample: Equatable {
  var name: String
  var labels: [String: String]
  var value: Double

  /// The samples of an exposition (comments and blank lines skipped). Label values hold no `,` or `"`
  /// in these tests.
  static func parse(_ text: String) -> [Sample] {
    text.split(separator: "\n").compactMap { line -> Sample? in
      guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
        let value = Double(line[line.index(after: space)...])
      else { return nil }
      let series = line[..<space]
      guard let brace = series.firstIndex(of: "{") else {
        return Sample(name: String(series), labels: [:], value: value)
      }
      var labels: [String: String] = [:]
      for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(
        separator: ",")
      {
        let kv = pair.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { labels[String(kv[0])] = String(kv[1].dropFirst().dropLast()) }
      }
      return Sample(name: String(series[..<brace]), labels: labels, value: value)
    }
  }
}

extension [Sample] {
  /// The value of the one sample named `name` whose labels include `labels`.
  func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
    let matching = filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }
    return matching.count == 1 ? matching[0].value : nil
  }
}
