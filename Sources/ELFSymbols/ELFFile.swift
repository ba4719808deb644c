import Glibc

/// A 64-bit little-endian ELF file: headers, sections, segments, symbols and notes, with
/// symbol lookups by name and by address.
///
/// The reader treats its input as hostile: every offset, size and count is checked against the
/// file and for arithmetic overflow, and anything inconsistent is reported as an `ELFError`
/// (`.truncated`, `.malformed`, ...). Only the tables it needs are parsed eagerly: section and
/// program headers, `.symtab`, `.dynsym` and notes. The value is immutable and `Sendable`.
public struct ELFFile: Sendable {
  /// The file header.
  public let header: ELFHeader
  /// All sections, in file order (index 0 is the null section).
  public let sections: [ELFSection]
  /// All program headers (segments).
  public let programHeaders: [ELFProgramHeader]
  /// The `.symtab` entries (index 0, the null symbol, is omitted).
  public let symbols: [ELFSymbol]
  /// The `.dynsym` entries (index 0 omitted).
  public let dynamicSymbols: [ELFSymbol]
  /// Notes from SHT_NOTE sections, or from PT_NOTE segments when there are no section headers.
  public let notes: [ELFNote]

  private let reader: ByteReader
  let addressIndex: AddressIndex
  private let byName: [String: [Int]]  // indexes into symbols + dynamicSymbols

  /// Reads and parses the file at `path`.
  public init(path: String) throws(ELFError) {
    try self.init(bytes: try Self.readFile(path))
  }

  /// Parses an ELF image held in memory.
  public init(bytes: [UInt8]) throws(ELFError) {
    let reader = ByteReader(bytes)
    self.reader = reader
    let header = try Self.parseHeader(reader)
    let sections = try Self.parseSections(reader, header: header)
    self.header = header
    self.sections = sections
    programHeaders = try Self.parseProgramHeaders(reader, header: header)

    var symbols: [ELFSymbol] = []
    var dynamicSymbols: [ELFSymbol] = []
    for section in sections
    where section.type == ELFSection.typeSymTab || section.type == ELFSection.typeDynSym {
      let parsed = try Self.parseSymbols(reader, table: section, sections: sections)
      if section.type == ELFSection.typeSymTab { symbols += parsed } else { dynamicSymbols += parsed }
    }
    self.symbols = symbols
    self.dynamicSymbols = dynamicSymbols
    notes = try Self.parseNotes(reader, sections: sections, segments: programHeaders)

    let all = symbols + dynamicSymbols
    var byName: [String: [Int]] = [:]
    for (index, symbol) in all.enumerated() where !symbol.name.isEmpty {
      byName[symbol.name, default: []].append(index)
    }
    self.byName = byName
    addressIndex = AddressIndex(
      all.compactMap { symbol in
        guard Self.isAddressSymbol(symbol) else { return nil }
        var rank = 0
        if symbol.size > 0 { rank += 4 }
        if symbol.type == .function || symbol.type == .object || symbol.type == .gnuIFunc { rank += 2 }
        if symbol.binding != .local { rank += 1 }
        return AddressIndex.Entry(address: symbol.value, size: symbol.size, name: symbol.name, rank: rank)
      })
  }

  /// Whether a symbol names a code or data location (not a file, section, TLS offset, absolute
  /// constant, undefined reference, or assembler-local label).
  static func isAddressSymbol(_ symbol: ELFSymbol) -> Bool {
    guard symbol.isDefined, !symbol.name.isEmpty, symbol.sectionIndex != ELFSymbol.sectionCommon else {
      return false
    }
    switch symbol.type {
    case .function, .object, .gnuIFunc: break
    case .notype: if symbol.sectionIndex == ELFSymbol.sectionAbsolute { return false }
    default: return false
    }
    if symbol.name.hasPrefix(".L") { return false }
    // ARM/AArch64 mapping symbols ($x, $d, $t, $a, optionally with a suffix); not Swift's $s/$e.
    let utf8 = Array(symbol.name.utf8.prefix(3))
    if utf8.count >= 2, utf8[0] == UInt8(ascii: "$"),
      [
        UInt8(ascii: "x"), UInt8(ascii: "d"), UInt8(ascii: "t"),
        UInt8(ascii: "a"),
      ].contains(utf8[1]), utf8.count == 2 || utf8[2] == UInt8(ascii: ".")
    {
      return false
    }
    return true
  }

