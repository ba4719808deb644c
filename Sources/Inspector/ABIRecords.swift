import InspectABI

/// Decoders for the v2 records (locks, threads, timers, workload, allocator, virtio).
extension ABIDecoder {
  static let noLCPU = UInt32(SMPTOP_NO_LCPU)

  /// Fixed-size C text (a tuple of CChar) as a bounded, leniently decoded String.
  static func text<T>(_ value: T) -> String {
    var value = value
    return withUnsafeBytes(of: &value) { cString($0) }
  }

  /// A fixed-size C array of UInt64 (a tuple) as an array of its first `count` elements.
  static func words<T>(_ value: T, count: Int) -> [UInt64] {
    var value = value
    return withUnsafeBytes(of: &value) { raw in
      (0..<min(count, raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
    }
  }

  /// A lock record from `bytes` (exactly one record), found at `recordAddress`.
  public static func lock(
    _ bytes: [UInt8], at offset: Int = 0, recordAddress: UInt64, consistency: Consistency
  ) -> LockRecord {
    var r = load(smptop_lock.self, from: bytes, at: offset)
    let kind: LockKind =
      switch r.kind {
      case UInt32(SMPTOP_LOCK_SPIN.rawValue): .spin
      case UInt32(SMPTOP_LOCK_TICKET.rawValue): .ticket
      case UInt32(SMPTOP_LOCK_RW.rawValue): .rw
      case UInt32(SMPTOP_LOCK_MUTEX.rawValue): .mutex
      case UInt32(SMPTOP_LOCK_SEMAPHORE.rawValue): .semaphore
      default: .unknown
      }
    let shown = min(Int(r.waiter_count), Int(SMPTOP_LOCK_WAITERS))
    let waiters = withUnsafeBytes(of: &r.waiters) { raw -> [LockRecord.Waiter] in
      let stride = raw.count / Int(SMPTOP_LOCK_WAITERS)
      return (0..<shown).map { i in
        let lcpu = raw.loadUnaligned(fromByteOffset: i * stride, as: UInt32.self)
        let thread = raw.loadUnaligned(fromByteOffset: i * stride + 8, as: UInt64.self)
        let since = raw.loadUnaligned(fromByteOffset: i * stride + 16, as: UInt64.self)
        return LockRecord.Waiter(
          lcpu: lcpu == noLCPU ? nil : lcpu, thread: thread == 0 ? nil : thread, sinceTSC: since)
      }
    }
    return LockRecord(
      name: text(r.name), kind: kind, flags: r.flags, address: r.address, recordAddress: recordAddress,
      dynamic: r.flags & UInt32(SMPTOP_LOCKF_DYNAMIC.rawValue) != 0, stateWord: r.state_word,
      holderLCPU: r.holder_lcpu == noLCPU ? nil : r.holder_lcpu,
      holderThread: r.holder_thread == 0 ? nil : r.holder_thread, readers: r.readers,
      acquireSite: r.acquire_site, acquiredTSC: r.acquired_tsc, acquisitions: r.acquisitions,
      contended: r.contended, trylockFailures: r.trylock_failures, waitTotalTSC: r.wait_total_tsc,
      waitMaxTSC: r.wait_max_tsc, holdTotalTSC: r.hold_total_tsc, holdMaxTSC: r.hold_max_tsc,
      misuseIRQUnsafe: r.misuse_irq_unsafe, misuseSleepInIRQ: r.misuse_sleep_in_irq,
      misuseRecursion: r.misuse_recursion, misuseBadUnlock: r.misuse_bad_unlock, waiterCount: r.waiter_count,
      pendingWriters: r.pending_writers, waiters: waiters, consistency: consistency)
  }

  /// The `next` link of a dynamic lock record.
  static func lockNext(_ bytes: [UInt8], at offset: Int = 0) -> UInt64 {
    load(
      UInt64.self, from: bytes, at: offset + (MemoryLayout<smptop_lock>.offset(of: \smptop_lock.next) ?? 8))
  }

  /// A thread record.
  public static func thread(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency) -> ThreadRecord {
    let r = load(smptop_thread.self, from: bytes, at: offset)
    let state: ThreadState =
      switch r.state {
      case UInt32(SMPTOP_THREAD_FREE.rawValue): .free
      case UInt32(SMPTOP_THREAD_RUNNING.rawValue): .running
      case UInt32(SMPTOP_THREAD_READY.rawValue): .ready
      case UInt32(SMPTOP_THREAD_BLOCKED_LOCK.rawValue): .blockedOnLock
      case UInt32(SMPTOP_THREAD_BLOCKED_SEM.rawValue): .blockedOnSemaphore
      case UInt32(SMPTOP_THREAD_BLOCKED_WAITQ.rawValue): .blockedOnWaitQueue
      case UInt32(SMPTOP_THREAD_SLEEPING.rawValue): .sleeping
      case UInt32(SMPTOP_THREAD_SPINNING.rawValue): .spinning
      case UInt32(SMPTOP_THREAD_EXITED.rawValue): .exited
      default: .unknown
      }
    return ThreadRecord(
      id: r.id, name: text(r.name), state: state, lcpu: r.lcpu, blockedOn: r.blocked_on, wakeTSC: r.wake_tsc,
      cpuTSC: r.cpu_tsc, switches: r.switches, ops: r.ops, consistency: consistency,
      stackBottom: r.stack_bottom, stackTop: r.stack_top, savedRSP: r.saved_rsp, tickRIP: r.tick_rip,
      tickRBP: r.tick_rbp, tickRSP: r.tick_rsp, tickTSC: r.tick_tsc)
  }

  /// A timer-queue record.
  public static func timerQueue(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency)
    -> TimerQueueRecord
  {
    var r = load(smptop_timerq.self, from: bytes, at: offset)
    let listed = min(Int(r.pending), Int(SMPTOP_TIMER_SLOTS))
    let pending = withUnsafeBytes(of: &r.timers) { raw in
      (0..<listed).map { i in
        TimerQueueRecord.Pending(
          deadlineTSC: raw.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self),
          ownerThread: raw.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self))
      }
    }
    return TimerQueueRecord(
      lcpu: r.lcpu, pending: r.pending, nextDeadlineTSC: r.next_deadline_tsc, fired: r.fired,
      lateTotalTSC: r.late_total_tsc, lateMaxTSC: r.late_max_tsc,
      lateHistogram: words(r.late_hist, count: Int(SMPTOP_LATENESS_BUCKETS)), timers: pending,
      consistency: consistency)
  }

