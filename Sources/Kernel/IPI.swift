// IPI: interrupts between lcpus. A wake-up IPI only ends a halt (its handler counts it);
// a remote call runs a function on another lcpu through a single-slot mailbox per lcpu,
// as in Unikraft: the sender claims the slot by CAS (0 -> 1), stores the argument, then
// publishes the function and sends the IPI; the target empties the slot and runs it.
// A full mailbox makes the call fail rather than wait.

#if SMP_GUEST
  import KernelSupport

  /// Inter-processor interrupts: wake-ups and remote calls.
  enum IPI {
    /// A function run on another lcpu, with one argument.
    typealias RemoteFunction = @convention(c) (UInt64) -> Void

    /// Mailbox value while a sender fills it.
    static let claimed: UInt64 = 1

    /// Sends `vector` to lcpu `target` and counts it in this lcpu's ipi_sent.
    static func send(_ vector: UInt64, to target: UInt32) {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      LAPIC.sendIPI(to: LCPU.area(target).pointee.apic_id, vector: vector)
      abi_inc(&LCPU.current.pointee.record.pointee.ipi_sent)
      if irqs { cpu_sti() }
    }

    /// Wakes lcpu `target` if it is halted.
    static func wake(_ target: UInt32) {
      guard target < LCPU.count, LCPU.isOnline(target) else { return }
      send(Vector.wakeup, to: target)
    }

    /// Runs `function(argument)` on lcpu `target`; false if it is not running or its
    /// mailbox is still full.
    @discardableResult
    static func call(_ target: UInt32, _ function: RemoteFunction, _ argument: UInt64) -> Bool {
      guard target < LCPU.count, target != LCPU.currentIndex, LCPU.isOnline(target) else {
        return false
      }
      let a = LCPU.area(target)
      guard atomic_cas_u64(&a.pointee.call_fn, 0, claimed) else { return false }
      a.pointee.call_arg = argument
      atomic_store_u64(
        &a.pointee.call_fn, UInt64(UInt(bitPattern: unsafeBitCast(function, to: UnsafeRawPointer.self))))
      send(Vector.remoteCall, to: target)
      return true
    }

    /// The wake-up vector's handler.
    static func wakeupInterrupt() {
      let r = LCPU.current.pointee.record
      abi_inc(&r.pointee.ipi_received)
      abi_inc(&r.pointee.irq_ipi)
      LAPIC.endOfInterrupt()
    }

    /// The remote-call vector's handler: empties the mailbox, then runs the call one BUSY
    /// level deeper than the interrupt.
    static func remoteCallInterrupt() {
      let a = LCPU.current
      let r = a.pointee.record
      abi_inc(&r.pointee.ipi_received)
      abi_inc(&r.pointee.irq_ipi)
      let bits = atomic_load_u64(&a.pointee.call_fn)
      if bits > claimed, let raw = UnsafeRawPointer(bitPattern: UInt(bits)) {
        let argument = a.pointee.call_arg
        atomic_store_u64(&a.pointee.call_fn, 0)
        let function = unsafeBitCast(raw, to: RemoteFunction.self)
        LCPU.busyEnter()
        function(argument)
        abi_inc(&r.pointee.remote_calls)
        LCPU.busyExit()
      }
      LAPIC.endOfInterrupt()
    }
  }
#endif
