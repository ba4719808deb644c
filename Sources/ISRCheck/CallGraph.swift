import Disassembly
import ELFSymbols

/// A function of the linked binary: a symbol in an executable section.
public struct CodeFunction: Sendable, Hashable {
  /// The symbol as stored (mangled for Swift).
  public var symbol: String
  /// The simplified Swift name (`Mutex.lock()`), or the symbol for other languages.
  public var name: String
  /// First byte.
  public var address: UInt64
  /// Size in bytes (the symbol's, or up to the next symbol for assembler labels).
  public var size: UInt64

  /// Creates a function.
  public init(symbol: String, name: String, address: UInt64, size: UInt64) {
    self.symbol = symbol
    self.name = name
    self.address = address
    self.size = size
  }

  /// Names a rule pattern is matched against: the simplified name and the symbol.
  public var matchNames: [String] { [name, symbol] }
}

/// What a call instruction calls.
public enum CallTarget: Sendable, Hashable {
  /// A known function (index into `CallGraph.functions`).
  case function(Int)
  /// A computed target (`call r15`, `call qword ptr [rax + 8]`): the operand text.
  case indirect(String)
  /// A fixed address outside every known function.
  case address(UInt64)
}

/// One call (or tail-call jump) in the machine code.
public struct CallSite: Sendable, Hashable {
  /// The calling function (index into `CallGraph.functions`).
  public var caller: Int
  /// Address of the call instruction.
  public var address: UInt64
  /// The instruction text (`call 0x112910`).
  public var instruction: String
  /// The callee.
  public var target: CallTarget
  /// Whether it is a jump out of the function (a tail call) rather than a `call`.
  public var isTailCall: Bool
  /// Argument registers whose value the code right before the call makes known.
  public var arguments: [String: ArgumentValue] = [:]

  /// The first argument (rdi) when the code before the call sets it to a fixed address.
  public var argument: UInt64? {
    if case .address(let value) = arguments["rdi"] { return value }
    return nil
  }
  /// The global variable rdi was loaded from, when the code loads it from one.
  public var argumentLoadedFrom: UInt64? {
    if case .loadedFrom(let variable) = arguments["rdi"] { return variable }
    return nil
  }
}

/// What an argument register holds at a call, as far as straight-line code before it shows.
public enum ArgumentValue: Sendable, Hashable {
  /// A fixed address or number (`lea rdi, [rip + …]`, `mov edi, imm`).
  case address(UInt64)
  /// The contents of a global variable (`mov rdi, qword ptr [rip + …]`).
  case loadedFrom(UInt64)
}

/// The call graph of an ELF's machine code, decoded with Capstone.
///
/// Functions are the defined symbols in executable sections (sized function symbols, and
/// assembler labels extended to the next symbol). Every instruction of every function is decoded
/// from the function's start; `call` and jumps that leave the function are edges. An indirect
/// `jmp` right after a `movsxd` from a scaled table slot is a switch's jump table and stays inside
/// the function; every other indirect call or jump is an edge to an unknown target.
public struct CallGraph: Sendable {
  /// All functions, sorted by address.
  public let functions: [CodeFunction]
  /// All call sites, in address order.
  public let calls: [CallSite]
  /// `callsFrom[f]`: indexes into `calls` made by function `f`.
  public let callsFrom: [[Int]]
  /// `callers[f]`: indexes into `calls` that call function `f` directly.
  public let callers: [[Int]]
  /// How many instructions were decoded.
  public let instructionCount: Int
  /// Global variables the code only ever stores one fixed address into (a `static let` that holds
  /// a pointer, set by its one-time initializer): variable address → stored address.
  public let constantVariables: [UInt64: UInt64]

