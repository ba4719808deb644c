/// Where a lock's waiters wait, from their backtraces: the first source frame outside the
/// guest's lock and scheduler code, i.e. the line in the caller that asked for the lock.
///
/// The guest's waiter entries name a thread and an lcpu but no site; the waiting thread's
/// backtrace has it. A waiter in thread context is found through its thread's backtrace; a
/// waiter without a thread (interrupt or idle context spinning on a lock) through its vCPU's
/// backtrace when the snapshot was taken at a stop. Frames innermost first: the scheduler's
/// switch, the lock's own functions (inlined or not) and the C helpers they use are passed over;
/// the first frame left is the site. Nothing is guessed: without a backtrace with such a frame
/// the waiter has no site.
public enum WaiterSites {
  /// Source files of the guest's lock, wait and scheduler code. A frame in one of them (or in
  /// a C header, or without a file: assembly) is part of waiting, not the waiter's own code.
  public static let lockCodeFiles: Set<String> = [
    "LockCore.swift", "SpinLock.swift", "TicketLock.swift", "RWLock.swift", "Mutex.swift", "Semaphore.swift",
    "BuddyLock.swift", "Sched.swift", "sync_support.h", "KernelSupport.h", "switch.S", "traps.S",
  ]

  /// Whether `location` is part of the lock and scheduler machinery rather than its caller.
  /// A compiler-generated frame (a thunk, line 0) has no source line and is passed over too.
  public static func isLockCode(_ location: CodeLocation) -> Bool {
    guard let file = location.file, file != "<compiler-generated>" else { return true }
    let name = file.split(separator: "/").last.map(String.init) ?? file
    return lockCodeFiles.contains(name) || name.hasSuffix(".h")
  }

  /// The site of a waiter with backtrace `bt`: the physical frame's address and the first
  /// source frame (inlined or not) outside the lock code. Nil when every frame is lock code or
  /// unlocated, or when a frame up to the site is untrusted (its stack changed while read).
  public static func site(in bt: Backtrace) -> (address: UInt64, location: CodeLocation)? {
    for frame in bt.frames {
      guard frame.trusted, let location = frame.location else { return nil }
      if let source = location.chain.first(where: { !isLockCode($0) }) { return (frame.address, source) }
    }
    return nil
  }

  /// Whether thread `t`'s backtrace shows it waiting for lock `lock` as waiter `w` does: the
  /// thread's record waits on that lock, and a walk from a timer tick is no older than the wait.
  static func showsWait(_ t: ThreadRecord, _ bt: Backtrace, lock: UInt64, _ w: LockRecord.Waiter) -> Bool {
    guard t.blockedOn == lock else { return false }
    if bt.origin == .tick { return (bt.tickTSC ?? 0) >= w.sinceTSC }
    return true
  }

  /// Fills `site` and `location` of every waiter of every lock in `snapshot` from the threads'
  /// (and, at a stop, the vCPUs') backtraces, and `ownerSite`/`ownerLocation` of every pending
  /// timer whose owner thread waits for it; those without such a frame keep none.
  ///
  /// A thread's backtrace counts only when its record waits on the same lock (the waiter list
  /// and the thread table are separate records, read at slightly different moments).
  public static func add(to snapshot: inout Snapshot) {
    var threads: [UInt64: ThreadRecord] = [:]
    for t in snapshot.threads where t.backtrace != nil { threads[t.id] = t }
    var vcpuBacktraces: [UInt32: Backtrace] = [:]
    for v in snapshot.vcpus ?? [] {
      guard let bt = v.backtrace else { continue }
      // A waiter names its lcpu by index; the vCPU is the lcpu's APIC id.
      if let lcpu = snapshot.lcpus.first(where: { Int($0.apicID) == v.index }) {
        vcpuBacktraces[lcpu.index] = bt
      }
    }
    guard !threads.isEmpty || !vcpuBacktraces.isEmpty else { return }
    // A timer's owner waits for it when its record wakes at that deadline (a sleep, or a
    // semaphore wait with a timeout) and its stack is the switched-out wait.
    for i in snapshot.timerQueues.indices {
      for j in snapshot.timerQueues[i].timers.indices {
        let timer = snapshot.timerQueues[i].timers[j]
        guard timer.ownerThread != 0, let t = threads[timer.ownerThread], t.wakeTSC == timer.deadlineTSC,
          let bt = t.backtrace, bt.origin == .savedContext, let found = site(in: bt)
        else { continue }
        snapshot.timerQueues[i].timers[j].ownerSite = found.address
        snapshot.timerQueues[i].timers[j].ownerLocation = found.location
      }
    }
    for i in snapshot.locks.indices {
      let lock = snapshot.locks[i].address
      for j in snapshot.locks[i].waiters.indices {
        let w = snapshot.locks[i].waiters[j]
        var bt: Backtrace?
        if let id = w.thread, id != 0 {
          if let t = threads[id], let walked = t.backtrace, showsWait(t, walked, lock: lock, w) {
            bt = walked
          }
        } else if let lcpu = w.lcpu {
          bt = vcpuBacktraces[lcpu]
        }
        guard let bt, let found = site(in: bt) else { continue }
        snapshot.locks[i].waiters[j].site = found.address
        snapshot.locks[i].waiters[j].location = found.location
      }
    }
  }
}
