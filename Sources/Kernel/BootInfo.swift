// BootInfo: what QEMU's multiboot loader hands over in %ebx: the command line (the kernel
// path, then -append) and the BIOS memory map. The structure is read defensively: every
// pointer is checked against the identity-mapped range before use.

#if SMP_GUEST
  import KernelSupport

  /// The multiboot information structure.
  enum BootInfo {
    /// %eax at entry when a multiboot loader started the kernel.
    static let multibootMagic: UInt32 = 0x2BAD_B002

    /// Copies the command line into the root and sums the usable RAM.
    static func read() {
      guard boot_multiboot_magic() == multibootMagic,
        let info = PhysicalMemory(boot_multiboot_info(), length: 52)
      else {
        Console.log("boot: not started by a multiboot loader; no command line, no memory map")
        return
      }
      let flags = info.u32(0)
      if flags & (1 << 2) != 0 { copyCommandLine(from: UInt64(info.u32(16))) }
      var ram: UInt64 = 0
      if flags & (1 << 6) != 0 {
        ram = usableRAM(map: UInt64(info.u32(48)), length: UInt64(info.u32(44)))
      }
      if ram == 0 && flags & 1 != 0 {
        ram = (UInt64(info.u32(8)) + 1024) * 1024  // mem_upper is in KiB above 1 MiB
      }
      Inspect.root.pointee.ram_bytes = ram
    }

    /// Copies the -append part (after the kernel path) of the multiboot command line.
    static func copyCommandLine(from address: UInt64) {
      guard let line = PhysicalMemory(address, length: 4096) else { return }
      let out = abi_root_cmdline()
      let capacity = Int(SMPTOP_CMDLINE_BYTES) - 1
      var i = 0
      while i < 4096, line.u8(i) != 0, line.u8(i) != UInt8(ascii: " ") { i += 1 }  // the path
      while i < 4096, line.u8(i) == UInt8(ascii: " ") { i += 1 }
      var n = 0
      while i < 4096, n < capacity, line.u8(i) != 0 {
        out[n] = CChar(bitPattern: line.u8(i))
        n += 1
        i += 1
      }
      out[n] = 0
    }

    /// Sums the type-1 (available) ranges of a multiboot memory map.
    static func usableRAM(map: UInt64, length: UInt64) -> UInt64 {
      guard let m = PhysicalMemory(map, length: length) else { return 0 }
      var total: UInt64 = 0
      var offset = 0
      while offset + 24 <= Int(length) {
        let size = Int(m.u32(offset))
        if m.u32(offset + 20) == 1 { total &+= m.u64(offset + 12) }
        guard size >= 20 else { break }
        offset += size + 4
      }
      return total
    }
  }

  /// A bounds-checked window on identity-mapped physical memory below 4 GiB, for reading
  /// structures firmware and boot loaders left there.
  struct PhysicalMemory {
    /// Largest address the kernel maps.
    static let limit: UInt64 = 0x1_0000_0000
    private let base: UnsafeRawPointer
    /// Length of the window in bytes.
    let length: Int

    /// A window of `length` bytes at `address`, or nil when it is null or not mapped.
    init?(_ address: UInt64, length: UInt64) {
      guard address >= 0x400, length <= Self.limit, address < Self.limit - length,
        let p = UnsafeRawPointer(bitPattern: UInt(address))
      else { return nil }
      base = p
      self.length = Int(length)
    }

    /// Convenience for 32-bit addresses.
    init?(_ address: UInt32, length: UInt64) { self.init(UInt64(address), length: length) }

    /// The byte at `offset`, 0 outside the window.
    func u8(_ offset: Int) -> UInt8 {
      guard offset >= 0, offset < length else { return 0 }
      return base.load(fromByteOffset: offset, as: UInt8.self)
    }
    /// The little-endian 16-bit word at `offset`, 0 outside the window.
    func u16(_ offset: Int) -> UInt16 {
      guard offset >= 0, offset + 2 <= length else { return 0 }
      return base.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
    }
    /// The little-endian 32-bit word at `offset`, 0 outside the window.
    func u32(_ offset: Int) -> UInt32 {
      guard offset >= 0, offset + 4 <= length else { return 0 }
      return base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    }
    /// The little-endian 64-bit word at `offset`, 0 outside the window.
    func u64(_ offset: Int) -> UInt64 {
      guard offset >= 0, offset + 8 <= length else { return 0 }
      return base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }
    /// Whether the 4 bytes at `offset` spell `signature` (ASCII).
    func matches(_ signature: StaticString, at offset: Int) -> Bool {
      signature.withUTF8Buffer { sig in
        for i in 0..<sig.count where u8(offset + i) != sig[i] { return false }
        return true
      }
    }
    /// The 8-bit sum of `count` bytes from `offset` (ACPI tables sum to 0).
    func checksum(_ offset: Int, _ count: Int) -> UInt8 {
      var sum: UInt8 = 0
      for i in 0..<count { sum &+= u8(offset + i) }
      return sum
    }
  }
#endif
