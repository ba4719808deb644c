// ACPI: finds the lcpus and the machine's fixed hardware in the firmware's tables.
// RSDP (EBDA or 0xE0000-0xFFFFF) -> XSDT (revision >= 2) or RSDT -> MADT ("APIC") for the
// LAPIC address and one entry per CPU (type 0 LAPIC, type 9 x2APIC, type 5 address
// override), and FADT ("FACP") for the PM1a control port used to power off.
// Every table is checksummed and every length bounded before it is trusted.

#if SMP_GUEST
  import KernelSupport

  /// The ACPI tables the kernel reads.
  enum ACPI {
    /// PM1a control port from the FADT, 0 when unknown.
    nonisolated(unsafe) static var pm1aControlPort: UInt16 = 0

    /// Size of the common table header.
    static let headerSize = 36
    /// Largest table the kernel will read.
    static let maxTableSize: UInt64 = 1 << 20

    /// Finds the RSDP, walks the root table and registers every enabled CPU as an lcpu
    /// (the BSP is already lcpu 0). Without ACPI the machine runs on the BSP alone.
    static func discover() {
      guard let rsdp = findRSDP() else {
        Console.log("acpi: no RSDP found; running on the BSP only")
        return
      }
      let revision = rsdp.u8(15)
      let useXSDT = revision >= 2 && rsdp.u64(24) != 0
      let rootAddress = useXSDT ? rsdp.u64(24) : UInt64(rsdp.u32(16))
      guard let root = table(at: rootAddress, signature: useXSDT ? "XSDT" : "RSDT") else {
        Console.log("acpi: bad root table at \(hex: rootAddress)")
        return
      }
      Console.detail(
        "acpi: RSDP rev \(revision) -> \(useXSDT ? "XSDT" : "RSDT") at \(hex: rootAddress)")
      let entrySize = useXSDT ? 8 : 4
      var offset = headerSize
      var sawMADT = false
      while offset + entrySize <= root.length {
        let address = useXSDT ? root.u64(offset) : UInt64(root.u32(offset))
        offset += entrySize
        if let madt = table(at: address, signature: "APIC") {
          parseMADT(madt)
          sawMADT = true
        } else if let fadt = table(at: address, signature: "FACP") {
          parseFADT(fadt)
        }
      }
      if !sawMADT { Console.log("acpi: no MADT; running on the BSP only") }
    }

    /// Scans the EBDA's first KiB and the BIOS area for a checksummed "RSD PTR ".
    static func findRSDP() -> PhysicalMemory? {
      if let bda = PhysicalMemory(UInt64(0x40E), length: 2) {
        let ebda = UInt64(bda.u16(0)) << 4
        if ebda >= 0x8_0000, ebda < 0xA_0000, let found = scan(ebda, length: 1024) { return found }
      }
      return scan(0xE_0000, length: 0x2_0000)
    }

    /// Looks for the RSDP on 16-byte boundaries in [start, start + length).
    static func scan(_ start: UInt64, length: UInt64) -> PhysicalMemory? {
      guard let area = PhysicalMemory(start, length: length) else { return nil }
      var offset = 0
      while offset + 20 <= area.length {
        if area.matches("RSD PTR ", at: offset), area.checksum(offset, 20) == 0 {
          let rsdp = PhysicalMemory(start + UInt64(offset), length: 36)
          if let rsdp, rsdp.u8(15) < 2 || rsdp.checksum(0, Int(min(rsdp.u32(20), 36))) == 0 {
            return rsdp
          }
        }
        offset += 16
      }
      return nil
    }

    /// The table at `address` if it has `signature`, a sane length and a valid checksum.
    static func table(at address: UInt64, signature: StaticString) -> PhysicalMemory? {
      guard let header = PhysicalMemory(address, length: UInt64(headerSize)),
        header.matches(signature, at: 0)
      else { return nil }
      let length = UInt64(header.u32(4))
      guard length >= UInt64(headerSize), length <= maxTableSize,
        let t = PhysicalMemory(address, length: length), t.checksum(0, t.length) == 0
      else { return nil }
      return t
    }

    /// Registers the CPUs of the MADT and takes the LAPIC address.
    static func parseMADT(_ madt: PhysicalMemory) {
      LAPIC.base = UInt64(madt.u32(36))
      let bspAPIC = LCPU.record(0).pointee.apic_id
      var offset = 44
      var skipped = 0
      while offset + 2 <= madt.length {
        let type = madt.u8(offset)
        let length = Int(madt.u8(offset + 1))
        guard length >= 2, offset + length <= madt.length else { break }
        var apicID: UInt32? = nil
        var flags: UInt32 = 0
        switch type {
        case 0 where length >= 8:  // processor local APIC
          apicID = UInt32(madt.u8(offset + 3))
          flags = madt.u32(offset + 4)
        case 9 where length >= 16:  // processor local x2APIC
          apicID = madt.u32(offset + 4)
          flags = madt.u32(offset + 8)
        case 5 where length >= 12:  // local APIC address override
          LAPIC.base = madt.u64(offset + 4)
        default:
          break
        }
        offset += length
        // Enabled (bit 0) or online-capable (bit 1); the BSP is lcpu 0 already.
        guard let id = apicID, flags & 3 != 0, id != bspAPIC else { continue }
        if LCPU.register(apicID: id) == nil { skipped += 1 }
      }
      Console.log("acpi: MADT lapic \(hex: LAPIC.base), \(LCPU.count) lcpus")
      if skipped > 0 {
        Console.log("acpi: \(skipped) more CPUs ignored (limit \(SMPTOP_MAX_LCPUS) or APIC id >= 255)")
      }
    }

    /// Takes the PM1a control port from the FADT.
    static func parseFADT(_ fadt: PhysicalMemory) {
      let port = fadt.u32(64)
      if port != 0, port <= 0xFFFF { pm1aControlPort = UInt16(port) }
    }
  }
#endif
