import Model
import ModelFixtures
import Testing

/// Where a lock's waiters wait: the first frame of their backtraces outside the lock and
/// scheduler code, only from backtraces that show the same wait.
@Suite struct WaiterSitesTests {
  static func at(_ function: String, _ file: String, _ line: Int, inlinedInto: [CodeLocation] = [])
    -> CodeLocation
  {
    CodeLocation(
      function: function, file: "/k/" + file, line: line, inlined: !inlinedInto.isEmpty,
      inlinedInto: inlinedInto)
  }

  /// Scheduler, then `Mutex.lock` inlined into the worker at line 212, then the thread entry.
  static func blocked(trusted: Bool = true) -> Backtrace {
    Backtrace(
      origin: .savedContext,
      frames: [
        BacktraceFrame(
          address: 0x10_0100, isReturnAddress: true, location: at("Sched.schedule()", "Sched.swift", 230)),
        BacktraceFrame(
          address: 0x10_0200, isReturnAddress: true, trusted: trusted,
          location: at(
            "Mutex.lock()", "Mutex.swift", 60, inlinedInto: [at("Workload.worker()", "Workload.swift", 212)])),
        BacktraceFrame(
          address: 0x10_0300, isReturnAddress: true, location: at("kthread_main", "Sched.swift", 497)),
      ])
  }

  @Test func theSiteIsTheFirstFrameOutsideTheLockCode() throws {
    let site = try #require(WaiterSites.site(in: Self.blocked()))
    #expect(site.address == 0x10_0200)
    #expect(site.location.function == "Workload.worker()" && site.location.line == 212)
    #expect(!site.location.inlined, "the physical caller, not the inlined lock call")
    // Untrusted frames give no site; nor does a backtrace that is all lock code.
    #expect(WaiterSites.site(in: Self.blocked(trusted: false)) == nil)
    var sched = Self.blocked()
    sched.frames = [sched.frames[0]]
    #expect(WaiterSites.site(in: sched) == nil)
  }

  @Test func waitersGetTheirSiteOnlyFromABacktraceOfTheSameWait() throws {
    var lock = try Make.lock("work.mutex", .mutex, address: 0x500)
    lock.waiters = [
      .init(lcpu: 1, thread: 7, sinceTSC: 100), .init(lcpu: 2, thread: 8, sinceTSC: 100),
      .init(lcpu: 3, thread: 9, sinceTSC: 5_000),
    ]
    lock.waiterCount = 3
    var waiting = try Make.thread(7, "mutex.1", blockedOn: 0x500)
    waiting.backtrace = Self.blocked()
    // Thread 8's record waits on another lock: its stack is not this wait.
    var elsewhere = try Make.thread(8, "mutex.2", blockedOn: 0x600)
    elsewhere.backtrace = Self.blocked()
    // Thread 9 spins; its latest tick is older than its wait.
    var spinning = try Make.thread(9, "spin.3", blockedOn: 0x500)
    var tick = Self.blocked()
    tick.origin = .tick
    tick.tickTSC = 4_000
    spinning.backtrace = tick
    var snap = try Make.snapshot(locks: [lock], threads: [waiting, elsewhere, spinning])
    WaiterSites.add(to: &snap)
    let w = snap.locks[0].waiters
    #expect(w[0].site == 0x10_0200 && w[0].location?.shortFileLine == "Workload.swift:212")
    #expect(w[1].site == nil && w[1].location == nil)
    #expect(w[2].site == nil, "a tick before the wait began")
    // A tick after the wait began places it.
    snap.threads[2].backtrace?.tickTSC = 6_000
    WaiterSites.add(to: &snap)
    #expect(snap.locks[0].waiters[2].location?.line == 212)
    // `smptop locks` prints them under the table; a waiter without a site says so.
    let lines = LockTable(snapshot: snap, rates: nil, top: 0, symbolize: { _ in nil })
      .waiterLines(names: ThreadNames(snap))
    #expect(
      lines == [
        "  work.mutex  mutex.1@cpu1 waits at Workload.swift:212 in Workload.worker()",
        "  work.mutex  mutex.2@cpu2 waits (site not known)",
        "  work.mutex  spin.3@cpu3 waits at Workload.swift:212 in Workload.worker()",
      ])
  }

  @Test func aTimersOwnerIsPlacedWhenItSleepsUntilThatDeadline() throws {
    var sleeper = try Make.thread(4, "sleeper.0")
    sleeper.state = .sleeping
    sleeper.wakeTSC = 9_000
    sleeper.backtrace = Backtrace(
      origin: .savedContext,
      frames: [
        BacktraceFrame(
          address: 0x10_0100, isReturnAddress: true, location: Self.at("Sched.schedule()", "Sched.swift", 240)
        ),
        BacktraceFrame(
          address: 0x10_0400, isReturnAddress: true,
          location: CodeLocation(
            function: "Sched.sleep(until:)", file: nil, line: 0, inlined: true,
            inlinedInto: [Self.at("Workload.pace(_:)", "Workload.swift", 77)])),
      ])
    var snap = try Make.snapshot(locks: [], threads: [sleeper])
    var queue = try Make.timers(lcpu: 0, histogram: [0], lateTotalTSC: 0)
    queue.timers = [
      .init(deadlineTSC: 9_000, ownerThread: 4), .init(deadlineTSC: 12_000, ownerThread: 4),
      .init(deadlineTSC: 9_000, ownerThread: 0),
    ]
    snap.timerQueues = [queue]
    WaiterSites.add(to: &snap)
    let timers = snap.timerQueues[0].timers
    // Compiler-generated code without a line is passed over like the wait code around it.
    #expect(timers[0].ownerSite == 0x10_0400 && timers[0].ownerLocation?.shortFileLine == "Workload.swift:77")
    #expect(timers[1].ownerLocation == nil, "another deadline than the one it sleeps until")
    #expect(timers[2].ownerLocation == nil, "the kernel's own timer")
  }
}