  /// Builds the graph of `elf`'s executable sections.
  public init(elf: ELFFile, demangler: SwiftDemangler = .shared) throws(ISRCheckError) {
    guard elf.header.machine == ELFHeader.machineX86_64 else {
      throw ISRCheckError(.elf, "the ELF is for machine \(elf.header.machine), not x86-64 (62)")
    }
    let functions = Self.functions(in: elf, demangler: demangler)
    guard !functions.isEmpty else {
      throw ISRCheckError(.elf, "the ELF has no symbols in executable sections (stripped?)")
    }
    let disassembler: Disassembler
    do { disassembler = try Disassembler() } catch {
      throw ISRCheckError(.disassembler, error.description)
    }
    let starts = functions.map(\.address)
    func containing(_ address: UInt64) -> Int? {
      var low = 0
      var high = starts.count
      while low < high {
        let mid = (low + high) / 2
        if starts[mid] <= address { low = mid + 1 } else { high = mid }
      }
      guard low > 0 else { return nil }
      let f = functions[low - 1]
      return address - f.address < max(f.size, 1) ? low - 1 : nil
    }

    var calls: [CallSite] = []
    var stores: [UInt64: UInt64?] = [:]  // global variable -> the one address stored in it
    var decoded = 0
    for (index, function) in functions.enumerated() where function.size > 0 {
      guard let bytes = try? elf.bytes(atVirtualAddress: function.address, count: Int(function.size)) else {
        continue
      }
      let code = disassembler.disassemble(bytes, at: function.address)
      decoded += code.count
      let range = function.address..<(function.address &+ function.size)
      for (position, instruction) in code.enumerated() {
        let mnemonic = instruction.mnemonic
        if mnemonic == "mov", instruction.operands.hasPrefix("qword ptr [rip ") {
          Self.noteStore(instruction, code, position, into: &stores)
          continue
        }
        let isCall = mnemonic == "call"
        let isJump = mnemonic.hasPrefix("j")
        guard isCall || isJump else { continue }
        let target: CallTarget
        if let destination = Self.immediate(instruction.operands) {
          if !isCall && range.contains(destination) { continue }  // a branch inside the function
          if let callee = containing(destination) {
            target = .function(callee)
          } else {
            target = .address(destination)
          }
        } else {
          if !isCall && Self.isJumpTable(code, before: position) { continue }
          target = .indirect(instruction.operands)
        }
        var site = CallSite(
          caller: index, address: instruction.address, instruction: instruction.text, target: target,
          isTailCall: !isCall)
        for register in Self.argumentRegisters {
          if let value = Self.resolve(register, code, before: position) { site.arguments[register] = value }
        }
        calls.append(site)
      }
    }
    var callsFrom = [[Int]](repeating: [], count: functions.count)
    var callers = [[Int]](repeating: [], count: functions.count)
    for (index, call) in calls.enumerated() {
      callsFrom[call.caller].append(index)
      if case .function(let callee) = call.target { callers[callee].append(index) }
    }
    self.functions = functions
    self.calls = calls
    self.callsFrom = callsFrom
    self.callers = callers
    instructionCount = decoded
    constantVariables = stores.compactMapValues { $0 }
  }

  /// The index of the function that starts exactly at `address`, if any.
  public func function(startingAt address: UInt64) -> Int? {
    var low = 0
    var high = functions.count
    while low < high {
      let mid = (low + high) / 2
      if functions[mid].address < address { low = mid + 1 } else { high = mid }
    }
    return low < functions.count && functions[low].address == address ? low : nil
  }

  /// The index of the function whose symbol is `symbol`, if any.
  public func function(symbol: String) -> Int? {
    functions.firstIndex { $0.symbol == symbol }
  }

  /// The defined symbols of executable sections, one per address, with sizes.
  static func functions(in elf: ELFFile, demangler: SwiftDemangler) -> [CodeFunction] {
    let executable = elf.sections.filter { $0.isAllocated && ($0.flags & 0x4) != 0 && $0.size > 0 }
    guard !executable.isEmpty else { return [] }
    var best: [UInt64: ELFSymbol] = [:]
    func rank(_ s: ELFSymbol) -> Int {
      (s.size > 0 ? 4 : 0) + (s.type == .function ? 2 : 0) + (s.binding != .local ? 1 : 0)
    }
    for symbol in elf.symbols where symbol.isDefined && !symbol.name.isEmpty {
      guard symbol.type == .function || symbol.type == .notype, !symbol.name.hasPrefix(".L"),
        executable.contains(where: { $0.addressRange.contains(symbol.value) })
      else { continue }
      if let current = best[symbol.value], rank(current) >= rank(symbol) { continue }
      best[symbol.value] = symbol
    }
    let sorted = best.values.sorted { $0.value < $1.value }
    var out: [CodeFunction] = []
    for (index, symbol) in sorted.enumerated() {
      let sectionEnd =
        executable.first { $0.addressRange.contains(symbol.value) }?.addressRange.upperBound ?? symbol.value
      let next = index + 1 < sorted.count ? min(sorted[index + 1].value, sectionEnd) : sectionEnd
      let size = symbol.size == 0 ? next - symbol.value : min(symbol.size, next - symbol.value)
      let name = displayName(demangler.simplifiedName(symbol.name))
      out.append(CodeFunction(symbol: symbol.name, name: name, address: symbol.value, size: size))
      // Code after a sized symbol's end that no symbol names (a local function whose symbol the
      // linker dropped): an anonymous function `sub_<address>`, unless it is only padding.
      let gapStart = symbol.value &+ size
      if symbol.size > 0, gapStart < next, let start = firstCode(in: elf, from: gapStart, to: next) {
        let label = "sub_" + String(start, radix: 16)
        out.append(CodeFunction(symbol: label, name: label, address: start, size: next - start))
      }
    }
    return out
  }

  /// The first byte in `from..<to` that is not padding (int3, nop), or nil.
  static func firstCode(in elf: ELFFile, from: UInt64, to: UInt64) -> UInt64? {
    guard to > from, to - from < 1 << 20,
      let bytes = try? elf.bytes(atVirtualAddress: from, count: Int(to - from)),
      let disassembler = try? Disassembler()
    else { return nil }
    return disassembler.disassemble(bytes, at: from).first {
      $0.mnemonic != "int3" && $0.mnemonic != "nop" && $0.isValid
    }?.address
  }

