// LAPIC: the local APIC of each lcpu, in xAPIC (MMIO) or x2APIC (MSR) mode. It delivers
// the timer and the IPIs, and sends INIT/SIPI to start the APs.

#if SMP_GUEST
  import KernelSupport

  /// The local APIC of the lcpu running the code.
  enum LAPIC {
    /// Register offsets (xAPIC MMIO offsets; x2APIC MSR = 0x800 + offset / 16).
    enum Register {
      /// Local APIC id.
      static let id: UInt32 = 0x20
      /// Task priority.
      static let taskPriority: UInt32 = 0x80
      /// End of interrupt.
      static let endOfInterrupt: UInt32 = 0xB0
      /// Spurious-interrupt vector and software enable.
      static let spuriousVector: UInt32 = 0xF0
      /// Error status.
      static let errorStatus: UInt32 = 0x280
      /// Interrupt command, low half (writing it sends).
      static let commandLow: UInt32 = 0x300
      /// Interrupt command, destination.
      static let commandHigh: UInt32 = 0x310
      /// Local vector table: timer.
      static let lvtTimer: UInt32 = 0x320
      /// Local vector table: LINT0 (the legacy PIC on the BSP).
      static let lvtLINT0: UInt32 = 0x350
      /// Local vector table: LINT1 (NMI).
      static let lvtLINT1: UInt32 = 0x360
      /// Local vector table: APIC errors.
      static let lvtError: UInt32 = 0x370
      /// Timer initial count.
      static let timerInitialCount: UInt32 = 0x380
      /// Timer current count.
      static let timerCurrentCount: UInt32 = 0x390
      /// Timer divide configuration.
      static let timerDivide: UInt32 = 0x3E0
    }

    /// LVT mask bit.
    static let masked: UInt32 = 1 << 16
    /// IA32_APIC_BASE MSR.
    static let baseMSR: UInt32 = 0x1B
    /// Physical address of the xAPIC registers (from the MADT).
    nonisolated(unsafe) static var base: UInt64 = 0xFEE0_0000
    /// Whether the LAPICs run in x2APIC mode (decided once on the BSP).
    nonisolated(unsafe) static var x2apic = false

    /// Reads a register.
    static func read(_ reg: UInt32) -> UInt32 {
      if x2apic { return UInt32(truncatingIfNeeded: rdmsr(0x800 + reg >> 4)) }
      return mmio_read32(base + UInt64(reg))
    }

    /// Writes a register.
    static func write(_ reg: UInt32, _ value: UInt32) {
      if x2apic {
        wrmsr(0x800 + reg >> 4, UInt64(value))
      } else {
        mmio_write32(base + UInt64(reg), value)
      }
    }

    /// This lcpu's APIC id.
    static func id() -> UInt32 {
      x2apic ? read(Register.id) : read(Register.id) >> 24
    }

    /// Enables this lcpu's LAPIC: software enable with the spurious vector, all LVT entries
    /// masked except LINT1 (NMI) on the BSP; the legacy PIC's LINT0 stays masked.
    static func enable() {
      if LCPU.currentIndex == 0 { x2apic = CPUFeatures.x2apic }
      var apicBase = rdmsr(baseMSR) | (1 << 11)
      if x2apic { apicBase |= 1 << 10 }
      wrmsr(baseMSR, apicBase)
      write(Register.spuriousVector, 0x100 | UInt32(Vector.spurious))
      write(Register.taskPriority, 0)
      write(Register.lvtTimer, masked | UInt32(Vector.timer))
      write(Register.lvtLINT0, masked)
      write(Register.lvtLINT1, LCPU.currentIndex == 0 ? 0x400 : masked)
      write(Register.lvtError, masked)
      write(Register.errorStatus, 0)
      write(Register.errorStatus, 0)
      endOfInterrupt()
    }

    /// Signals the end of the interrupt being handled.
    static func endOfInterrupt() { write(Register.endOfInterrupt, 0) }

    /// Sends a fixed IPI with `vector` to the LAPIC `apicID`.
    static func sendIPI(to apicID: UInt32, vector: UInt64) {
      command(to: apicID, low: 0x4000 | UInt32(truncatingIfNeeded: vector))
    }

    /// Sends INIT (assert, edge) to `apicID`.
    static func sendInit(to apicID: UInt32) { command(to: apicID, low: 0x4500) }

    /// Sends a start-up IPI pointing at physical page `page` (address = page * 4096).
    static func sendStartup(to apicID: UInt32, page: UInt32) {
      command(to: apicID, low: 0x4600 | (page & 0xFF))
    }

    /// Writes the interrupt command register (destination, then command), interrupts off
    /// so no handler on this lcpu can interleave its own command.
    private static func command(to apicID: UInt32, low: UInt32) {
      let irqs = cpu_irqs_enabled()
      cpu_cli()
      if x2apic {
        wrmsr(0x830, UInt64(apicID) << 32 | UInt64(low))
      } else {
        while read(Register.commandLow) & (1 << 12) != 0 { cpu_pause() }
        write(Register.commandHigh, apicID << 24)
        write(Register.commandLow, low)
      }
      if irqs { cpu_sti() }
    }
  }
#endif
