// PCI: configuration mechanism #1 (ports 0xCF8/0xCFC). A function is named by its bdf,
// bus << 8 | device << 3 | function (the ABI's pci_bdf). Only what the virtio driver needs:
// config reads/writes, BAR decoding, the capability list and a bus scan.

#if SMP_GUEST
  import KernelSupport

  /// PCI configuration space access and enumeration.
  enum PCI {
    static let addressPort: UInt16 = 0xCF8
    static let dataPort: UInt16 = 0xCFC

    private static func select(_ bdf: UInt32, _ reg: UInt32) {
      pci_outl(addressPort, 0x8000_0000 | (bdf & 0xFFFF) << 8 | (reg & 0xFC))
    }

    /// Reads the 32-bit register at `reg` (4-byte aligned).
    static func read32(_ bdf: UInt32, _ reg: UInt32) -> UInt32 {
      select(bdf, reg)
      return pci_inl(dataPort)
    }

    /// Reads a 16-bit field.
    static func read16(_ bdf: UInt32, _ reg: UInt32) -> UInt16 {
      UInt16(truncatingIfNeeded: read32(bdf, reg) >> ((reg & 2) * 8))
    }

    /// Reads an 8-bit field.
    static func read8(_ bdf: UInt32, _ reg: UInt32) -> UInt8 {
      UInt8(truncatingIfNeeded: read32(bdf, reg) >> ((reg & 3) * 8))
    }

    /// Writes a 16-bit field.
    static func write16(_ bdf: UInt32, _ reg: UInt32, _ value: UInt16) {
      select(bdf, reg)
      pci_outw(dataPort + UInt16(reg & 2), value)
    }

    /// Writes a 32-bit register.
    static func write32(_ bdf: UInt32, _ reg: UInt32, _ value: UInt32) {
      select(bdf, reg)
      pci_outl(dataPort, value)
    }

    /// The memory address BAR `index` decodes (64-bit BARs combine with the next one);
    /// 0 for I/O or unassigned BARs.
    static func barAddress(_ bdf: UInt32, _ index: UInt32) -> UInt64 {
      guard index < 6 else { return 0 }
      let low = read32(bdf, 0x10 + 4 * index)
      if low & 1 != 0 { return 0 }  // I/O space
      var address = UInt64(low & ~0xF)
      if (low >> 1) & 3 == 2, index < 5 {
        address |= UInt64(read32(bdf, 0x10 + 4 * (index + 1))) << 32
      }
      return address
    }

    /// Offsets of the capabilities in the list (empty when the status bit is clear).
    static func forEachCapability(_ bdf: UInt32, _ body: (_ offset: UInt32, _ id: UInt8) -> Void) {
      guard read16(bdf, 0x06) & 0x10 != 0 else { return }
      var ptr = UInt32(read8(bdf, 0x34) & 0xFC)
      var guardCount = 0
      while ptr >= 0x40, guardCount < 48 {
        body(ptr, read8(bdf, ptr))
        ptr = UInt32(read8(bdf, ptr + 1) & 0xFC)
        guardCount += 1
      }
    }

    /// Calls `body(bdf, vendor, device)` for every function present on every bus.
    static func scan(_ body: (_ bdf: UInt32, _ vendor: UInt16, _ device: UInt16) -> Void) {
      for bus in UInt32(0)..<256 {
        for dev in UInt32(0)..<32 {
          let bdf0 = bus << 8 | dev << 3
          let id0 = read32(bdf0, 0)
          if id0 & 0xFFFF == 0xFFFF { continue }
          let multi = read8(bdf0, 0x0E) & 0x80 != 0
          for fn in UInt32(0)..<(multi ? 8 : 1) {
            let bdf = bdf0 | fn
            let id = fn == 0 ? id0 : read32(bdf, 0)
            if id & 0xFFFF == 0xFFFF { continue }
            body(bdf, UInt16(truncatingIfNeeded: id), UInt16(truncatingIfNeeded: id >> 16))
          }
        }
      }
    }
  }
#endif
