import Foundation
import Testing

/// `smptop profile` against the real guest: folded stacks that parse and add up to the periods
/// of the samples drained, the JSON summary, and the message for a guest booted without prof_hz=.
@Suite(.serialized) struct ProfileCommandTests {
  /// `outer;...;inner count` lines: the stacks and their counts, or nil for a line that is not one.
  static func parseFolded(_ text: String) -> [(frames: [String], count: Int)]? {
    var out: [(frames: [String], count: Int)] = []
    for line in text.split(separator: "\n") {
      guard let space = line.lastIndex(of: " "), let count = Int(line[line.index(after: space)...]), count > 0
      else { return nil }
      let frames = line[..<space].split(separator: ";", omittingEmptySubsequences: false).map(String.init)
      guard !frames.isEmpty, !frames.contains(where: \.isEmpty) else { return nil }
      out.append((frames, count))
    }
    return out
  }

  /// The samples, periods and loss `smptop profile` reports on standard error
  /// (`profiled S samples (P periods) at ... lost L`).
  static func reported(_ stderr: String) -> (samples: Int, periods: Int, lost: Int)? {
    guard let range = stderr.range(of: "profiled ") else { return nil }
    let words = stderr[range.upperBound...].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "(" })
    guard words.count > 3, let samples = Int(words[0]), let periods = Int(words[2]),
      let lostIndex = words.firstIndex(of: "lost"), lostIndex + 1 < words.endIndex,
      let lost = Int(words[lostIndex + 1])
    else { return nil }
    return (samples, periods, lost)
  }

  @Test func foldedStacksParseAndAddUpToTheSamplesDrained() async throws {
    let qemu = try await OwnQEMU(smp: 2, append: "prof_hz=1000")
    let dir = qemu.directory
    let out = dir + "/profile.folded"
    let run = try SMPTopBinary.run(
      ["profile"] + qemu.target + ["--seconds", "1", "--out", out, "--per-lcpu"])
    #expect(run.status == 0, "\(run.stderr)")
    let text = try String(contentsOfFile: out, encoding: .utf8)
    let stacks = try #require(Self.parseFolded(text), "every line is `frames count`:\n\(text.prefix(500))")
    let (samples, periods, lost) = try #require(Self.reported(run.stderr), "\(run.stderr)")
    #expect(samples > 100, "2 lcpus at 1000 Hz for a second: \(samples)")
    #expect(periods >= samples, "\(samples) samples stand for \(periods) periods")
    #expect(
      stacks.reduce(0) { $0 + $1.count } == periods, "the counts add up to the periods of the samples drained"
    )
    #expect(lost >= 0)
    #expect(Set(stacks.map(\.frames[0])) == ["lcpu0", "lcpu1"], "--per-lcpu prefixes each stack")
    #expect(stacks.contains { $0.frames == ["lcpu0", "idle"] || $0.frames == ["lcpu1", "idle"] })
    #expect(stacks.contains { $0.frames.count >= 4 }, "frame chains, not only the interrupted function")

    // --lines names frames by source line through the kernel's DWARF.
    let lines = try SMPTopBinary.run(
      ["profile"] + qemu.target + ["--seconds", "0.5", "--out", "-", "--lines"])
    #expect(lines.status == 0, "\(lines.stderr)")
    let byLine = try #require(Self.parseFolded(lines.stdout), "\(lines.stdout.prefix(500))")
    #expect(byLine.contains { $0.frames.contains { $0.contains(".swift:") } }, "\(lines.stdout.prefix(500))")

    let json = try SMPTopBinary.run(["profile"] + qemu.target + ["--seconds", "0.5", "--out", "-", "--json"])
    #expect(json.status == 0, "\(json.stderr)")
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)")
    let total = try #require(object["samples"] as? Int)
    let totalPeriods = try #require(object["periods"] as? Int)
    let lcpus = try #require(object["lcpus"] as? [[String: Any]])
    #expect(object["lost"] is Int && object["hz"] as? Int == 1000)
    #expect(lcpus.count == 2 && lcpus.compactMap { $0["samples"] as? Int }.reduce(0, +) == total)
    #expect(lcpus.compactMap { $0["periods"] as? Int }.reduce(0, +) == totalPeriods)
    let top = try #require(object["top"] as? [[String: Any]])
    #expect(
      !top.isEmpty
        && top.allSatisfy { ($0["self_periods"] as? Int ?? -1) <= ($0["total_periods"] as? Int ?? -1) })
    let figures = try #require(Self.reported(json.stderr))
    #expect(figures.samples == total && figures.periods == totalPeriods)
  }

  @Test func aGuestBootedWithoutProfHzGetsTheBootHint() async throws {
    let qemu = try await OwnQEMU(smp: 2)
    let out = qemu.directory + "/none.folded"
    let run = try SMPTopBinary.run(["profile"] + qemu.target + ["--seconds", "0.3", "--out", out])
    #expect(run.status != 0)
    #expect(run.stderr.contains("prof_hz=N"), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: out), "no empty profile is written")
  }

  @Test func anOutOfRangeRateIsReportedOnTheConsoleAndLeavesProfilingOff() async throws {
    let qemu = try await OwnQEMU(smp: 1, append: "prof_hz=50")
    #expect(
      qemu.process.stdout().contains("prof_hz must be 0 or 100..10000"),
      "\(qemu.process.stdout().suffix(800))")
    let run = try SMPTopBinary.run(["profile"] + qemu.target + ["--seconds", "0.3", "--out", "-"])
    #expect(run.status != 0 && run.stderr.contains("prof_hz=N"), "\(run.stderr)")
  }
}
