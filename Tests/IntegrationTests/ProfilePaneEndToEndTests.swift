import Foundation
import Inspector
import QEMULaunch
import QMP
import Testing

/// The profile pane (key 7) of the real smptop binary in tmux, on the real guest booted with
/// `prof_hz=1000`: live samples of both lcpus without stopping the VM, by function and by source
/// line, and the icicle view.
@Suite(.serialized) struct ProfilePaneEndToEndTests {
  @Test func theProfilePaneShowsLiveSamplesWithoutStoppingTheVM() async throws {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 2
    config.kernel = kernel
    config.append = "prof_hz=1000"
    let watched = try await WatchedQEMU.launch(config)
    defer { watched.shutdown() }
    let (qemu, monitor) = (watched.qemu, watched.monitor)
    let smptop = try DashboardEndToEndTests.smptopBinary()
    let command =
      "LANG=C.UTF-8 \(smptop) attach --gdb \(qemu.gdbSocketPath ?? "") --qmp \(qemu.qmpSocketPath ?? "")"
      + " --kernel \(kernel) --memory-file \(qemu.memoryFilePath ?? "") --interval 0.5; echo EXIT=$?; sleep 60"
    let tmux = try DashboardEndToEndTests.Tmux(command: command, width: 80, height: 24)
    _ = try await tmux.waitFor("the first snapshot") { $0.contains("live shared RAM") }
    try tmux.keys("7")

    // The table: both lcpus (QEMU says how many vCPUs there are), samples counted, rows.
    let count = try await monitor.queryCPUsFast().count
    #expect(count == 2)
    let table = try await tmux.waitFor("profile rows") { screen in
      screen.contains("SELF%") && Self.rows(screen).count >= 3 && screen.contains(" 1: ")
    }
    #expect(table.contains("all lcpus  last 5s  by function  busy "), "\(table)")
    #expect(table.contains(" 0: ") && table.contains(" 1: ") && !table.contains(" 2: "))
    #expect(table.contains("  1000 Hz") && table.contains(" samples"))
    let rows = Self.rows(table)
    // Self shares are sorted, biggest first, and none exceeds its total share.
    #expect(zip(rows, rows.dropFirst()).allSatisfy { $0.selfShare >= $1.selfShare }, "\(table)")
    #expect(rows.allSatisfy { $0.selfShare <= $0.totalShare })
    // Sampling never stops the VM: QEMU says it runs, with the pane live.
    #expect(try await monitor.queryStatus().running)

    // By source line: the files named are the guest's own sources.
    try tmux.keys("l")
    let lines = try await tmux.waitFor("rows by line") { $0.contains("LINE") && $0.contains(".swift:") }
    // Every `File.swift:LINE` token of the table's rows.
    let files = Set(
      lines.split(separator: "\n").filter { Self.row(String($0)) != nil }.flatMap { line in
        line.split(separator: " ").compactMap { word -> String? in
          guard let colon = word.firstIndex(of: ":"), word[..<colon].hasSuffix(".swift") else { return nil }
          return String(word[..<colon])
        }
      })
    try #require(!files.isEmpty, "\(lines)")
    let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Sources/Kernel").standardized.path
    for file in files {
      #expect(FileManager.default.fileExists(atPath: sources + "/" + file), "\(file) is a guest source file")
    }

    // lcpu 1 alone, then the icicle: the root covers every period.
    try tmux.keys("l", "Right", "Right", "f")
    let icicle = try await tmux.waitFor("the icicle of lcpu 1") {
      $0.contains("lcpu 1  last 5s") && $0.contains("lcpu 1 100.0%")
    }
    #expect(!icicle.contains("SELF%"))
    #expect(try await monitor.queryStatus().running)

    try tmux.keys("q")
    let end = try await tmux.waitFor("smptop to exit") { $0.contains("EXIT=") }
    #expect(end.contains("EXIT=0"))
  }

  /// A row of the profile table: self % and total %.
  struct Row {
    var selfShare: Double
    var totalShare: Double
  }

  /// A table row: a line starting with two percentages and a name.
  static func row(_ line: String) -> Row? {
    let f = line.split(separator: " ", omittingEmptySubsequences: true)
    guard f.count >= 3, let s = Double(f[0]), let t = Double(f[1]) else { return nil }
    return Row(selfShare: s, totalShare: t)
  }

  /// The table rows on a screen.
  static func rows(_ screen: String) -> [Row] {
    screen.split(separator: "\n").compactMap { row(String($0)) }
  }
}
