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

  /// Where a lock record's waiter slots start.
  static let lockWaitersOffset = MemoryLayout<smptop_lock>.offset(of: \smptop_lock.waiters) ?? 0

  /// Calls `body` with the record of type `T` at `offset` of `bytes`: in place when it is
  /// aligned, else on a copy. The caller guarantees `offset + size <= bytes.count`.
  static func withRecord<T: BitwiseCopyable, R>(
    _ type: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int, _ body: (UnsafePointer<T>) -> R
  ) -> R {
    if let base = bytes.baseAddress, Int(bitPattern: base + offset) % MemoryLayout<T>.alignment == 0 {
      return (base + offset).withMemoryRebound(to: T.self, capacity: 1, body)
    }
    var copy = load(T.self, from: bytes, at: offset)
    return withUnsafePointer(to: &copy, body)
  }

  /// A lock record from `bytes` (exactly one record), found at `recordAddress`.
  public static func lock(
    _ bytes: UnsafeRawBufferPointer, at offset: Int = 0, recordAddress: UInt64, consistency: Consistency
  ) -> LockRecord {
    withRecord(smptop_lock.self, bytes, at: offset) { p in
      let r = UnsafeMutablePointer(mutating: p)
      let kind: LockKind =
        switch r.pointee.kind {
        case UInt32(SMPTOP_LOCK_SPIN.rawValue): .spin
        case UInt32(SMPTOP_LOCK_TICKET.rawValue): .ticket
        case UInt32(SMPTOP_LOCK_RW.rawValue): .rw
        case UInt32(SMPTOP_LOCK_MUTEX.rawValue): .mutex
        case UInt32(SMPTOP_LOCK_SEMAPHORE.rawValue): .semaphore
        default: .unknown
        }
      let shown = min(Int(r.pointee.waiter_count), Int(SMPTOP_LOCK_WAITERS))
      var waiters: [LockRecord.Waiter] = []
      if shown > 0 {
        let slots = UnsafeRawPointer(p) + lockWaitersOffset
        let stride = MemoryLayout.size(ofValue: r.pointee.waiters) / Int(SMPTOP_LOCK_WAITERS)
        waiters = (0..<shown).map { i in
          let lcpu = slots.loadUnaligned(fromByteOffset: i * stride, as: UInt32.self)
          let thread = slots.loadUnaligned(fromByteOffset: i * stride + 8, as: UInt64.self)
          let since = slots.loadUnaligned(fromByteOffset: i * stride + 16, as: UInt64.self)
          return LockRecord.Waiter(
            lcpu: lcpu == noLCPU ? nil : lcpu, thread: thread == 0 ? nil : thread, sinceTSC: since)
        }
      }
      let name = withUnsafeBytes(of: &r.pointee.name) { cString($0) }
      let holderLCPU = r.pointee.holder_lcpu
      let holderThread = r.pointee.holder_thread
      return LockRecord(
        name: name, kind: kind, flags: r.pointee.flags, address: r.pointee.address,
        recordAddress: recordAddress, dynamic: r.pointee.flags & UInt32(SMPTOP_LOCKF_DYNAMIC.rawValue) != 0,
        stateWord: r.pointee.state_word, holderLCPU: holderLCPU == noLCPU ? nil : holderLCPU,
        holderThread: holderThread == 0 ? nil : holderThread, readers: r.pointee.readers,
        acquireSite: r.pointee.acquire_site, acquiredTSC: r.pointee.acquired_tsc,
        acquisitions: r.pointee.acquisitions, contended: r.pointee.contended,
        trylockFailures: r.pointee.trylock_failures, waitTotalTSC: r.pointee.wait_total_tsc,
        waitMaxTSC: r.pointee.wait_max_tsc, holdTotalTSC: r.pointee.hold_total_tsc,
        holdMaxTSC: r.pointee.hold_max_tsc, misuseIRQUnsafe: r.pointee.misuse_irq_unsafe,
        misuseSleepInIRQ: r.pointee.misuse_sleep_in_irq, misuseRecursion: r.pointee.misuse_recursion,
        misuseBadUnlock: r.pointee.misuse_bad_unlock, waiterCount: r.pointee.waiter_count,
        pendingWriters: r.pointee.pending_writers, waiters: waiters, consistency: consistency)
    }
  }

  /// The `next` link of a dynamic lock record.
  static func lockNext(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
    load(
      UInt64.self, from: bytes, at: offset + (MemoryLayout<smptop_lock>.offset(of: \smptop_lock.next) ?? 8))
  }

  /// A thread record.
  public static func thread(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0, consistency: Consistency)
    -> ThreadRecord
  {
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
  public static func timerQueue(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0, consistency: Consistency)
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
  public static func workload(
    _ bytes: UnsafeRawBufferPointer, at offset: Int = 0, lcpus: Int, consistency: Consistency
  )
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
    _ bytes: UnsafeRawBufferPointer, at offset: Int = 0, orders: [AllocOrderRecord], lcpus: Int,
    consistency: Consistency
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
  public static func allocOrder(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> AllocOrderRecord {
    let r = load(smptop_alloc_order.self, from: bytes, at: offset)
    return AllocOrderRecord(
      order: r.order, blockBytes: r.block_bytes, freeBlocks: r.free_blocks, usedBlocks: r.used_blocks,
      allocs: r.allocs, frees: r.frees, splits: r.splits, merges: r.merges, failures: r.failures,
      casRetries: r.cas_retries)
  }

  /// A virtio device record.
  public static func virtioDevice(
    _ bytes: UnsafeRawBufferPointer, at offset: Int = 0, consistency: Consistency
  )
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
  public static func virtq(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0, consistency: Consistency)
    -> VirtqRecord
  {
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

/// The decoders over byte arrays (a record read on its own, or a table's bytes at `offset`).
extension ABIDecoder {
  /// An lcpu record from `bytes` at `offset` (bounds checked by the caller).
  public static func lcpu(_ bytes: [UInt8], at offset: Int, consistency: Consistency) -> LCPURecord {
    bytes.withUnsafeBytes { lcpu($0, at: offset, consistency: consistency) }
  }

  /// A lock record from `bytes`, found at `recordAddress`.
  public static func lock(
    _ bytes: [UInt8], at offset: Int = 0, recordAddress: UInt64, consistency: Consistency
  ) -> LockRecord {
    bytes.withUnsafeBytes { lock($0, at: offset, recordAddress: recordAddress, consistency: consistency) }
  }

  /// The `next` link of a dynamic lock record in `bytes`.
  static func lockNext(_ bytes: [UInt8], at offset: Int = 0) -> UInt64 {
    bytes.withUnsafeBytes { lockNext($0, at: offset) }
  }

  /// A thread record from `bytes`.
  public static func thread(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency) -> ThreadRecord {
    bytes.withUnsafeBytes { thread($0, at: offset, consistency: consistency) }
  }

  /// A timer-queue record from `bytes`.
  public static func timerQueue(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency)
    -> TimerQueueRecord
  {
    bytes.withUnsafeBytes { timerQueue($0, at: offset, consistency: consistency) }
  }

  /// The workload record from `bytes`.
  public static func workload(_ bytes: [UInt8], at offset: Int = 0, lcpus: Int, consistency: Consistency)
    -> WorkloadRecord
  {
    bytes.withUnsafeBytes { workload($0, at: offset, lcpus: lcpus, consistency: consistency) }
  }

  /// The allocator record from `bytes`.
  public static func allocator(
    _ bytes: [UInt8], at offset: Int = 0, orders: [AllocOrderRecord], lcpus: Int, consistency: Consistency
  ) -> AllocatorRecord {
    bytes.withUnsafeBytes {
      allocator($0, at: offset, orders: orders, lcpus: lcpus, consistency: consistency)
    }
  }

  /// One allocator order record from `bytes`.
  public static func allocOrder(_ bytes: [UInt8], at offset: Int = 0) -> AllocOrderRecord {
    bytes.withUnsafeBytes { allocOrder($0, at: offset) }
  }

  /// A virtio device record from `bytes`.
  public static func virtioDevice(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency)
    -> VirtioDeviceRecord
  {
    bytes.withUnsafeBytes { virtioDevice($0, at: offset, consistency: consistency) }
  }

  /// A virtqueue record from `bytes`.
  public static func virtq(_ bytes: [UInt8], at offset: Int = 0, consistency: Consistency) -> VirtqRecord {
    bytes.withUnsafeBytes { virtq($0, at: offset, consistency: consistency) }
  }
}
