// PIT: the 8254 timer, used once at boot as the reference clock for calibrating the TSC
// and the LAPIC timer (channel 2, gated through port 0x61, polled, no interrupt).

#if SMP_GUEST
  import KernelSupport

  /// The 8254 programmable interval timer.
  enum PIT {
    /// Input clock in Hz.
    static let hz: UInt64 = 1_193_182

    /// Starts a one-shot countdown of `milliseconds` on channel 2 (mode 0).
    static func startCountdown(milliseconds: UInt64) {
      let count = hz * milliseconds / 1000
      outb(0x61, (inb(0x61) & ~0x02) | 0x01)  // gate on, speaker off
      outb(0x43, 0xB0)  // channel 2, lobyte/hibyte, mode 0, binary
      outb(0x42, UInt8(truncatingIfNeeded: count))
      outb(0x42, UInt8(truncatingIfNeeded: count >> 8))
    }

    /// Whether the countdown has reached zero (OUT2 high).
    static func countdownExpired() -> Bool { inb(0x61) & 0x20 != 0 }
  }
#endif
