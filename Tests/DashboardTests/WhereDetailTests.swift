import Dashboard
import Foundation
import Inspector
import Testing

/// The detail view's "where": backtrace frames as `File.swift:LINE in function` with inlined
/// frames marked and untrusted ones flagged, the reason a walk ended, source-line markers in the
/// disassembly, and where each thread of the lcpu is.
@Suite struct WhereDetailTests {
  /// A two-frame backtrace: an inlined Mutex.lock in mutexWorker, then its caller, untrusted.
  static func backtrace() -> Backtrace {
    let lock = CodeLocation(
      function: "Mutex.lock()", file: "/src/Kernel/Mutex.swift", line: 27, inlined: true,
      inlinedInto: [
        CodeLocation(function: "Workload.mutexWorker()", file: "/src/Kernel/Workload.swift", line: 212)
      ])
    let caller = CodeLocation(function: "kthread_main", file: "/src/Kernel/Sched.swift", line: 497)
    return Backtrace(
      origin: .savedContext,
      frames: [
        BacktraceFrame(address: 0x10_be9a, isReturnAddress: false, location: lock),
        BacktraceFrame(
          address: 0x11_2009, isReturnAddress: true, trusted: false,
          note: "the thread ran while its stack was read",
          location: caller),
      ],
      stop: "frame pointer 0x8 outside the stack [0x482000, 0x486000)")
  }

  func text(_ detail: DetailData, snap: Snapshot) -> String {
    var state = DashboardState()
    state.detail = 3
    let data = DashboardData(snapshot: snap, detail: detail, target: Fixtures.target)
    let first = renderFrame(state: state, data: data, symbolize: Fixtures.symbolize, width: 200, height: 80)
    state = reduce(state, .sync(first.layout)).0
    return renderFrame(state: state, data: data, symbolize: Fixtures.symbolize, width: 200, height: 80).grid
      .text
  }

  @Test func backtraceFramesReadAsSourceLinesWithInlinedAndUntrustedMarked() throws {
    let (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    var detail = DetailData(lcpu: 3, rip: 0x10_be9a)
    detail.backtrace = Self.backtrace()
    let screen = text(detail, snap: snap)
    #expect(screen.contains("#0"))
    #expect(screen.contains("Mutex.swift:27 in Mutex.lock() [inlined]"))
    #expect(screen.contains("#1") && screen.contains("Workload.swift:212 in Workload.mutexWorker()"))
    #expect(screen.contains("#2") && screen.contains("Sched.swift:497 in kthread_main (untrusted"))
    #expect(screen.contains("walk ended: frame pointer 0x8 outside the stack"))
    #expect(screen.contains("BACKTRACE (saved context)"))
  }

  @Test func disassemblyShowsASourceLineAboveTheInstructionThatStartsIt() throws {
    let (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    var first = DisassemblyLine(address: 0x10_3038, bytes: [0x55], mnemonic: "push", operands: "rbp")
    first.source = "Mutex.swift:27 in Mutex.lock()"
    let second = DisassemblyLine(address: 0x10_3039, bytes: [0x90], mnemonic: "nop", operands: "")
    var third = DisassemblyLine(address: 0x10_303a, bytes: [0xC3], mnemonic: "ret", operands: "")
    third.source = "Mutex.swift:28 in Mutex.lock()"
    let screen = text(DetailData(lcpu: 3, disassembly: [first, second, third], rip: 0x10_3039), snap: snap)
    let lines = screen.split(separator: "\n").map(String.init)
    let marker = try #require(lines.firstIndex { $0.contains("Mutex.swift:27 in Mutex.lock()") })
    #expect(lines[marker + 1].contains("push"))
    #expect(lines[marker + 2].contains("nop"))
    #expect(lines[marker + 3].contains("Mutex.swift:28"))
    #expect(lines[marker + 4].contains("ret"))
  }

  @Test func eachThreadOfTheLCPUShowsWhereItIs() throws {
    var (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    let backtrace = String(decoding: try JSONEncoder().encode(Self.backtrace()), as: UTF8.self)
    let json = """
      {"id": 7, "name": "mutex.3", "state": "blocked-lock", "lcpu": 3, "blockedOn": 4660, "wakeTSC": 0,
       "cpuTSC": 0, "switches": 1, "ops": 0, "consistency": {"state": "consistent"}, "backtrace": \(backtrace)}
      """
    snap.threads = [try JSONDecoder().decode(ThreadRecord.self, from: Data(json.utf8))]
    let screen = text(DetailData(lcpu: 3), snap: snap)
    #expect(screen.contains("THREADS ON THIS LCPU"))
    #expect(screen.contains("at Mutex.swift:27 in Mutex.lock() [inlined]"))
    #expect(screen.contains("Workload.swift:212 in Workload.mutexWorker()"))
  }

  @Test func tOpensTheThreadsViewFromAnyPaneAndEscapeClosesIt() throws {
    var state = DashboardState()
    state.pane = .locks
    let (opened, reaction) = reduce(state, .toggleThreads)
    #expect(opened.threadsView && opened.pane == .lcpus && opened.detail != nil)
    #expect(reaction.contains(.openDetail), "the sampler starts reading backtraces")
    let closed = reduce(opened, .escape).0
    #expect(!closed.threadsView && closed.detail == nil)
    #expect(!reduce(opened, .toggleThreads).0.threadsView)
    #expect(action(for: .character("T"), in: DashboardState()) == .toggleThreads)
  }

  @Test func theThreadsViewListsEveryThreadWithWhereItIsAndWhatItWaitsOn() throws {
    var (snap, _) = try Fixtures.fourLCPUs(stopped: true)
    let backtrace = String(decoding: try JSONEncoder().encode(Self.backtrace()), as: UTF8.self)
    func thread(_ id: Int, _ name: String, lcpu: Int, state: String, on: Int) throws -> ThreadRecord {
      let json = """
        {"id": \(id), "name": "\(name)", "state": "\(state)", "lcpu": \(lcpu), "blockedOn": \(on), "wakeTSC": 0,
         "cpuTSC": 0, "switches": 1, "ops": 0, "consistency": {"state": "consistent"}, "backtrace": \(backtrace)}
        """
      return try JSONDecoder().decode(ThreadRecord.self, from: Data(json.utf8))
    }
    snap.threads = [
      try thread(7, "mutex.1", lcpu: 1, state: "blocked-lock", on: 0x4321),
      try thread(9, "sleeper.2", lcpu: 2, state: "sleeping", on: 0),
    ]
    var state = DashboardState()
    state = reduce(state, .toggleThreads).0
    let data = DashboardData(snapshot: snap, target: Fixtures.target)
    let first = renderFrame(state: state, data: data, symbolize: Fixtures.symbolize, width: 120, height: 60)
    state = reduce(state, .sync(first.layout)).0
    let screen = renderFrame(state: state, data: data, symbolize: Fixtures.symbolize, width: 120, height: 60)
      .grid.text
    #expect(screen.contains("THREADS"))
    #expect(screen.contains("LCPU 1") && screen.contains("LCPU 2"))
    #expect(screen.contains("mutex.1") && screen.contains("sleeper.2"))
    #expect(screen.contains("on 0x4321") || screen.contains("on 0000000000004321") || screen.contains("4321"))
    #expect(screen.contains("at Mutex.swift:27 in Mutex.lock() [inlined]"))
  }
}
