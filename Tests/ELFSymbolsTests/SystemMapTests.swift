import ELFSymbols
import Testing

/// The System.map reader and its lookups, on a small map in the format Linux writes.
struct SystemMapTests {
  static let map = """
    0000000000000000 D __per_cpu_start
    0000000000001000 D cpu_number
    ffffffff81000000 T _stext
    ffffffff81000000 T _text
    ffffffff81000000 T startup_64
    ffffffff81000070 T secondary_startup_64
    ffffffff81001000 t early_setup_idt
    ffffffff81001040 T do_one_initcall
    ffffffff81002000 W arch_cpu_idle
    ffffffff81e00000 R __start_rodata
    ffffffff81e00010 r linux_banner
    ffffffff82000000 A __end_of_kernel_reserve
    ffffffff82400000 B __bss_start
    ffffffff82400100 b static_buffer
                     U undefined_thing
    ffffffffa0000000 t ext4_fill_super\t[ext4]

    """

  @Test func lookupsGiveTheNearestSymbolAndOffset() throws {
    let symbols = try SystemMap(
      text: Self.map.replacingOccurrences(of: "                 U", with: "0000000000000000 U"))
    #expect(symbols.lookup(0xFFFF_FFFF_8100_0000)?.description == "_stext")
    #expect(symbols.lookup(0xFFFF_FFFF_8100_0075)?.description == "secondary_startup_64+0x5")
    #expect(symbols.lookup(0xFFFF_FFFF_8100_1039)?.description == "early_setup_idt+0x39")
    #expect(symbols.lookup(0xFFFF_FFFF_8100_1040)?.name == "do_one_initcall")
    #expect(symbols.lookup(0xFFFF_FFFF_8100_2004)?.description == "arch_cpu_idle+0x4")
    #expect(symbols.lookup(0xFFFF_FFFF_81E0_0018)?.description == "linux_banner+0x8")
    #expect(symbols.lookup(0xFFFF_FFFF_8240_0180)?.description == "static_buffer+0x80")
    #expect(symbols.lookup(0xFFFF_FFFF_A000_0010)?.description == "ext4_fill_super+0x10")
    // Sizes are unknown in a System.map.
    #expect(symbols.lookup(0xFFFF_FFFF_8100_0001)?.size == nil)
    #expect(symbols.lookup(0xFFFF_FFFF_8100_0001)?.isWithinSymbol == false)
    // Absolute symbols are not locations: 0xffffffff82000010 belongs to the text before it.
    #expect(symbols.lookup(0xFFFF_FFFF_8200_0010)?.name == "linux_banner")
  }

  @Test func namesResolveToAddresses() throws {
    let symbols = try SystemMap(text: "ffffffff81000000 T _stext\nffffffff81000070 T secondary_startup_64\n")
    #expect(symbols.address(of: "secondary_startup_64") == 0xFFFF_FFFF_8100_0070)
    #expect(symbols.address(of: "nope") == nil)
    #expect(symbols.lookup(0xFFFF_FFFF_80FF_FFFF) == nil)  // below the first symbol
  }

  @Test func modulesAreKept() throws {
    let symbols = try SystemMap(text: "ffffffffa0000000 t ext4_fill_super\t[ext4]\n")
    #expect(symbols.entries.first?.module == "ext4")
    #expect(symbols.entries.first?.type == "t")
  }

  @Test func aGlobalDefinitionWinsOverALocalOfTheSameName() throws {
    let symbols = try SystemMap(
      text: "ffffffff81000100 t setup\nffffffff81000200 T setup\nffffffff81000300 t setup\n")
    #expect(symbols.address(of: "setup") == 0xFFFF_FFFF_8100_0200)
  }

  @Test(arguments: [
    "ffffffff81000000 T", "zzzz T _stext", "ffffffff81000000 TT _stext", "11ffffffff81000000 T _stext",
    "ffffffff81000000 T a b c", "ffffffff81000000 T name module",
  ])
  func malformedLinesAreErrorsNamingTheLine(line: String) {
    #expect {
      _ = try SystemMap(text: "ffffffff81000000 T _stext\n" + line + "\n")
    } throws: { error in
      let error = error as? ELFError
      return error?.code == .malformed && error?.message.contains("line 2") == true
    }
  }

  @Test func anEmptyMapIsAnError() {
    #expect(throws: ELFError.self) { _ = try SystemMap(text: "\n\n") }
  }

  @Test func aSlideMovesEveryAddress() throws {
    let map = try SystemMap(text: "ffffffff81000000 T _stext\nffffffff81000070 T secondary_startup_64\n")
    let slid = SlidSymbolLookup(map, slide: 0x1E0_0000)  // a KASLR offset
    #expect(slid.address(of: "_stext") == 0xFFFF_FFFF_82E0_0000)
    let match = try #require(slid.lookup(0xFFFF_FFFF_82E0_0074))
    #expect(match.description == "secondary_startup_64+0x4")
    #expect(match.address == 0xFFFF_FFFF_82E0_0070)
    #expect(slid.lookup(0xFFFF_FFFF_8100_0074) == nil)  // the unslid address is below every symbol
    let down = SlidSymbolLookup(map, slide: UInt64(bitPattern: -0x1000))
    #expect(down.address(of: "_stext") == 0xFFFF_FFFF_80FF_F000)
  }

  @Test func bothReadersWorkBehindTheProtocol() throws {
    let tiny = try ELFFile(bytes: try TinyELF.build().bytes)
    let compute = try #require(tiny.address(of: "compute"))
    let map = try SystemMap(text: String(compute, radix: 16) + " T compute\n")
    let lookups: [any SymbolLookup] = [tiny, map]
    for lookup in lookups {
      #expect(lookup.address(of: "compute") == compute)
      #expect(lookup.lookup(compute + 3)?.description == "compute+0x3")
    }
  }
}

extension String {
  fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
    split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
  }
}
