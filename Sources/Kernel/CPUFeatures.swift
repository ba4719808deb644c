// CPUFeatures: what CPUID says about the APIC and the clocks. QEMU 7.2 under TCG has no
// x2APIC, no TSC-deadline timer and no 0x40000010 frequency leaf; KVM-style hypervisors
// may have all three, and the kernel uses them when present.

#if SMP_GUEST
  import KernelSupport

  /// CPU capabilities relevant to interrupts and timekeeping.
  enum CPUFeatures {
    /// CPUID.1:ECX.x2APIC.
    nonisolated(unsafe) static var x2apic = false
    /// CPUID.1:ECX.TSC-deadline.
    nonisolated(unsafe) static var tscDeadline = false
    /// CPUID.1:ECX.hypervisor.
    nonisolated(unsafe) static var hypervisor = false
    /// TSC rate from CPUID 0x40000010 (kHz), 0 when absent.
    nonisolated(unsafe) static var hypervisorTSCkHz: UInt64 = 0
    /// LAPIC bus rate from CPUID 0x40000010 (kHz), 0 when absent.
    nonisolated(unsafe) static var hypervisorBuskHz: UInt64 = 0

    /// Reads the CPUID leaves once on the BSP and logs what was found.
    static func detect() {
      let leaf1 = cpuid(1, 0)
      x2apic = leaf1.ecx & (1 << 21) != 0
      tscDeadline = leaf1.ecx & (1 << 24) != 0
      hypervisor = leaf1.ecx & (1 << 31) != 0
      if hypervisor {
        let maxLeaf = cpuid(0x4000_0000, 0).eax
        if maxLeaf >= 0x4000_0010 && maxLeaf < 0x4001_0000 {
          let freq = cpuid(0x4000_0010, 0)
          hypervisorTSCkHz = UInt64(freq.eax)
          hypervisorBuskHz = UInt64(freq.ebx)
        }
      }
      Console.log(
        "cpu: x2apic \(x2apic ? 1 : 0) tsc-deadline \(tscDeadline ? 1 : 0) hypervisor \(hypervisor ? 1 : 0) cpuid-0x40000010 tsc \(hypervisorTSCkHz) kHz bus \(hypervisorBuskHz) kHz"
      )
    }
  }
#endif
