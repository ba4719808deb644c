// PIC: the legacy 8259 pair. SeaBIOS leaves IRQ 0 unmasked at vector 8 and QEMU wires
// the BSP's LINT0 as ExtINT, so the first `sti` would deliver the PIT on the #DF vector.
// The kernel remaps both chips away from the exception vectors and masks every line.

#if SMP_GUEST
  import KernelSupport

  /// The legacy 8259 interrupt controllers.
  enum PIC {
    /// Remaps the PICs to Vector.picBase..+15 and masks all 16 lines.
    static func disable() {
      let base = UInt8(truncatingIfNeeded: Vector.picBase)
      outb(0x20, 0x11)  // ICW1: initialise, ICW4 follows
      outb(0xA0, 0x11)
      outb(0x21, base)  // ICW2: vector offsets
      outb(0xA1, base &+ 8)
      outb(0x21, 0x04)  // ICW3: slave on IRQ 2
      outb(0xA1, 0x02)
      outb(0x21, 0x01)  // ICW4: 8086 mode
      outb(0xA1, 0x01)
      outb(0x21, 0xFF)  // mask everything
      outb(0xA1, 0xFF)
    }
  }
#endif
