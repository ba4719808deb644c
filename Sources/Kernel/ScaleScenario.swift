// ScaleScenario: `workload=scale`, a model as large as the dashboard is meant to show.
//
// 1024 dynamic spin locks ("scale.N", lock and record on the kernel heap: the static pool
// would not fit the kernel image) and, instead of the default threads, one toucher thread
// per online lcpu. A toucher takes a pseudo-random lock of the pool, holds it for a little
// work, counts one operation and paces itself like the default threads (a short sleep every
// 64 operations, so lcpus also go idle). With 64 lcpus that is 64 threads and 1024 + a few
// dynamic lock records to read per snapshot: what `smptop bench --workload scale --smp 64`
// measures.

#if SMP_GUEST
  import KernelSupport

  extension Workload {
    /// The scale scenario's locks and threads.
    enum Scale {
      /// Dynamic locks the scenario creates.
      static let lockCount: UInt32 = 1024
      /// The scale locks (an array of `lockCount` pointers on the heap).
      nonisolated(unsafe) static var locks: UnsafeMutablePointer<LockCore.Lock>? = nil
      /// Scale locks actually created (fewer if the heap ran out).
      nonisolated(unsafe) static var created: UInt32 = 0

      /// `count` zeroed bytes from the kernel heap, 64-byte aligned.
      static func zeroed(_ count: Int) -> UnsafeMutableRawPointer? {
        guard let p = BuddyHeap.allocate(size: count, align: 64) else { return nil }
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        return p
      }

      /// Creates the locks and one toucher per online lcpu (bsp, after every lcpu is online).
      static func start() {
        guard let array = zeroed(Int(lockCount) * MemoryLayout<LockCore.Lock>.stride) else { return }
        let table = array.bindMemory(to: LockCore.Lock.self, capacity: Int(lockCount))
        for i in 0..<lockCount {
          guard let k = zeroed(MemoryLayout<klock>.size), let r = zeroed(MemoryLayout<smptop_lock>.size),
            let lock = LockCore.makeDynamic(
              "scale", suffix: i, kind: SMPTOP_LOCK_SPIN,
              storage: (
                k.bindMemory(to: klock.self, capacity: 1), r.bindMemory(to: smptop_lock.self, capacity: 1)
              ))
          else { break }
          table[Int(i)] = lock
          created += 1
        }
        locks = table
        for i in 0..<LCPU.count where LCPU.isOnline(i) {
          Sched.spawn("toucher", suffix: i, lcpu: i, kind: 8, toucher, UInt64(i))
        }
        Console.log("workload: scale, \(created) locks")
      }

      /// Takes random scale locks forever.
      static let toucher: Sched.Entry = { _ in
        var n: UInt64 = 0
        while true {
          if created > 0, let locks {
            let l = SpinLock(locks[Int(Work.random() % UInt64(created))])
            if l.lock() {
              Workload.burn(50)
              Workload.me.pointee.tally &+= 1
              l.unlock()
            }
          }
          Workload.op(); Workload.burn(200); Workload.pace(&n)
        }
      }
    }
  }
#endif
