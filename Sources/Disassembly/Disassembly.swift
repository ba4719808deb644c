import CCapstone

/// One decoded x86-64 instruction, copied out of Capstone so it can cross threads.
public struct Instruction: Sendable, Hashable, Codable {
  /// Address of the first byte.
  public var address: UInt64
  /// The instruction's bytes (1…15).
  public var bytes: [UInt8]
  /// Intel-syntax mnemonic ("mov"); "(bad)" for a byte that does not decode.
  public var mnemonic: String
  /// Intel-syntax operands ("rbp, rsp"); for "(bad)" the byte as ".byte 0xff".
  public var operands: String

  /// Creates an instruction.
  public init(address: UInt64, bytes: [UInt8], mnemonic: String, operands: String) {
    self.address = address
    self.bytes = bytes
    self.mnemonic = mnemonic
    self.operands = operands
  }

  /// False for a byte Capstone could not decode.
  public var isValid: Bool { mnemonic != Instruction.bad }
  /// "mov rbp, rsp".
  public var text: String { operands.isEmpty ? mnemonic : mnemonic + " " + operands }
  /// Address of the next instruction.
  public var end: UInt64 { address &+ UInt64(bytes.count) }

  /// The mnemonic of an undecodable byte, as objdump writes it.
  public static let bad = "(bad)"
}

/// Why a disassembler could not be created.
public struct DisassemblyError: Error, Sendable, Equatable, CustomStringConvertible {
  /// Capstone's error number (`cs_err`).
  public var code: UInt32
  /// Capstone's message for it.
  public var message: String

  /// "capstone: <message> (error n)".
  public var description: String { "capstone: \(message) (error \(code))" }
}

/// An x86-64 disassembler in Intel syntax over Capstone 4.
///
/// Not `Sendable`: a Capstone handle must not be used from two threads at once, so give each thread
/// (or actor) its own. Decoding allocates nothing per instruction (`cs_malloc` once, `cs_disasm_iter`).
public final class Disassembler {
  private var handle: csh = 0
  private let insn: UnsafeMutablePointer<cs_insn>

  /// Opens a Capstone handle for x86-64, Intel syntax, without per-operand detail.
  public init() throws(DisassemblyError) {
    var h: csh = 0
    let err = cs_open(CS_ARCH_X86, CS_MODE_64, &h)
    guard err == CS_ERR_OK else { throw Disassembler.error(err) }
    let syntax = cs_option(h, CS_OPT_SYNTAX, Int(CS_OPT_SYNTAX_INTEL.rawValue))
    guard syntax == CS_ERR_OK, let buffer = cs_malloc(h) else {
      cs_close(&h)
      throw Disassembler.error(syntax == CS_ERR_OK ? CS_ERR_MEM : syntax)
    }
    handle = h
    insn = buffer
  }

  deinit {
    cs_free(insn, 1)
    cs_close(&handle)
  }

  /// Capstone's version as "major.minor".
  public static var capstoneVersion: String {
    var major: Int32 = 0
    var minor: Int32 = 0
    _ = cs_version(&major, &minor)
    return "\(major).\(minor)"
  }

  /// Decodes `bytes` as code at `address`, at most `maxCount` instructions.
  ///
  /// Bytes that do not decode become one-byte "(bad)" instructions and decoding goes on after them,
  /// so garbage (unmapped memory, data, a wrong start) gives a readable listing instead of stopping.
  public func disassemble(_ bytes: [UInt8], at address: UInt64, maxCount: Int = Int.max) -> [Instruction] {
    var out: [Instruction] = []
    guard !bytes.isEmpty, maxCount > 0 else { return out }
    bytes.withUnsafeBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      var offset = 0
      while offset < buffer.count, out.count < maxCount {
        var code: UnsafePointer<UInt8>? = base + offset
        var size = buffer.count - offset
        var pc = address &+ UInt64(offset)
        if cs_disasm_iter(handle, &code, &size, &pc, insn) {
          let n = Int(insn.pointee.size)
          guard n > 0, n <= buffer.count - offset else { break }
          out.append(
            Instruction(
              address: insn.pointee.address, bytes: Array(buffer[offset..<(offset + n)]),
              mnemonic: Disassembler.string(insn.pointee.mnemonic),
              operands: Disassembler.string(insn.pointee.op_str)))
          offset += n
        } else {
          let byte = buffer[offset]
          out.append(
            Instruction(
              address: address &+ UInt64(offset), bytes: [byte], mnemonic: Instruction.bad,
              operands: ".byte 0x" + String(byte, radix: 16)))
          offset += 1
        }
      }
    }
    return out
  }

  /// Instructions around `rip`, from bytes that start at `base` somewhere before it.
  ///
  /// x86 code cannot be decoded backwards, so this tries each start offset and keeps the first whose
  /// instruction stream lands exactly on `rip` without an undecodable byte (a function start from the
  /// symbol table as `base` always does). Returns up to `before` instructions before RIP and `after`
  /// from RIP on; when no start lands on RIP it decodes from RIP alone.
  public func window(
    around rip: UInt64, bytes: [UInt8], base: UInt64, before: Int = 8, after: Int = 16
  ) -> [Instruction] {
    guard rip >= base, rip - base <= UInt64(bytes.count) else {
      return []
    }
    let ripOffset = Int(rip - base)
    var best: [Instruction]?
    for start in 0..<min(max(ripOffset, 1), 64) {
      let head = disassemble(Array(bytes[start..<ripOffset]), at: base &+ UInt64(start))
      if head.allSatisfy(\.isValid), head.last?.end ?? (base &+ UInt64(start)) == rip {
        best = head
        break
      }
    }
    let tail = disassemble(Array(bytes[ripOffset...]), at: rip, maxCount: max(0, after))
    return Array((best ?? []).suffix(max(0, before))) + tail
  }

  /// A fixed C char array (imported as a tuple) up to its first NUL, as UTF-8.
  private static func string<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
      let bytes = raw.prefix { $0 != 0 }
      return String(decoding: bytes, as: UTF8.self)
    }
  }

  private static func error(_ err: cs_err) -> DisassemblyError {
    let message = cs_strerror(err).map { String(cString: $0) } ?? "unknown error"
    return DisassemblyError(code: err.rawValue, message: message)
  }
}
