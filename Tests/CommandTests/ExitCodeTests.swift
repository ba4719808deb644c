import Foundation
import QEMULaunch
import Testing

/// Each exit code the README documents, with its one-line message, from the built binary.
@Suite(.serialized) struct ExitCodeTests {
  /// Runs smptop and checks the exit code and that stderr is one `smptop: …` line containing `words`.
  func expectFailure(
    _ arguments: [String], code: Int32, saying words: String, environment: [String: String]? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let result = try SMPTopBinary.run(arguments, environment: environment)
    #expect(result.status == code, "\(arguments): \(result.stderr)", sourceLocation: sourceLocation)
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1, "not one line: \(result.stderr)", sourceLocation: sourceLocation)
    #expect(lines.first?.hasPrefix("smptop: ") == true, "\(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stderr.contains(words), "\(result.stderr)", sourceLocation: sourceLocation)
  }

  /// The README's exit-code line, so the table and the binary cannot drift apart.
  @Test func theREADMEListsTheCodesTestedHere() throws {
    let readme = try String(contentsOfFile: SMPTopBinary.repositoryRoot + "/README.md", encoding: .utf8)
    for entry in [
      "0 ok", "2 usage", "3 QEMU missing", "4 cannot connect", "5 inspection ABI", "6 symbols",
      "7 guest build",
      "8 guest memory", "9 the guest panicked",
    ] {
      #expect(readme.contains(entry), "README lacks \"\(entry)\"")
    }
  }

  @Test func usageErrorsExit2() throws {
    try expectFailure(["run", "--smp", "0"], code: 2, saying: "--smp must be 1...64")
    try expectFailure(["run", "--no-such-option"], code: 2, saying: "--no-such-option")
    try expectFailure(["snapshot"], code: 2, saying: "--memory-file")
    try expectFailure(["no-such-command"], code: 2, saying: "no-such-command")
  }

  @Test func helpExits0() throws {
    let result = try SMPTopBinary.run(["run", "--help"])
    #expect(result.status == 0)
    #expect(result.stdout.contains("--headless"))
  }

  @Test func missingQEMUExits3() throws {
    let kernel = try GuestKernel.build()
    // A PATH without QEMU (smptop itself is run by its full path).
    try expectFailure(
      ["run", "--headless", "--kernel", kernel], code: 3, saying: "qemu-system-x86_64 not found",
      environment: ["PATH": "/nonexistent", "HOME": NSHomeDirectory()])
  }

  @Test func unreachableGdbstubExits4() throws {
    try expectFailure(
      ["snapshot", "--gdb", "/nonexistent/gdb.sock"], code: 4, saying: "cannot attach to the gdbstub")
  }

  @Test func memoryWithoutTheABIExits5() throws {
    // A file of zeros where guest RAM should be: the ELF has the ABI root, the memory does not.
    let kernel = try GuestKernel.build()
    let ram = NSTemporaryDirectory() + "smptop-zero-ram-\(getpid())"
    #expect(FileManager.default.createFile(atPath: ram, contents: Data(count: 32 << 20)))
    defer { unlink(ram) }
    let result = try SMPTopBinary.run(["snapshot", "--memory-file", ram, "--kernel", kernel])
    #expect(result.status == 5, "\(result.stderr)")
    #expect(result.stderr.split(separator: "\n").count == 1)
  }

  @Test func unreadableSymbolsExit6() throws {
    try expectFailure(
      ["snapshot", "--memory-file", "/dev/null", "--kernel", "/nonexistent/kernel.elf"], code: 6,
      saying: "/nonexistent/kernel.elf")
  }

  @Test func failedGuestBuildExits7() throws {
    // A source tree whose guest cannot build: the toolset is there, the package is not.
    let tree = NSTemporaryDirectory() + "smptop-broken-tree-\(getpid())"
    try FileManager.default.createDirectory(atPath: tree + "/Resources", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tree) }
    try Data("{}".utf8).write(to: URL(fileURLWithPath: tree + "/Resources/toolset.json"))
    var environment = ProcessInfo.processInfo.environment
    environment["SMPTOP_SOURCE_ROOT"] = tree
    environment["SMPTOP_KERNEL"] = nil
    try expectFailure(["kernel"], code: 7, saying: "guest build failed", environment: environment)
  }

  @Test func unreadableMemoryExits8() throws {
    let kernel = try GuestKernel.build()
    try expectFailure(
      ["snapshot", "--memory-file", "/dev/null", "--kernel", kernel], code: 8, saying: "memory")
  }

  @Test func guestPanicExits9() throws {
    let kernel = try GuestKernel.build()
    let result = try SMPTopBinary.run(
      [
        "run", "--headless", "--after", "2", "--smp", "2", "--scenario", "panic", "--json", "--kernel",
        kernel,
      ])
    #expect(result.status == 9, "\(result.stderr)")
    #expect(result.stderr == "smptop: the guest panicked (see the panic records above)\n")
    let snap = try #require(try JSON.parse(result.stdout) as? [String: Any])
    let panics = (snap["lcpus"] as? [[String: Any]] ?? []).compactMap { $0["panic"] as? [String: Any] }
    #expect(panics.count == 1)
    #expect((panics.first?["backtrace"] as? [Any])?.isEmpty == false)
  }
}
