// BuddyLock: the lock behind each buddy order (BuddyCore.swift's locked mode) and each heap
// size class. It is the kernel's registered, observable SpinLock (IRQ-save), created on the
// dynamic lock list, so the allocator's locks show up in smptop with their contention.

#if SMP_GUEST
  import KernelSupport
  import Synchronization

  /// A per-order (or per-size-class) lock of the buddy allocator: a registered IRQ-save spinlock.
  struct BuddyLock: ~Copyable {
    /// Locks created so far: the first 16 are the orders' (BuddyCore makes them in order).
    nonisolated(unsafe) private static var created: UInt32 = 0
    private let inner: SpinLock?
    private let fallback = FallbackLock()

    init() {
      let n = BuddyLock.created
      BuddyLock.created &+= 1
      let k =
        n < 16
        ? LockCore.makeDynamic(
          "buddy-order", suffix: n, kind: SMPTOP_LOCK_SPIN, flags: SMPTOP_LOCKF_IRQSAVE.rawValue)
        : LockCore.makeDynamic(
          "heap-class", suffix: n - 16, kind: SMPTOP_LOCK_SPIN, flags: SMPTOP_LOCKF_IRQSAVE.rawValue)
      inner = k.map { SpinLock($0) }
    }

    /// Takes the lock (interrupts stay off while it is held); returns whether they were on.
    /// A refusal (this lcpu already holds it: the allocator re-entered itself) would leave the
    /// caller working on the free lists unlocked, so it stops this lcpu instead.
    @inline(__always) func lock() -> Bool {
      let irqs = cpu_irqs_enabled()
      if let inner {
        if !inner.lock() { BuddyLock.refused() }
      } else {
        _ = fallback.lock()
      }
      return irqs
    }

    /// Reports a refused allocator lock and halts this lcpu (HALTED, LCPU.errorLockRefused).
    @inline(never)
    static func refused() -> Never {
      cpu_cli()
      Console.emergency("buddy: lcpu \(LCPU.currentIndex) re-entered an allocator lock it holds; halting it")
      LCPU.halt(errorCode: LCPU.errorLockRefused)
      cpu_halt_forever()
    }

    /// Releases it; the registered lock restores the interrupt flag itself.
    @inline(__always) func unlock(restoring irqs: Bool) {
      if let inner { inner.unlock() } else { fallback.unlock(restoring: irqs) }
    }
  }

  /// The plain lock used when the dynamic lock pool is exhausted (never observable, always safe).
  struct FallbackLock: ~Copyable {
    private let word = Atomic<UInt64>(0)
    init() {}
    func lock() -> Bool {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      while !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { cpu_pause() }
      return irqs
    }
    func unlock(restoring irqs: Bool) {
      word.store(0, ordering: .releasing)
      if irqs { cpu_sti() }
    }
  }
#endif
