import ELFSymbols
import Foundation
import Inspector
import QEMULaunch
import Testing

/// Backtraces of the real guest in real QEMU: every running lcpu's as gdb (DWARF CFI) unwinds
/// it at the same stop, and blocked threads' from their saved context, read live.
@Suite(.serialized) struct WhereBacktraceTests {
  /// One frame of gdb's `bt`: the address it printed (physical frames not at a line start),
  /// the function and `File.swift:LINE`.
  struct GDBFrame: CustomStringConvertible {
    var address: UInt64?
    var function: String
    var place: String?
    var description: String {
      "\(address.map { "0x" + String($0, radix: 16) } ?? "-") \(function) \(place ?? "")"
    }
  }

  /// Runs gdb on the kernel ELF against the stub; `disconnect` leaves the VM paused.
  static func gdb(_ elf: String, _ socket: String, _ commands: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
    process.arguments =
      ["-nx", "-batch", elf, "-ex", "set pagination off", "-ex", "target remote \(socket)"]
      + commands.flatMap { ["-ex", $0] } + ["-ex", "disconnect"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }

  /// gdb's `thread apply all bt` per vCPU index (gdb thread `1.N` is vCPU N-1).
  static func parseBacktraces(_ output: String) -> [Int: [GDBFrame]] {
    var result: [Int: [GDBFrame]] = [:]
    var current: Int?
    for raw in output.split(separator: "\n") {
      let line = String(raw)
      if line.hasPrefix("Thread "), let range = line.range(of: "(Thread 1.") {
        current = Int(line[range.upperBound...].prefix { $0.isNumber }).map { $0 - 1 }
        if let c = current { result[c] = [] }
        continue
      }
      guard let vcpu = current, line.hasPrefix("#") else { continue }
      var rest = Substring(line.drop { $0 != " " }).drop { $0 == " " }
      var address: UInt64?
      if rest.hasPrefix("0x"), let space = rest.firstIndex(of: " ") {
        address = UInt64(rest[rest.index(rest.startIndex, offsetBy: 2)..<space], radix: 16)
        rest = rest[space...].drop { $0 == " " }
        if rest.hasPrefix("in ") { rest = rest.dropFirst(3) }
      }
      let function = String(rest.prefix { $0 != " " })
      var place: String?
      if let at = rest.range(of: " at ", options: .backwards) {
        let path = rest[at.upperBound...]
        place = path.split(separator: "/").last.map(String.init)
      }
      result[vcpu, default: []].append(GDBFrame(address: address, function: function, place: place))
    }
    return result
  }

  /// gdb's frames grouped into physical frames: consecutive frames sharing one pc are one
  /// physical frame (its inlined chain, innermost first; the last is the physical function).
  /// Needs `-frame-info location-and-address`, which prints the pc on every frame.
  static func physicalFrames(_ frames: [GDBFrame]) -> [[GDBFrame]] {
    var groups: [[GDBFrame]] = []
    for f in frames {
      if let last = groups.last?.last, last.address != nil, last.address == f.address {
        groups[groups.count - 1].append(f)
      } else {
        groups.append([f])
      }
    }
    return groups
  }

  /// The inlined chain binutils reads at one address, in the shape smptop's locator gives it
  /// (file names without directories, line 0 for none).
  static func sameChain(_ mine: [SourceFrame], _ expected: [WhereLineTests.Line]) -> Bool {
    mine.count == expected.count
      && zip(mine, expected).allSatisfy { m, e in
        m.file.map { URL(fileURLWithPath: $0).lastPathComponent } == e.file
          && (m.hasLine ? m.line : 0) == e.line
          // The compiler's trap frames: llvm-symbolizer names them, binutils repeats the
          // physical function's name (WhereLineTests).
          && (m.function == e.function || m.function.hasPrefix("Swift runtime failure: "))
      }
  }

  @Test func eachRunningLCPUsBacktraceEqualsGDBsBtAtTheSameStop() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let socket = try #require(guest.qemu.gdbSocketPath)
      let qmp = try #require(guest.target.qmp, "the harness holds QMP")
      var compared = 0
      var framesCompared = 0
      var gdbChainsAgreeing = 0
      var log: [String] = []
      let locator = try SourceLocator(elfPath: guest.kernel)
      for attempt in 0..<16 where compared < 6 {
        // One paused VM for both readers: QMP stops it, smptop takes its stopped snapshot over
        // its own stub connection and lets go without detaching (QEMU keeps it paused), gdb
        // reads the same stop, and QMP lets it run again.
        try await qmp.stop()
        var options = TargetOptions(guest.qemu)
        options.qmp = nil
        let target = try await Target.open(options)
        try await target.pause()
        var snap: Snapshot
        do {
          snap = try await target.stoppedSnapshot()
          await target.addBacktraces(to: &snap, locate: false)
          await target.close()
        } catch {
          await target.close()
          try await qmp.cont()
          throw error
        }
        let output = try Self.gdb(
          guest.kernel, socket, ["thread apply all bt -frame-info location-and-address"])
        try await qmp.cont()
        let theirs = Self.parseBacktraces(output)
        for vcpu in snap.vcpus ?? [] where !vcpu.halted {
          let bt = try #require(vcpu.backtrace, "vCPU \(vcpu.index) has a backtrace")
          let gdbFrames = try #require(theirs[vcpu.index], "gdb printed vCPU \(vcpu.index):\n\(output)")
          let groups = Self.physicalFrames(gdbFrames)
          let ours = bt.frames.map { locator.frames(at: $0.lookupAddress) }
          log.append(
            "stop \(attempt) vCPU \(vcpu.index): gdb \(groups.map { $0.map(\.description) })\n  smptop \(zip(bt.frames, ours).map { "0x" + String($0.address, radix: 16) + " " + $1.map(\.function).joined(separator: " < ") })"
          )
          let context = log.last ?? ""
          // gdb unwinds with DWARF CFI; the assembly (interrupt entry, kthread_start, the AP
          // trampoline) has none, so past it gdb guesses (`0x37f in ??`) or stops, where
          // smptop's frame-pointer walk goes on. Compared: every physical frame up to gdb's
          // first guess or assembly frame (included).
          var known = groups.firstIndex { $0.contains { $0.function == "??" } } ?? groups.count
          // (`place` is `file:line`.)
          let inAssembly = { (f: GDBFrame) in f.place?.split(separator: ":").first?.hasSuffix(".S") == true }
          if let asm = groups.firstIndex(where: { $0.contains(where: inAssembly) }) {
            known = min(known, asm + 1)
          }
          #expect(known >= 1, "gdb named the innermost frame\n\(context)")
          if ours.count < known {
            // Only where smptop reached the outermost frame (a zero frame pointer).
            #expect(bt.stop == nil, "smptop ended early (\(bt.stop ?? "")) where gdb went on\n\(context)")
          }
          let truth = try WhereLineTests.addr2line(guest.kernel, bt.frames.prefix(known).map(\.lookupAddress))
          for i in 0..<min(known, ours.count) {
            let group = groups[i]
            // The physical frame: the same pc (RIP, then return addresses) and function.
            #expect(
              bt.frames[i].address == group[0].address,
              "vCPU \(vcpu.index) physical frame #\(i) pc\n\(context)")
            #expect(
              ours[i].last?.function == group.last?.function,
              "vCPU \(vcpu.index) physical frame #\(i): smptop \(ours[i].last?.function ?? "-") gdb \(group.last?.function ?? "-")\n\(context)"
            )
            // Its inlined chain, function by function with lines, as binutils reads the same
            // address. gdb's own chain can differ at the first instruction of an inlined range
            // (it shows the inlined frame where the line tables do not, or hides it at a
            // breakpoint-like stop), so it is counted, not required.
            let lookup = bt.frames[i].lookupAddress
            let expected = try #require(truth[lookup], "addr2line answered for \(lookup)")
            if !expected.allSatisfy({ $0.function == "??" }) {
              #expect(
                Self.sameChain(ours[i], expected),
                "vCPU \(vcpu.index) physical frame #\(i) chain: smptop \(ours[i]) addr2line \(expected)\n\(context)"
              )
            }
            if group.map(\.function) == ours[i].map(\.function) { gdbChainsAgreeing += 1 }
            framesCompared += 1
          }
          compared += 1
        }
        try await Task.sleep(for: .milliseconds(30))
      }
      #expect(compared >= 2, "compared \(compared) running vCPUs:\n\(log.joined(separator: "\n"))")
      #expect(framesCompared >= 3 * compared, "\(framesCompared) physical frames in \(compared) backtraces")
      // Most inline chains agree with gdb's too; a disagreement everywhere would mean the
      // grouping is wrong.
      #expect(
        gdbChainsAgreeing * 2 >= framesCompared,
        "gdb's inline chains agreed in \(gdbChainsAgreeing) of \(framesCompared) physical frames\n\(log.joined(separator: "\n"))"
      )
      print(
        "WhereBacktraceTests: \(compared) vCPUs, \(framesCompared) physical frames, gdb chains agreeing \(gdbChainsAgreeing)"
      )
    }
  }

  @Test func blockedThreadsShowTheLockCallAndTheirCallersLineLive() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let path = guest.kernel
      var checked = 0
      var kinds = Set<String>()
      for _ in 0..<60 where checked < 6 || kinds.count < 2 {
        var snap = try guest.target.liveSnapshot()
        await guest.target.addBacktraces(to: &snap)
        for t in snap.threads where t.state == .blockedOnLock || t.state == .blockedOnSemaphore {
          let bt = try #require(t.backtrace, "thread \(t.id) \(t.name) has a backtrace")
          // Blocked but still switching out (its context is not saved yet): not this test's case.
          guard t.savedRSP != 0 else { continue }
          // Switched in while it was read: the walker re-read it and walked from its tick.
          guard bt.origin == .savedContext else { continue }
          guard bt.frames.allSatisfy({ $0.trusted }) else { continue }  // it ran while being read
          let chain = bt.frames.flatMap { f in (f.location?.chain ?? []).map { (f, $0) } }
          let wanted = t.state == .blockedOnLock ? "Mutex.lock" : "Semaphore.down"
          let lockCall = try #require(
            chain.lastIndex { $0.1.function.contains(wanted) },
            "thread \(t.name) (\(t.state)) blocks in \(wanted): \(chain.map { $0.1.text })")
          // The caller: the next source frame, with a Swift file and line, equal to addr2line's.
          let (frame, caller) = try #require(
            chain.dropFirst(lockCall + 1).first, "a caller after \(wanted) in \(chain.map { $0.1.text })")
          #expect(caller.file?.hasSuffix(".swift") == true && caller.line > 0, "\(caller.text)")
          if !caller.inlined || chain[lockCall].0 != frame {
            let truth = try WhereLineTests.addr2line(path, [frame.lookupAddress])[frame.lookupAddress] ?? []
            let places = truth.map { "\($0.file ?? "??"):\($0.line)" }
            #expect(places.contains(caller.shortFileLine ?? "-"), "\(caller.text) vs addr2line \(truth)")
          }
          // Every frame lies within the thread's own stack walk: addresses in the kernel's code.
          if let guestInfo = snap.guest {
            #expect(
              bt.frames.allSatisfy { $0.address >= guestInfo.textStart && $0.address < guestInfo.textEnd })
          }
          checked += 1
          kinds.insert(wanted)
        }
        try await Task.sleep(for: .milliseconds(50))
      }
      #expect(checked >= 6, "checked \(checked) blocked threads")
      #expect(kinds.contains("Mutex.lock"), "saw a thread blocked on a mutex")
    }
  }
}
