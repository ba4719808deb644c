import ELFSymbols
import Foundation
import Inspector
import QEMULaunch
import QMP
import Testing

/// Pausing samples of a guest treated as generic (the bundled guest, attached with only a
/// `System.map` made by `nm`, so without its ABI): each sampled RIP named as readelf's symbol
/// table names it, frame chains inside the kernel's functions, and the VM running afterwards.
@Suite(.serialized) struct PausingSamplerTests {
  /// A `FUNC` symbol of readelf's table.
  struct ELFFunction {
    var address: UInt64
    var size: UInt64
    var name: String
  }

  /// The kernel's sized `FUNC` symbols, from `readelf -sW`.
  static func functions(_ kernel: String) throws -> [ELFFunction] {
    let r = try runProcess(["readelf", "-sW", kernel])
    var out: [ELFFunction] = []
    for line in r.stdout.split(separator: "\n") {
      // Num: Value Size Type Bind Vis Ndx Name
      let f = line.split(separator: " ", omittingEmptySubsequences: true)
      guard f.count >= 8, f[3] == "FUNC", let value = UInt64(f[1], radix: 16), let size = UInt64(f[2]),
        size > 0
      else { continue }
      out.append(ELFFunction(address: value, size: size, name: String(f[7])))
    }
    return out
  }

  /// The kernel's `.text` address range, from `readelf -SW` (assembly such as the interrupt
  /// stubs has no sized symbol, but it is code).
  static func textSection(_ kernel: String) throws -> Range<UInt64> {
    let r = try runProcess(["readelf", "-SW", kernel])
    for line in r.stdout.split(separator: "\n") {
      // [Nr] Name Type Address Off Size ...
      let f = line.replacingOccurrences(of: "[ ", with: "[").split(separator: " ", omittingEmptySubsequences: true)
      guard f.count >= 6, f[1] == ".text", let address = UInt64(f[3], radix: 16), let size = UInt64(f[5], radix: 16)
      else { continue }
      return address..<(address + size)
    }
    throw HarnessError("readelf lists no .text in \(kernel)")
  }

  /// Whether the instruction that ends at `address` is a call: `E8 rel32`, or `FF /2` (through a
  /// register or memory, with an optional REX prefix) of any length up to 7 bytes.
  static func followsCall(_ address: UInt64, in elf: ELFFile) -> Bool {
    guard let b = try? elf.bytes(atVirtualAddress: address - 7, count: 7), b.count == 7 else { return false }
    if b[2] == 0xE8 { return true }
    for op in 0..<6 where b[op] == 0xFF && (b[op + 1] >> 3) & 7 == 2 {
      let modrm = b[op + 1]
      let mod = modrm >> 6
      let rm = modrm & 7
      var length = 2
      if mod != 3 && rm == 4 { length += 1 }
      if mod == 1 { length += 1 } else if mod == 2 || (mod == 0 && rm == 5) { length += 4 }
      if op + length == 7 { return true }
    }
    return false
  }

  @Test func sampledRIPsNameTheFunctionsReadelfFindsAndTheVMKeepsRunning() async throws {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = 2
    config.kernel = kernel
    let watched = try await WatchedQEMU.launch(config)
    defer { watched.shutdown() }
    let (qemu, monitor) = (watched.qemu, watched.monitor)

    // Wait for the guest to run (its own ABI, read from shared RAM without pausing), then
    // attach as to a guest without the ABI: gdbstub, QMP and a System.map made the way Linux
    // makes one (nm -n).
    var abi = TargetOptions()
    abi.kernel = kernel
    abi.memoryFile = qemu.memoryFilePath
    let watcher = try await Target.open(abi)
    let deadline = ContinuousClock.now + .seconds(60)
    while (try? watcher.liveSnapshot())?.guest?.isRunning != true {
      try #require(ContinuousClock.now < deadline, "the guest did not reach RUNNING")
      try await Task.sleep(for: .milliseconds(50))
    }
    await watcher.close()
    let map = qemu.runtimeDirectory + "/System.map"
    let nm = try runProcess(["nm", "-n", kernel])
    try nm.stdout.write(toFile: map, atomically: true, encoding: .utf8)
    var options = TargetOptions()
    options.gdb = qemu.gdbSocketPath
    options.qmp = qemu.qmpSocketPath
    options.systemMap = map
    let target = try await Target.open(options)
    #expect(!target.speaksABI)

    _ = monitor.drainEvents()
    var rounds: [PauseRound] = []
    for i in 0..<30 {
      rounds.append(try await target.samplePaused(round: UInt64(i)))
      try await Task.sleep(for: .milliseconds(20))
    }
    await target.close()
    let samples = rounds.flatMap(\.samples)
    #expect(samples.count == 30 * 2, "every round samples both vCPUs: \(rounds.flatMap(\.problems))")
    #expect(rounds.allSatisfy(\.paused) && rounds.allSatisfy { $0.pauseNanoseconds > 0 })
    #expect(Set(samples.map(\.lcpu)) == [0, 1])

    // Truth from outside: readelf's symbol table. Every RIP inside a sized function must get
    // that function's name (any of them where aliases share the code).
    let functions = try Self.functions(kernel)
    try #require(!functions.isEmpty)
    let name = target.makeFunctionNamer()
    func containing(_ address: UInt64) -> [ELFFunction] {
      functions.filter { address >= $0.address && address - $0.address < $0.size }
    }
    var checked = 0
    for s in samples {
      let truth = containing(s.rip)
      guard !truth.isEmpty else { continue }  // assembly stubs have no size
      checked += 1
      #expect(
        truth.contains { SymbolDisplay.displayName($0.name) == name(s.rip) },
        "RIP 0x\(String(s.rip, radix: 16)): smptop says \(name(s.rip)), readelf \(truth.map(\.name))")
    }
    #expect(
      checked >= samples.count * 3 / 4, "only \(checked) of \(samples.count) RIPs fell in sized functions")

    // Frame chains: busy vCPUs have callers, every return address inside a function, right
    // after a call instruction (the frame pointers the guest keeps).
    let busy = samples.filter { !$0.idle }
    let returns = busy.flatMap(\.frames)
    #expect(!returns.isEmpty, "no frame chain in \(busy.count) busy samples")
    let elf = try ELFFile(path: kernel)
    let text = try Self.textSection(kernel)
    for r in returns {
      #expect(text.contains(r), "return address 0x\(String(r, radix: 16)) is outside .text")
      #expect(Self.followsCall(r, in: elf), "0x\(String(r, radix: 16)) does not follow a call instruction")
    }

    // QEMU's own view: one STOP per round, plus the attach and the detach, and running afterwards.
    let stops = monitor.drainEvents().filter { $0.name == "STOP" }.count
    #expect(
      stops == rounds.count + 2,
      "QMP saw \(stops) STOP events for \(rounds.count) rounds, the attach and the detach")
    #expect(try await monitor.queryStatus().running)
  }
}