  // MARK: Queries

  /// The section called `name`, if any.
  public func section(named name: String) -> ELFSection? {
    sections.first { $0.name == name }
  }

  /// The bytes of a section (empty for SHT_NOBITS).
  public func data(of section: ELFSection) throws(ELFError) -> ArraySlice<UInt8> {
    guard section.hasFileBytes else { return [] }
    return reader.bytes[
      try reader.range(offset: section.offset, size: section.size, what: "section \(section.name)")]
  }

  /// The GNU build-id (`NT_GNU_BUILD_ID` note), if present.
  public var buildID: [UInt8]? {
    notes.first { $0.name == "GNU" && $0.type == ELFNote.typeGNUBuildID }?.descriptor
  }

  /// The build-id as lowercase hex, as `llvm-readelf -n` and `file` print it.
  public var buildIDHex: String? {
    buildID.map { $0.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
  }

  /// Every symbol (`.symtab` then `.dynsym`) called `name`.
  public func symbols(named name: String) -> [ELFSymbol] {
    let all = symbols.count
    return (byName[name] ?? []).map { $0 < all ? symbols[$0] : dynamicSymbols[$0 - all] }
  }

  /// The bounds the linker gives a custom section through `__start_NAME` / `__stop_NAME`.
  public func bounds(ofSection name: String) -> Range<UInt64>? {
    guard let start = address(of: "__start_" + name), let stop = address(of: "__stop_" + name),
      start <= stop
    else { return nil }
    return start..<stop
  }

  /// The segment (PT_LOAD) whose memory image contains `address`.
  public func loadSegment(containing address: UInt64) -> ELFProgramHeader? {
    programHeaders.first { segment in
      guard segment.isLoad, address >= segment.virtualAddress else { return false }
      return address - segment.virtualAddress < segment.memorySize
    }
  }

  /// The file's bytes at virtual addresses `address ..< address + count`, read through the
  /// allocated section that holds them, or else through a PT_LOAD segment's file image — so a
  /// caller can compare guest memory with, say, `.rodata`.
  /// - Throws: `.addressNotInFile` when no section or segment backs the whole range with file
  ///   bytes (for example `.bss`), `.truncated` when the file is shorter than its headers claim.
  public func bytes(atVirtualAddress address: UInt64, count: Int) throws(ELFError) -> [UInt8] {
    guard count >= 0 else { throw ELFError(.addressNotInFile, "negative byte count \(count)") }
    let size = UInt64(count)
    let (end, overflow) = address.addingReportingOverflow(size)
    guard !overflow else {
      throw ELFError(.addressNotInFile, "the range at 0x\(String(address, radix: 16)) wraps")
    }
    for section in sections where section.isAllocated && section.hasFileBytes && section.size > 0 {
      guard address >= section.address, end <= section.addressRange.upperBound,
        section.addressRange.upperBound - section.address == section.size
      else { continue }
      let (offset, overflow) = section.offset.addingReportingOverflow(address - section.address)
      guard !overflow else { continue }
      return Array(
        reader.bytes[try reader.range(offset: offset, size: size, what: "section \(section.name)")])
    }
    for segment in programHeaders where segment.isLoad && address >= segment.virtualAddress {
      let start = address - segment.virtualAddress
      guard start <= segment.fileSize, size <= segment.fileSize - start else { continue }
      let (offset, overflow) = segment.offset.addingReportingOverflow(start)
      guard !overflow else { continue }
      return Array(reader.bytes[try reader.range(offset: offset, size: size, what: "a PT_LOAD segment")])
    }
    throw ELFError(
      .addressNotInFile,
      "no section or segment holds file bytes for 0x\(String(address, radix: 16))..<0x\(String(end, radix: 16))"
    )
  }

  // MARK: Parsing

  /// The largest file `init(path:)` reads (1 GiB).
  public static let maximumFileSize = 1 << 30

  static func readFile(_ path: String) throws(ELFError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ELFError(.io, "cannot open \(path)", errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw ELFError(.io, "cannot stat \(path)", errno: errno) }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw ELFError(.io, "\(path) is not a regular file") }
    guard info.st_size <= Int64(maximumFileSize) else {
      throw ELFError(.io, "\(path) is \(info.st_size) bytes, more than the \(maximumFileSize)-byte limit")
    }
    let size = Int(info.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
      let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress.map { $0 + done }, size - done) }
      if count < 0 && errno == EINTR { continue }
      guard count >= 0 else { throw ELFError(.io, "cannot read \(path)", errno: errno) }
      if count == 0 { break }  // the file shrank while reading
      done += count
    }
    return Array(bytes[0..<done])
  }

  static func parseHeader(_ reader: ByteReader) throws(ELFError) -> ELFHeader {
    guard reader.count >= 16, reader.bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else {
      throw ELFError(.notELF, "not an ELF file (no \\x7fELF magic)")
    }
    guard reader.u8(4) == 2 else {
      throw ELFError(.unsupported, "only 64-bit ELF is supported (EI_CLASS = \(reader.u8(4)))")
    }
    guard reader.u8(5) == 1 else {
      throw ELFError(.unsupported, "only little-endian ELF is supported (EI_DATA = \(reader.u8(5)))")
    }
    guard reader.count >= 64 else {
      throw ELFError(.truncated, "the ELF header needs 64 bytes, the file has \(reader.count)")
    }
    var header = ELFHeader(
      fileType: reader.u16(16), machine: reader.u16(18), osABI: reader.u8(7), entry: reader.u64(24),
      flags: reader.u32(48), programHeaderOffset: reader.u64(32), sectionHeaderOffset: reader.u64(40),
      programHeaderCount: Int(reader.u16(56)), sectionHeaderCount: Int(reader.u16(60)),
      sectionNameTableIndex: Int(reader.u16(62)))
    let phentsize = reader.u16(54)
    let shentsize = reader.u16(58)

    // Extended numbering keeps the real counts in section 0.
    let needsSection0 =
      header.sectionHeaderOffset != 0
      && (header.sectionHeaderCount == 0 || header.sectionNameTableIndex == 0xFFFF
        || header.programHeaderCount == 0xFFFF)
    if needsSection0 {
      guard shentsize == 64 else { throw ELFError(.malformed, "e_shentsize is \(shentsize), expected 64") }
      let zero = try reader.range(offset: header.sectionHeaderOffset, size: 64, what: "section header 0")
      if header.sectionHeaderCount == 0 {
        let count = reader.u64(zero.lowerBound + 32)
        guard count <= UInt64(reader.count / 64) else {
          throw ELFError(.truncated, "section 0 claims \(count) section headers, more than the file can hold")
        }
        header.sectionHeaderCount = Int(count)
      }
      if header.sectionNameTableIndex == 0xFFFF {
        header.sectionNameTableIndex = Int(reader.u32(zero.lowerBound + 40))
      }
      if header.programHeaderCount == 0xFFFF {
        header.programHeaderCount = Int(reader.u32(zero.lowerBound + 44))
      }
    }
    if header.sectionHeaderCount > 0 && shentsize != 64 {
      throw ELFError(.malformed, "e_shentsize is \(shentsize), expected 64")
    }
    if header.programHeaderCount > 0 && phentsize != 56 {
      throw ELFError(.malformed, "e_phentsize is \(phentsize), expected 56")
    }
    if header.sectionHeaderCount == 0 { header.sectionNameTableIndex = 0 }
    return header
  }

  static func parseSections(_ reader: ByteReader, header: ELFHeader) throws(ELFError) -> [ELFSection] {
    let count = header.sectionHeaderCount
    guard count > 0 else { return [] }
    let table = try reader.range(
      offset: header.sectionHeaderOffset,
      size: try ByteReader.product(UInt64(count), 64, what: "section header table"),
      what: "the section header table (\(count) entries)")
    var sections: [ELFSection] = []
    sections.reserveCapacity(count)
    var nameOffsets: [UInt32] = []
    for index in 0..<count {
      let base = table.lowerBound + index * 64
      nameOffsets.append(reader.u32(base))
      sections.append(
        ELFSection(
          index: index, name: "", type: reader.u32(base + 4), flags: reader.u64(base + 8),
          address: reader.u64(base + 16), offset: reader.u64(base + 24), size: reader.u64(base + 32),
          link: reader.u32(base + 40), info: reader.u32(base + 44), addressAlignment: reader.u64(base + 48),
          entrySize: reader.u64(base + 56)))
    }
    let nameIndex = header.sectionNameTableIndex
    guard nameIndex != 0 else { return sections }  // SHN_UNDEF: sections have no names
    guard nameIndex < count else {
      throw ELFError(.malformed, "e_shstrndx \(nameIndex) is not a section (there are \(count))")
    }
    let nameTable = sections[nameIndex]
    guard nameTable.type == ELFSection.typeStrTab else {
      throw ELFError(.malformed, "the section-name table (section \(nameIndex)) is not a string table")
    }
    let names = try reader.range(
      offset: nameTable.offset, size: nameTable.size, what: "the section-name table")
    for index in sections.indices {
      sections[index].name = try reader.string(
        in: names, at: UInt64(nameOffsets[index]), what: "the name of section \(index)")
    }
    return sections
  }

  static func parseProgramHeaders(_ reader: ByteReader, header: ELFHeader) throws(ELFError)
    -> [ELFProgramHeader]
  {
    let count = header.programHeaderCount
    guard count > 0 else { return [] }
    let table = try reader.range(
      offset: header.programHeaderOffset,
      size: try ByteReader.product(UInt64(count), 56, what: "program header table"),
      what: "the program header table (\(count) entries)")
    return (0..<count).map { index in
      let base = table.lowerBound + index * 56
      return ELFProgramHeader(
        type: reader.u32(base), flags: reader.u32(base + 4), offset: reader.u64(base + 8),
        virtualAddress: reader.u64(base + 16), physicalAddress: reader.u64(base + 24),
        fileSize: reader.u64(base + 32), memorySize: reader.u64(base + 40), alignment: reader.u64(base + 48))
    }
  }

  static func parseSymbols(_ reader: ByteReader, table: ELFSection, sections: [ELFSection]) throws(ELFError)
    -> [ELFSymbol]
  {
    let what = "symbol table \(table.name.isEmpty ? "#\(table.index)" : table.name)"
    guard table.entrySize == 24 else {
      throw ELFError(.malformed, "\(what): entry size is \(table.entrySize), expected 24")
    }
    guard table.size % 24 == 0 else {
      throw ELFError(.malformed, "\(what): size \(table.size) is not a multiple of 24")
    }
    let entries = try reader.range(offset: table.offset, size: table.size, what: what)
    guard Int(table.link) < sections.count, table.link != 0,
      sections[Int(table.link)].type == ELFSection.typeStrTab
    else {
      throw ELFError(.malformed, "\(what): sh_link \(table.link) is not a string table")
    }
    let stringSection = sections[Int(table.link)]
    let strings = try reader.range(
      offset: stringSection.offset, size: stringSection.size, what: "\(what)'s string table")

    // Extended section indexes (SHN_XINDEX) live in a SHT_SYMTAB_SHNDX section linked to this table.
    var extended: Range<Int>?
    if let shndx = sections.first(where: {
      $0.type == ELFSection.typeSymTabShndx && Int($0.link) == table.index
    }) {
      extended = try reader.range(offset: shndx.offset, size: shndx.size, what: "\(what)'s SHT_SYMTAB_SHNDX")
    }

    let count = entries.count / 24
    var symbols: [ELFSymbol] = []
    symbols.reserveCapacity(max(0, count - 1))
    for index in 1..<max(1, count) {
      let base = entries.lowerBound + index * 24
      let info = reader.u8(base + 4)
      var sectionIndex = UInt32(reader.u16(base + 6))
      if sectionIndex == 0xFFFF {
        guard let extended, (index + 1) * 4 <= extended.count else {
          throw ELFError(
            .malformed, "\(what): symbol \(index) uses SHN_XINDEX without a SHT_SYMTAB_SHNDX entry")
        }
        sectionIndex = reader.u32(extended.lowerBound + index * 4)
      }
      symbols.append(
        ELFSymbol(
          name: try reader.string(in: strings, at: UInt64(reader.u32(base)), what: "\(what) entry \(index)"),
          value: reader.u64(base + 8), size: reader.u64(base + 16),
          type: ELFSymbol.SymbolType(rawValue: info & 0xF), binding: ELFSymbol.Binding(rawValue: info >> 4),
          visibility: reader.u8(base + 5) & 3, sectionIndex: sectionIndex))
    }
    return symbols
  }

  static func parseNotes(_ reader: ByteReader, sections: [ELFSection], segments: [ELFProgramHeader])
    throws(ELFError) -> [ELFNote]
  {
    var notes: [ELFNote] = []
    let noteSections = sections.filter { $0.type == ELFSection.typeNote }
    if !sections.isEmpty {
      for section in noteSections {
        let range = try reader.range(
          offset: section.offset, size: section.size, what: "note section \(section.name)")
        notes += try parseNoteEntries(
          reader, range, alignment: section.addressAlignment, what: "note section \(section.name)")
      }
    } else {
      for segment in segments where segment.type == ELFProgramHeader.typeNote {
        let range = try reader.range(
          offset: segment.offset, size: segment.fileSize, what: "a PT_NOTE segment")
        notes += try parseNoteEntries(reader, range, alignment: segment.alignment, what: "a PT_NOTE segment")
      }
    }
    return notes
  }

  static func parseNoteEntries(_ reader: ByteReader, _ range: Range<Int>, alignment: UInt64, what: String)
    throws(ELFError) -> [ELFNote]
  {
    // Fields are aligned relative to the start of the notes (4, or 8 for .note.gnu.property).
    let align = alignment == 8 ? 8 : 4
    func aligned(_ position: Int) -> Int {
      range.lowerBound + (position - range.lowerBound + align - 1) / align * align
    }
    var notes: [ELFNote] = []
    var position = range.lowerBound
    while range.upperBound - position >= 12 {
      let nameSize = Int(reader.u32(position))
      let descriptorSize = Int(reader.u32(position + 4))
      let type = reader.u32(position + 8)
      let nameStart = position + 12
      guard nameSize <= range.upperBound - nameStart else {
        throw ELFError(.malformed, "\(what): a note's name (\(nameSize) bytes) runs past its end")
      }
      let descriptorStart = min(aligned(nameStart + nameSize), range.upperBound)
      guard descriptorSize <= range.upperBound - descriptorStart else {
        throw ELFError(.malformed, "\(what): a note's descriptor (\(descriptorSize) bytes) runs past its end")
      }
      let next = aligned(descriptorStart + descriptorSize)
      var nameBytes = reader.bytes[nameStart..<nameStart + nameSize]
      if let nul = nameBytes.firstIndex(of: 0) { nameBytes = nameBytes[..<nul] }
      notes.append(
        ELFNote(
          name: String(decoding: nameBytes, as: UTF8.self), type: type,
          descriptor: Array(reader.bytes[descriptorStart..<descriptorStart + descriptorSize])))
      position = min(next, range.upperBound)
    }
    return notes
  }
}
