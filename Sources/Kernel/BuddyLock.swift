// BuddyLock: the lock behind each buddy order (BuddyCore.swift's locked mode). One wrapper,
// so moving the allocator to the registered, observable lock type is a one-line change.

#if SMP_GUEST
/// A per-order lock of the buddy allocator: today the kernel's SpinLock (interrupts off).
struct BuddyLock: ~Copyable {
  private let inner = SpinLock()
  init() {}
  /// Takes the lock; returns whether interrupts were enabled.
  @inline(__always) func lock() -> Bool { inner.lock() }
  /// Releases it and restores the interrupt flag.
  @inline(__always) func unlock(restoring irqs: Bool) { inner.unlock(restoring: irqs) }
}
#endif
