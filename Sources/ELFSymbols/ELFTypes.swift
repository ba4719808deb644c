/// The ELF file header (`Elf64_Ehdr`).
public struct ELFHeader: Sendable, Hashable {
  /// `e_type`: 1 relocatable, 2 executable, 3 shared object / PIE, 4 core.
  public var fileType: UInt16
  /// `e_machine`: 62 is x86-64, 183 AArch64.
  public var machine: UInt16
  /// `EI_OSABI`.
  public var osABI: UInt8
  /// `e_entry`.
  public var entry: UInt64
  /// `e_flags`.
  public var flags: UInt32
  /// Table positions as found in the header.
  public var programHeaderOffset: UInt64
  public var sectionHeaderOffset: UInt64
  /// The real counts and section-name table index (after extended numbering).
  public var programHeaderCount: Int
  public var sectionHeaderCount: Int
  public var sectionNameTableIndex: Int

  public static let machineX86_64: UInt16 = 62
}

/// A section header (`Elf64_Shdr`) with its name resolved.
public struct ELFSection: Sendable, Hashable {
  /// Section types this reader cares about (`sh_type`).
  public static let typeNull: UInt32 = 0
  public static let typeProgBits: UInt32 = 1
  public static let typeSymTab: UInt32 = 2
  public static let typeStrTab: UInt32 = 3
  public static let typeNote: UInt32 = 7
  public static let typeNoBits: UInt32 = 8
  public static let typeDynSym: UInt32 = 11
  public static let typeSymTabShndx: UInt32 = 18
  /// `SHF_ALLOC`: occupies memory at run time.
  public static let flagAlloc: UInt64 = 0x2
  /// `SHF_WRITE`, `SHF_EXECINSTR`.
  public static let flagWrite: UInt64 = 0x1
  public static let flagExecInstr: UInt64 = 0x4

  public var index: Int
  public var name: String
  public var type: UInt32
  public var flags: UInt64
  public var address: UInt64
  public var offset: UInt64
  public var size: UInt64
  public var link: UInt32
  public var info: UInt32
  public var addressAlignment: UInt64
  public var entrySize: UInt64

  /// Whether the section is loaded into memory (SHF_ALLOC).
  public var isAllocated: Bool { flags & Self.flagAlloc != 0 }
  /// Whether the section has bytes in the file (not SHT_NOBITS / SHT_NULL).
  public var hasFileBytes: Bool { type != Self.typeNoBits && type != Self.typeNull }
  /// The virtual address range (clamped if it would wrap).
  public var addressRange: Range<UInt64> {
    let (end, overflow) = address.addingReportingOverflow(size)
    return address..<(overflow ? UInt64.max : end)
  }
}

/// A program header (`Elf64_Phdr`): a segment the loader maps.
public struct ELFProgramHeader: Sendable, Hashable {
  public static let typeLoad: UInt32 = 1
  public static let typeNote: UInt32 = 4

  public var type: UInt32
  public var flags: UInt32
  public var offset: UInt64
  public var virtualAddress: UInt64
  public var physicalAddress: UInt64
  public var fileSize: UInt64
  public var memorySize: UInt64
  public var alignment: UInt64

  /// Whether this is a PT_LOAD segment.
  public var isLoad: Bool { type == Self.typeLoad }
}

/// A symbol table entry (`Elf64_Sym`) with its name resolved.
public struct ELFSymbol: Sendable, Hashable {
  /// `STT_*` (low 4 bits of st_info).
  public struct SymbolType: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let notype = SymbolType(rawValue: 0)
    public static let object = SymbolType(rawValue: 1)
    public static let function = SymbolType(rawValue: 2)
    public static let section = SymbolType(rawValue: 3)
    public static let file = SymbolType(rawValue: 4)
    public static let common = SymbolType(rawValue: 5)
    public static let tls = SymbolType(rawValue: 6)
    public static let gnuIFunc = SymbolType(rawValue: 10)
  }

  /// `STB_*` (high 4 bits of st_info).
  public struct Binding: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let local = Binding(rawValue: 0)
    public static let global = Binding(rawValue: 1)
    public static let weak = Binding(rawValue: 2)
    public static let gnuUnique = Binding(rawValue: 10)
  }

  /// Special section indexes.
  public static let sectionUndefined: UInt32 = 0
  public static let sectionAbsolute: UInt32 = 0xFFF1
  public static let sectionCommon: UInt32 = 0xFFF2

  public var name: String
  public var value: UInt64
  public var size: UInt64
  public var type: SymbolType
  public var binding: Binding
  /// `st_other & 3`: 0 default, 1 internal, 2 hidden, 3 protected.
  public var visibility: UInt8
  /// The section index, with SHN_XINDEX already resolved through `.symtab_shndx`.
  public var sectionIndex: UInt32

  /// Whether the symbol is defined in this file.
  public var isDefined: Bool { sectionIndex != Self.sectionUndefined }
}

/// An ELF note (`Elf64_Nhdr` + name + descriptor).
public struct ELFNote: Sendable, Hashable {
  public static let typeGNUBuildID: UInt32 = 3

  public var name: String
  public var type: UInt32
  public var descriptor: [UInt8]
}
