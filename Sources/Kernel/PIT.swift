// PIT: the 8254 timer, used once at boot as the reference clock for calibrating the TSC
// and the LAPIC timer. Channel 2 (gated through port 0x61, no interrupt) counts down
// from 0xFFFF at 1.193182 MHz, and the kernel reads its counter directly.

#if SMP_GUEST
  import KernelSupport

  /// The 8254 programmable interval timer.
  enum PIT {
    /// Input clock in Hz.
    static let hz: UInt64 = 1_193_182

    /// Starts channel 2 counting down from 0xFFFF (mode 0, about 55 ms to zero).
    static func startCounting() {
      outb(0x61, (inb(0x61) & ~0x02) | 0x01)  // gate on, speaker off
      outb(0x43, 0xB0)  // channel 2, lobyte/hibyte, mode 0, binary
      outb(0x42, 0xFF)
      outb(0x42, 0xFF)
    }

    /// The current count of channel 2 (latched, so both bytes belong together).
    static func count() -> UInt16 {
      outb(0x43, 0x80)  // latch channel 2
      let low = UInt16(inb(0x42))
      let high = UInt16(inb(0x42))
      return high << 8 | low
    }
  }
#endif
