import Foundation
import QEMULaunch
import Testing

/// `smptop bench --json` and `smptop bench --observer --json` report every field (values are
/// checked for shape and order, never for speed).
@Suite(.serialized) struct BenchCommandTests {
  /// Checks one statistics object: its four keys, all positive and ordered.
  private func expectStats(_ value: Any?, _ name: String, positive: Bool = true) throws {
    let stats = try #require(value as? [String: Double], "\(name) missing")
    #expect(Set(stats.keys) == ["median", "p90", "p99", "min"], "\(name)")
    let median = stats["median"] ?? -1
    let p90 = stats["p90"] ?? -1
    let p99 = stats["p99"] ?? -1
    let minimum = stats["min"] ?? -1
    #expect(minimum <= median && median <= p90 && p90 <= p99, "\(name): \(stats)")
    if positive { #expect(minimum > 0, "\(name): \(stats)") }
  }

  @Test func benchJSONReportsEveryPathFloorAndChoice() throws {
    let result = try SMPTopBinary.run(
      ["bench", "--json", "--rounds", "5", "--smp", "2"], timeout: .seconds(400))
    #expect(result.status == 0, "\(result.stderr)")
    let report = try #require(try JSON.parse(result.stdout) as? [String: Any])
    let rows = try #require(report["rows"] as? [[String: Any]])
    let row = try #require(rows.first)
    #expect(rows.count == 1)
    #expect(row["smp"] as? Int == 2)
    #expect((row["bytesPerSnapshot"] as? Int ?? 0) > 0)
    #expect((row["locks"] as? Int ?? 0) > 0)
    let busy = try #require(row["busyLCPUs"] as? Int)
    #expect((0...2).contains(busy))
    for key in [
      "liveMicroseconds", "liveFloorMicroseconds", "liveReadMicroseconds", "pausedRegistersOnlyMicroseconds",
      "pausedGDBMemoryMicroseconds", "registersFloorMicroseconds", "gdbMicroseconds",
      "stoppedMicroseconds", "pauseMicroseconds", "stoppedPausedMicroseconds",
    ] {
      try expectStats(row[key], key)
    }
    for path in ["stoppedRegistersOnly", "stoppedGDBMemory"] {
      let stopped = try #require(row[path] as? [String: Any], "\(path) missing")
      #expect(Set(stopped.keys) == ["total", "pause", "stop", "model", "registers"], "\(path)")
      for part in ["total", "pause", "stop", "model", "registers"] {
        try expectStats(stopped[part], "\(path).\(part)")
      }
    }
    for ratio in ["liveFloorRatio", "registersFloorRatio", "gdbRatioRegistersOnly", "gdbRatioGDBMemory"] {
      #expect((row[ratio] as? Double ?? 0) > 0, "\(ratio)")
    }
    let choices = try #require(row["registerChoices"] as? [[String: Any]])
    #expect(choices.count == 8)
    for choice in choices {
      let name = try #require(choice["name"] as? String)
      #expect((choice["median"] as? Double ?? 0) > 0, "\(name)")
      #expect((choice["p90"] as? Double ?? 0) >= (choice["median"] as? Double ?? 0), "\(name)")
      let packets = try #require(choice["packets"] as? Int)
      #expect(packets > 0 || name.hasPrefix("0 busy"), "\(name)")
    }
    // The choices name what they sent: two vCPUs, so four packets for Hg+g each.
    #expect(choices.first?["packets"] as? Int == 4)
  }

  @Test func observerJSONReportsASlowdownPerModeAndRate() throws {
    // `--kernel` boots the ELF given (here the bundled guest, built first).
    let elf = try GuestKernel.build()
    let result = try SMPTopBinary.run(
      [
        "bench", "--observer", "--json", "--smp", "2", "--windows", "1", "--seconds", "0.5", "--icount", "3",
        "--append", "prof_hz=100", "--kernel", elf,
      ],
      timeout: .seconds(300))
    #expect(result.status == 0, "\(result.stderr)")
    let report = try #require(try JSON.parse(result.stdout) as? [String: Any])
    #expect(report["smp"] as? Int == 2)
    #expect(report["icount"] as? Int == 3, "the windows were measured in guest time")
    #expect(report["windows"] as? Int == 1)
    let noise = try #require(report["baselineNoise"] as? [String: Any])
    #expect((noise["samples"] as? [Double])?.count == 1)
    let rows = try #require(report["rows"] as? [[String: Any]])
    let modes = rows.compactMap { row -> String? in
      guard let mode = row["mode"] as? String, let rate = row["rateHz"] as? Double else { return nil }
      return "\(mode)@\(rate)"
    }
    #expect(modes == ["none@0.0", "live@10.0", "live@100.0", "stopped@1.0", "stopped@10.0", "dashboard@1.0"])
    for row in rows {
      let mode = row["mode"] as? String ?? "?"
      let ops = try #require(row["opsPerSecond"] as? [Double], "\(mode)")
      #expect(ops.count == 1 && ops.allSatisfy { $0 > 0 }, "\(mode): the guest's workload made progress")
      let slowdown = try #require(row["slowdown"] as? [String: Any], "\(mode)")
      #expect(Set(slowdown.keys) == ["median", "min", "max", "samples"], "\(mode)")
      #expect((slowdown["samples"] as? [Double])?.count == 1, "\(mode)")
      #expect(slowdown["median"] is Double, "\(mode)")
      let achieved = try #require(row["achievedHz"] as? Double)
      if mode == "none" {
        #expect(achieved == 0)
        #expect(slowdown["median"] as? Double == 0)
      } else {
        #expect(achieved > 0, "\(mode) took samples")
      }
      let pause = try #require(row["pauseMedianMicroseconds"] as? Double)
      #expect(mode == "stopped" ? pause > 0 : pause == 0, "\(mode): pause \(pause)")
    }
  }

  @Test func liveBenchReadsARunningGuestsRAMFileWithoutBooting() async throws {
    let elf = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 3
    config.kernel = elf
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    let memoryFile = try #require(qemu.memoryFilePath)
    // The guest publishes its ABI during boot: until then the command says so and fails.
    var result = try SMPTopBinary.run(
      ["bench", "--memory-file", memoryFile, "--kernel", elf, "--rounds", "20", "--json"],
      timeout: .seconds(60))
    let deadline = ContinuousClock.now + .seconds(60)
    while result.status != 0 && ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(300))
      result = try SMPTopBinary.run(
        ["bench", "--memory-file", memoryFile, "--kernel", elf, "--rounds", "20", "--json"],
        timeout: .seconds(60))
    }
    #expect(result.status == 0, "\(result.stderr)")
    let report = try #require(try JSON.parse(result.stdout) as? [String: Any])
    #expect(report["lcpus"] as? Int == 3, "the guest QEMU runs, not one bench booted")
    #expect((report["locks"] as? Int ?? 0) > 0)
    #expect((report["bytesPerSnapshot"] as? Int ?? 0) > 0)
    for key in ["liveMicroseconds", "liveFloorMicroseconds", "liveReadMicroseconds"] {
      try expectStats(report[key], key)
    }
    let live = try #require((report["liveMicroseconds"] as? [String: Double])?["median"])
    let read = try #require((report["liveReadMicroseconds"] as? [String: Double])?["median"])
    #expect(read <= live, "the read is part of the snapshot")
    #expect((report["liveReadFloorRatio"] as? Double ?? 0) > 0)
  }

  @Test func liveBenchNeedsTheKernelForItsMemoryFile() throws {
    let result = try SMPTopBinary.run(["bench", "--memory-file", "/dev/shm/none"], timeout: .seconds(30))
    #expect(result.status != 0)
    #expect(result.stderr.contains("--memory-file needs --kernel"), "\(result.stderr)")
  }

  @Test func observerModesMeasureOnlyTheNamedModesAndTheBaseline() throws {
    let elf = try GuestKernel.build()
    let result = try SMPTopBinary.run(
      [
        "bench", "--observer", "--json", "--smp", "2", "--windows", "2", "--seconds", "0.5", "--icount", "3",
        "--modes", "live", "--kernel", elf,
      ],
      timeout: .seconds(300))
    #expect(result.status == 0, "\(result.stderr)")
    let report = try #require(try JSON.parse(result.stdout) as? [String: Any])
    let rows = try #require(report["rows"] as? [[String: Any]])
    let modes = rows.compactMap { row -> String? in
      guard let mode = row["mode"] as? String, let rate = row["rateHz"] as? Double else { return nil }
      return "\(mode)@\(rate)"
    }
    #expect(modes == ["none@0.0", "live@10.0", "live@100.0"], "the baseline stays, the others are left out")
    for row in rows {
      let ops = try #require(row["opsPerSecond"] as? [Double])
      #expect(ops.count == 2 && ops.allSatisfy { $0 > 0 }, "\(row["mode"] ?? "?")")
    }
  }

  @Test func observerModesRefuseUnknownNamesAndTraceWithoutTrace() throws {
    let unknown = try SMPTopBinary.run(
      ["bench", "--observer", "--modes", "none", "sideways"], timeout: .seconds(30))
    #expect(unknown.status != 0)
    #expect(unknown.stderr.contains("sideways"), "\(unknown.stderr)")
    let trace = try SMPTopBinary.run(["bench", "--observer", "--modes", "trace"], timeout: .seconds(30))
    #expect(trace.status != 0)
    #expect(trace.stderr.contains("--trace"), "\(trace.stderr)")
  }

  @Test func benchRefusesAKernelThatIsNotThere() throws {
    let missing = "/nonexistent/smptop-bench-kernel"
    let result = try SMPTopBinary.run(["bench", "--observer", "--kernel", missing], timeout: .seconds(30))
    #expect(result.status != 0)
    #expect(result.stderr.contains(missing), "\(result.stderr)")
  }
}