  /// The workload record; `lcpus` bounds the per-lcpu array.
  public static func workload(_ bytes: [UInt8], at offset: Int = 0, lcpus: Int, consistency: Consistency)
    -> WorkloadRecord
  {
    let r = load(smptop_workload.self, from: bytes, at: offset)
    return WorkloadRecord(
      scenario: text(r.scenario), checks: r.checks, checkFailures: r.check_failures, expected: r.expected,
      observed: r.observed, ops: words(r.ops, count: min(lcpus, Int(SMPTOP_MAX_LCPUS))),
      consistency: consistency)
  }

  /// The allocator record, with its order records.
  public static func allocator(
    _ bytes: [UInt8], at offset: Int = 0, orders: [AllocOrderRecord], lcpus: Int, consistency: Consistency
  ) -> AllocatorRecord {
    let r = load(smptop_alloc.self, from: bytes, at: offset)
    let n = min(lcpus, Int(SMPTOP_MAX_LCPUS))
    return AllocatorRecord(
      mode: r.mode == UInt32(SMPTOP_ALLOC_LOCKFREE.rawValue)
        ? "lockfree" : (r.mode == 0 ? "locked" : "?\(r.mode)"),
      base: r.base, pageBytes: r.page_bytes, pagesManaged: r.pages_managed, pagesFree: r.pages_free,
      largestFreeOrder: r.largest_free_order == UInt64.max ? nil : r.largest_free_order,
      churnChecks: r.churn_checks, churnFailures: r.churn_failures, startFreePages: r.start_free_pages,
      heapBytesInUse: r.heap_bytes_in_use, heapAllocs: r.heap_allocs, heapFrees: r.heap_frees,
      lcpuAllocs: words(r.lcpu_allocs, count: n), lcpuFrees: words(r.lcpu_frees, count: n), orders: orders,
      consistency: consistency)
  }

  /// One allocator order record.
  public static func allocOrder(_ bytes: [UInt8], at offset: Int = 0) -> AllocOrderRecord {
    let r = load(smptop_alloc_order.self, from: bytes, at: offset)
    return AllocOrderRecord(
      order: r.order, blockBytes: r.block_bytes, freeBlocks: r.free_blocks, usedBlocks: r.used_blocks,
      allocs: r.allocs, frees: r.frees, splits: r.splits, merges: r.merges, failures: r.failures,
      casRetries: r.cas_retries)
  }

  /// A virtio device record.
  public static func virtioDevice(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency)
    -> VirtioDeviceRecord
  {
    var r = load(smptop_virtio_dev.self, from: bytes, at: offset)
    let mac = withUnsafeBytes(of: &r.mac) { raw in
      raw.prefix(6).map { hex($0, width: 2) }.joined(separator: ":")
    }
    return VirtioDeviceRecord(
      name: text(r.name), pciBDF: r.pci_bdf, deviceID: r.device_id, features: r.features,
      queuePairs: r.queue_pairs, queues: r.queues, mac: mac, linkUp: r.link_up != 0, msix: r.msix != 0,
      firstQueue: r.first_queue, consistency: consistency)
  }

  /// A virtqueue record.
  public static func virtq(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency) -> VirtqRecord {
    let r = load(smptop_virtq.self, from: bytes, at: offset)
    let role: VirtqRole =
      switch r.role {
      case UInt32(SMPTOP_VIRTQ_RX.rawValue): .rx
      case UInt32(SMPTOP_VIRTQ_TX.rawValue): .tx
      case UInt32(SMPTOP_VIRTQ_CTRL.rawValue): .ctrl
      default: .unknown
      }
    return VirtqRecord(
      device: r.device, index: r.index, role: role, lcpu: r.lcpu, size: r.size, freeDescriptors: r.free_descs,
      availIndex: r.avail_idx, usedIndex: r.used_idx, lastUsed: r.last_used,
      notificationsOff: r.notifications_off != 0, packets: r.packets, bytes: r.bytes, errors: r.errors,
      drops: r.drops, kicks: r.kicks, interrupts: r.interrupts, polls: r.polls, descriptorTable: r.desc_addr,
      availRing: r.avail_addr, usedRing: r.used_addr, consistency: consistency)
  }
}