  /// A simplified Swift name without what does not help a reader find the function:
  /// `specialized `, `static `, and a signature specialization's description
  /// (`function signature specialization <…> of NetPair.transmit(_:)` → `NetPair.transmit(_:)`).
  static func displayName(_ simplified: String) -> String {
    var name = Substring(simplified)
    if name.hasPrefix("specialized ") { name = name.dropFirst("specialized ".count) }
    for marker in ["function signature specialization <", "generic specialization <"]
    where name.hasPrefix(marker) {
      if let of = name.ranges(of: " of ").last { name = name[of.upperBound...] }
      if name.hasSuffix(">") && !name.contains("<") { name = name.dropLast() }
    }
    for prefix in ["specialized ", "static "] where name.hasPrefix(prefix) {
      name = name.dropFirst(prefix.count)
    }
    return String(name)
  }

  /// A lone hexadecimal operand (`0x112910`): a direct call or jump target.
  static func immediate(_ operands: String) -> UInt64? {
    guard operands.hasPrefix("0x") else { return nil }
    return UInt64(operands.dropFirst(2), radix: 16)
  }

  /// Whether the indirect jump at `position` dispatches through a switch table: a `movsxd` or
  /// `mov` from a scaled slot (`[base + 4*index]`) just before it.
  static func isJumpTable(_ code: [Instruction], before position: Int) -> Bool {
    let operands = code[position].operands
    if operands.contains("*") { return true }  // jmp qword ptr [8*rax + table]
    for back in code[max(0, position - 4)..<position]
    where back.operands.contains("*4]")
      || back.operands.contains("4*") || back.operands.contains("8*")
    {
      if back.mnemonic == "movsxd" || back.mnemonic == "mov" { return true }
    }
    return false
  }

  /// 32-bit names of the 64-bit registers an argument can travel through.
  static let low32: [String: String] = [
    "rdi": "edi", "rsi": "esi", "rax": "eax", "rbx": "ebx", "rcx": "ecx", "rdx": "edx",
    "r8": "r8d", "r9": "r9d", "r10": "r10d", "r11": "r11d", "r12": "r12d", "r13": "r13d",
    "r14": "r14d", "r15": "r15d",
  ]

  /// Records a `mov qword ptr [rip ± d], reg` store: the variable keeps the stored address if every
  /// store into it stores the same fixed address, else it is marked unknown (nil).
  static func noteStore(
    _ instruction: Instruction, _ code: [Instruction], _ position: Int, into stores: inout [UInt64: UInt64?]
  ) {
    let parts = instruction.operands.dropFirst("qword ptr ".count).split(separator: ",", maxSplits: 1)
    guard parts.count == 2, let variable = ripRelative(String(parts[0]), next: instruction.end) else {
      return
    }
    let source = parts[1].trimmingCharacters(in: " ")
    var value: UInt64?
    if low32[source] != nil, case .address(let address) = resolve(source, code, before: position) {
      value = address
    }
    if let existing = stores[variable], existing != value {
      stores[variable] = .some(nil)
    } else if stores[variable] == nil {
      stores[variable] = .some(value)
    }
  }

  /// The System V argument registers, in order.
  static let argumentRegisters = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"]

  /// Follows an argument register backwards through register moves to a `lea reg, [rip ± d]`, a
  /// `mov reg, imm` or a `mov reg, qword ptr [rip ± d]` (a global variable), in straight-line code
  /// before the call (at most 16 instructions, stopping at calls and jumps).
  static func resolve(_ argument: String, _ code: [Instruction], before position: Int) -> ArgumentValue? {
    var register = argument
    var index = position - 1
    while index >= 0 && index >= position - 16 {
      let instruction = code[index]
      index -= 1
      if instruction.mnemonic == "call" || instruction.mnemonic == "ret" || instruction.mnemonic == "jmp" {
        return nil
      }
      let parts = instruction.operands.split(separator: ",", maxSplits: 1).map {
        $0.trimmingCharacters(in: " ")
      }
      guard let destination = parts.first, destination == register || destination == low32[register] else {
        continue
      }
      guard parts.count == 2 else { return nil }
      let source = parts[1]
      switch instruction.mnemonic {
      case "lea":
        return ripRelative(source, next: instruction.end).map { .address($0) }
      case "mov":
        if let value = immediate(source) { return .address(value) }
        if source.hasPrefix("qword ptr "),
          let variable = ripRelative(String(source.dropFirst(10)), next: instruction.end)
        {
          return .loadedFrom(variable)
        }
        if low32[source] != nil {
          register = source
          continue
        }
        return nil
      default:
        return nil
      }
    }
    return nil
  }

  /// The address of `[rip + 0x…]` / `[rip - 0x…]` for an instruction that ends at `next`.
  static func ripRelative(_ operand: String, next: UInt64) -> UInt64? {
    guard operand.hasPrefix("[rip "), operand.hasSuffix("]") else { return nil }
    let inner = operand.dropFirst(5).dropLast()
    let negative = inner.hasPrefix("- ")
    guard inner.hasPrefix("+ ") || negative else { return nil }
    let text = inner.dropFirst(2)
    guard text.hasPrefix("0x"), let displacement = UInt64(text.dropFirst(2), radix: 16) else { return nil }
    return negative ? next &- displacement : next &+ displacement
  }
}
