// Traps: the IDT (all 256 vectors point at traps.S stubs) and the dispatcher every
// interrupt and exception goes through. Exceptions (0-31) never return: Panic.swift
// records them and halts the lcpu. Interrupts count as one level of BUSY.

#if SMP_GUEST
  import KernelSupport

  /// Interrupt vectors the kernel uses.
  enum Vector {
    /// Legacy 8259 PIC, remapped here and masked (a spurious IRQ 7/15 can still arrive).
    static let picBase: UInt64 = 0x20
    /// Per-lcpu LAPIC timer.
    static let timer: UInt64 = 0x40
    /// IPI: wake an idle lcpu (the handler only counts it).
    static let wakeup: UInt64 = 0xF0
    /// IPI: run the function in this lcpu's remote-call mailbox.
    static let remoteCall: UInt64 = 0xF1
    /// LAPIC spurious-interrupt vector (low nibble must be all ones).
    static let spurious: UInt64 = 0xFF
    /// Non-maskable interrupt (an exception vector).
    static let nmi: UInt64 = 2
    /// Double fault.
    static let doubleFault: UInt64 = 8
    /// Machine check.
    static let machineCheck: UInt64 = 18
  }

  /// The interrupt descriptor table and the trap dispatcher.
  enum Traps {
    /// IST slot of the double-fault stack in each lcpu's TSS (GDT.swift fills them).
    static let istDoubleFault: UInt8 = 1
    /// IST slot of the NMI stack.
    static let istNMI: UInt8 = 2
    /// IST slot of the machine-check stack.
    static let istMachineCheck: UInt8 = 3

    /// Fills all 256 gates (interrupt gates, ring 0) and loads the IDT on this lcpu.
    static func install() {
      for v in UInt32(0)..<256 {
        let handler = isr_stub_address(v)
        let gate = idt_entry_at(v)
        gate.pointee.offset_low = UInt16(truncatingIfNeeded: handler)
        gate.pointee.selector = UInt16(KERNEL_CS)
        gate.pointee.ist = istSlot(UInt64(v))
        gate.pointee.type_attr = 0x8E  // present, DPL 0, 64-bit interrupt gate
        gate.pointee.offset_mid = UInt16(truncatingIfNeeded: handler >> 16)
        gate.pointee.offset_high = UInt32(truncatingIfNeeded: handler >> 32)
        gate.pointee.zero = 0
      }
      idt_load()
    }

    /// The IST stack a vector runs on: #DF, NMI and #MC get their own so that a broken
    /// kernel stack (overflow into the guard page) still reports.
    static func istSlot(_ vector: UInt64) -> UInt8 {
      switch vector {
      case Vector.doubleFault: return istDoubleFault
      case Vector.nmi: return istNMI
      case Vector.machineCheck: return istMachineCheck
      default: return 0
      }
    }
  }

  /// Every interrupt and exception lands here from traps.S with interrupts off.
  @c func isr_dispatch(_ frame: UnsafeMutablePointer<trap_frame>) {
    let vector = frame.pointee.vector
    if vector < 32 {
      Panic.exception(frame)
    }
    let r = LCPU.current.pointee.record
    LCPU.busyEnter()
    let sched = Sched.me
    sched.pointee.irq_depth &+= 1  // interrupt context (locks: misuse detection)
    if Trace.on(SMPTOP_TRACE_IRQ) {
      Trace.emitIRQsOff(SMPTOP_TRACE_IRQ_ENTER, object: vector, arg: frame.pointee.rip)
    }
    switch vector {
    case Vector.timer:
      Timer.interrupt(frame)
    case Vector.wakeup:
      IPI.wakeupInterrupt()
    case Vector.remoteCall:
      IPI.remoteCallInterrupt()
    case VirtioNet.vectorRX, VirtioNet.vectorTX, VirtioNet.vectorConfig:
      abi_inc(&r.pointee.irq_device)
      VirtioNet.interrupt(vector)
      LAPIC.endOfInterrupt()
    case Vector.spurious:
      abi_inc(&r.pointee.irq_spurious)  // no EOI for the spurious vector
    case Vector.picBase..<(Vector.picBase + 16):
      abi_inc(&r.pointee.irq_spurious)  // spurious 8259 IRQ (all lines are masked)
    default:
      abi_inc(&r.pointee.irq_spurious)  // nothing else is routed here
      LAPIC.endOfInterrupt()
    }
    // EOI is sent: a preemptive switch may happen here (Sched.swift); this frame resumes later.
    if Trace.on(SMPTOP_TRACE_IRQ) { Trace.emitIRQsOff(SMPTOP_TRACE_IRQ_EXIT, object: vector) }
    if vector == Vector.timer || vector == Vector.wakeup { Sched.interruptExit() }
    Sched.me.pointee.irq_depth &-= 1
    LCPU.busyExit()
  }
#endif
