/// Conclusions drawn from the records alone: wait-for cycles, misuse, workload health.
extension Snapshot {
  /// Wait-for cycles among threads: T waits for lock L (blocked_on, or a waiter slot),
  /// L is held by U, U waits for …, back to T. Each cycle is reported once.
  public var waitCycles: [WaitCycle] {
    // Indices into `locks`, not copies: a snapshot can carry a thousand records.
    var lockByAddress: [UInt64: Int] = [:]
    if threads.contains(where: { $0.blockedOn != 0 }) {
      lockByAddress.reserveCapacity(locks.count)
      for (i, lock) in locks.enumerated() { lockByAddress[lock.address] = i }
    }
    // thread -> the lock it waits for
    var waitsFor: [UInt64: Int] = [:]
    for thread in threads where thread.blockedOn != 0 {
      if let lock = lockByAddress[thread.blockedOn] { waitsFor[thread.id] = lock }
    }
    // A lock's waiter list counts for a thread whose own record does not say otherwise: a
    // spinner runs, a sleeper is blocked on that lock. A live snapshot reads the lock and the
    // thread at different instants, so a thread the lock still lists but whose record says it
    // is ready (a mutex handing itself over), asleep or gone waits for nothing, and two such
    // stale entries would make a cycle that never existed.
    var notWaiting = Set<UInt64>()
    for thread in threads where thread.consistency.isConsistent && thread.blockedOn == 0 {
      switch thread.state {
      case .running, .spinning, .blockedOnLock, .unknown: break
      default: notWaiting.insert(thread.id)
      }
    }
    for (i, lock) in locks.enumerated() {
      for waiter in lock.waiters {
        if let t = waiter.thread, waitsFor[t] == nil, !notWaiting.contains(t) { waitsFor[t] = i }
      }
    }
    var cycles: [WaitCycle] = []
    var reported = Set<UInt64>()
    for start in waitsFor.keys.sorted() where !reported.contains(start) {
      var path: [WaitCycle.Step] = []
      var visited: [UInt64: Int] = [:]
      var current = start
      while let index = waitsFor[current], let holder = locks[index].holderThread, visited[current] == nil {
        let lock = locks[index]
        visited[current] = path.count
        path.append(WaitCycle.Step(thread: current, lock: lock.name, lockAddress: lock.address))
        current = holder
        if path.count > 4096 { break }
      }
      // A thread "waiting" on a lock it holds is a hand-off in progress (a mutex names its
      // next owner before it runs) or a counted recursion, not a deadlock: cycles need two.
      if let loopStart = visited[current], path.count - loopStart >= 2 {
        let cycle = Array(path[loopStart...])
        if cycle.allSatisfy({ !reported.contains($0.thread) }) {
          cycles.append(WaitCycle(steps: cycle))
          cycle.forEach { reported.insert($0.thread) }
        }
      }
    }
    return cycles
  }

  /// Locks with any misuse counted, most misused first.
  public var misusedLocks: [LockRecord] {
    locks.filter { $0.misuseTotal > 0 }.sorted { $0.misuseTotal > $1.misuseTotal }
  }
}
