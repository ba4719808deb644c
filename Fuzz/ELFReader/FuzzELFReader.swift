/// libFuzzer entry: an ELF file, read the way smptop reads a guest kernel: headers, sections,
/// symbols, address lookups and bytes at virtual addresses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard let elf = try? ELFFile(bytes: bytes) else { return 0 }
  for name in [".text", ".rodata", ".symtab", ".data", ".bss"] {
    if let section = elf.section(named: name) { _ = try? elf.data(of: section) }
    _ = elf.bounds(ofSection: name)
  }
  _ = elf.address(of: "smptop_root")
  for address: UInt64 in [0, 0x10_0000, 0x10_1000, 0xffff_ffff_ffff_fff0] {
    if let match = elf.lookup(address) { _ = match.formatted() }
    _ = elf.loadSegment(containing: address)
    _ = try? elf.bytes(atVirtualAddress: address, count: 64)
  }
  return 0
}
