// SpinLock: a test-and-test-and-set lock that keeps interrupts off while held, so an
// interrupt handler on the same lcpu can never spin on a lock its own lcpu holds.

#if SMP_GUEST
import KernelSupport
import Synchronization

/// A spinlock whose word records the holder (lcpu index + 1, 0 = free).
struct SpinLock: ~Copyable, Sendable {
  private let word = Atomic<UInt32>(0)

  /// Creates an unlocked lock.
  init() {}

  /// Takes the lock with interrupts disabled; returns whether they were enabled before.
  func lock() -> Bool {
    let wereEnabled = cpu_irqs_enabled()
    cpu_cli()
    let me = this_lcpu().pointee.index &+ 1
    while true {
      if word.compareExchange(expected: 0, desired: me, ordering: .acquiring).exchanged { break }
      while word.load(ordering: .relaxed) != 0 { cpu_pause() }
    }
    return wereEnabled
  }

  /// Releases the lock and restores the interrupt flag `lock()` returned.
  func unlock(restoring interruptsWereEnabled: Bool) {
    word.store(0, ordering: .releasing)
    if interruptsWereEnabled { cpu_sti() }
  }

  /// Runs `body` with the lock held and interrupts disabled.
  func withLock<R>(_ body: () -> R) -> R {
    let irqs = lock()
    let result = body()
    unlock(restoring: irqs)
    return result
  }

  /// Whether the lcpu running this code holds the lock.
  var isHeldByCurrentLCPU: Bool {
    word.load(ordering: .relaxed) == this_lcpu().pointee.index &+ 1
  }

  /// Frees a lock held by this lcpu without unlocking properly: only for the panic path,
  /// which may have interrupted its own lcpu in the middle of the critical section.
  func breakIfHeldByCurrentLCPU() {
    if isHeldByCurrentLCPU { word.store(0, ordering: .releasing) }
  }
}
#endif
