import Glibc

/// The declarative ISR-safety rules: where interrupts enter, what must not run in interrupt
/// context, and which findings are intended.
///
/// The text format is one directive per line, each with a `#` comment on the same line or in the
/// comment lines directly above it (the reason is part of the rule):
///
///     entry     isr_stubs                       # the IDT stubs (traps.S)
///     unsafe    Mutex.lock()                    # sleeping lock
///     spinlock  SpinLock.lock()                 # first argument (rdi) is the lock object
///     irqsave-flag 76 0x1                       # struct klock.init_flags, SMPTOP_LOCKF_IRQSAVE
///     expected  Workload.timerTick() -> Mutex.lock()             # the isr-misuse scenario
///     expected  IPI.remoteCallInterrupt() -> <indirect>          # the remote-call mailbox
///     expected  Workload.timerTick() -> SpinLock.lock() klock_isr_misuse
///
/// Patterns are shell globs (`fnmatch`) matched against a function's simplified Swift name
/// (`Mutex.lock()`, without a `specialized ` prefix) and against its raw symbol name.
public struct ISRRules: Sendable, Hashable {
  /// A function name pattern with the comment that explains it.
  public struct Rule: Sendable, Hashable {
    /// The glob.
    public var pattern: String
    /// The rule's comment.
    public var reason: String
    /// The rules file line.
    public var line: Int
  }

  /// A declared, intended finding: its last call, caller → callee (`<indirect>` for a call
  /// through a pointer), and for a spinlock finding optionally the lock's symbol.
  public struct Expectation: Sendable, Hashable {
    /// The glob for the function that makes the call.
    public var caller: String
    /// The glob for the called function, or `<indirect>`.
    public var callee: String
    /// The glob for the lock symbol of a spinlock finding, if given.
    public var lock: String?
    /// The rule's comment.
    public var reason: String
    /// The rules file line.
    public var line: Int
  }

  /// Symbols where interrupts and exceptions enter (exact names).
  public var entries: [Rule] = []
  /// Functions that must not run in interrupt context.
  public var unsafe: [Rule] = []
  /// Spinlock functions whose first argument is the lock object.
  public var spinlocks: [Rule] = []
  /// Where a static lock object keeps its 32-bit flags, and the IRQ-save bit, if declared.
  public var irqsaveFlag: FlagField?
  /// The intended findings.
  public var expected: [Expectation] = []
  /// Declared targets of indirect calls: the calls in `caller` reach only functions matching
  /// `callee` (edges the analysis follows).
  public var indirectTargets: [Expectation] = []
  /// Functions that call a function passed to them in a register (`swift_once` calls its rsi).
  public var argumentCalls: [ArgumentCall] = []

  /// A function that calls the function passed in one of its argument registers.
  public struct ArgumentCall: Sendable, Hashable {
    /// The glob for the function.
    public var pattern: String
    /// The register (rdi, rsi, rdx, rcx, r8, r9).
    public var register: String
    /// The rule's comment.
    public var reason: String
    /// The rules file line.
    public var line: Int
  }

  /// A 32-bit flags word in a lock object, and the bit that means IRQ-save.
  public struct FlagField: Sendable, Hashable {
    /// Byte offset from the lock object's symbol; nil until `member` is looked up
    /// (`ISRRules.resolvingFieldOffsets(elfPath:)`).
    public var offset: UInt64?
    /// The C struct member that holds the flags (`klock.init_flags`), when given by name.
    public var member: (type: String, field: String)? {
      memberStorage.map { ($0[0], $0[1]) }
    }
    /// The IRQ-save bit(s).
    public var mask: UInt32
    var memberStorage: [String]?
  }

  /// An empty rule set.
  public init() {}

  /// Parses the rules text; `source` names it in error messages.
  public init(text: String, source: String = "rules") throws(ISRCheckError) {
    var pendingComment: [String] = []
    for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let number = index + 1
      var body = Substring(rawLine)
      var comment = ""
      if let hash = body.firstIndex(of: "#") {
        comment = body[body.index(after: hash)...].trimmingCharacters(in: " \t")
        body = body[..<hash]
      }
      let words = body.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
      guard let directive = words.first else {
        if rawLine.trimmingCharacters(in: " \t").isEmpty {
          pendingComment = []
        } else if !comment.isEmpty {
          pendingComment.append(comment)
        }
        continue
      }
      let reason = comment.isEmpty ? pendingComment.joined(separator: " ") : comment
      pendingComment = []
      func fail(_ message: String) -> ISRCheckError {
        ISRCheckError(.rules, "\(source):\(number): \(message)")
      }
      guard !reason.isEmpty else {
        throw fail("`\(directive)` needs a comment (on the line or directly above) saying why")
      }
      let arguments = Array(words.dropFirst())
      switch directive {
      case "entry", "unsafe", "spinlock":
        guard arguments.count == 1 else { throw fail("`\(directive)` takes one name pattern") }
        let rule = Rule(pattern: arguments[0], reason: reason, line: number)
        if directive == "entry" {
          entries.append(rule)
        } else if directive == "unsafe" {
          unsafe.append(rule)
        } else {
          spinlocks.append(rule)
        }
      case "irqsave-flag":
        let member = arguments.first.map { $0.split(separator: ".").map(String.init) } ?? []
        let isMember = member.count == 2 && member.allSatisfy(Self.isCIdentifier)
        guard arguments.count == 2, isMember || Self.number(arguments[0]) != nil,
          let mask = Self.number(arguments[1]), mask > 0, mask <= UInt64(UInt32.max)
        else {
          throw fail("`irqsave-flag` takes STRUCT.MEMBER (or a byte offset) and a non-zero 32-bit mask")
        }
        irqsaveFlag = FlagField(
          offset: isMember ? nil : Self.number(arguments[0]), mask: UInt32(mask),
          memberStorage: isMember ? member : nil)
      case "expected":
        guard arguments.count == 3 || arguments.count == 4, arguments[1] == "->" else {
          throw fail("`expected` takes CALLER -> CALLEE [LOCK]")
        }
        expected.append(
          Expectation(
            caller: arguments[0], callee: arguments[2], lock: arguments.count == 4 ? arguments[3] : nil,
            reason: reason, line: number))
      case "indirect":
        guard arguments.count == 3, arguments[1] == "->" else {
          throw fail("`indirect` takes CALLER -> TARGETS")
        }
        indirectTargets.append(
          Expectation(caller: arguments[0], callee: arguments[2], lock: nil, reason: reason, line: number))
      case "calls-argument":
        let registers = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"]
        guard arguments.count == 2, registers.contains(arguments[1]) else {
          throw fail("`calls-argument` takes FUNCTION REGISTER (one of \(registers.joined(separator: ", ")))")
        }
        argumentCalls.append(
          ArgumentCall(pattern: arguments[0], register: arguments[1], reason: reason, line: number))
      default:
        throw fail(
          "unknown directive `\(directive)` (entry, unsafe, spinlock, irqsave-flag, indirect, calls-argument, expected)"
        )
      }
    }
    guard !entries.isEmpty else { throw ISRCheckError(.rules, "\(source): no `entry` directive") }
  }

  /// Reads and parses a rules file.
  public init(path: String) throws(ISRCheckError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw ISRCheckError(.io, "cannot open rules file \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count < 0 && errno == EINTR { continue }
      guard count >= 0 else {
        throw ISRCheckError(.io, "cannot read rules file \(path): \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      bytes += buffer[0..<count]
      guard bytes.count <= 1 << 20 else { throw ISRCheckError(.rules, "rules file \(path) is over 1 MiB") }
    }
    try self.init(text: String(decoding: bytes, as: UTF8.self), source: path)
  }

  /// Whether `pattern` (a glob) matches either name.
  public static func matches(_ pattern: String, _ names: [String]) -> Bool {
    names.contains { fnmatch(pattern, $0, 0) == 0 }
  }

  /// The rules with a by-name `irqsave-flag` member turned into its byte offset, read from the
  /// ELF's DWARF by gdb (`print &((struct T *)0)->member`): the struct's layout changes with the
  /// guest, its DWARF always says where the member is.
  public func resolvingFieldOffsets(elfPath: String) throws(ISRCheckError) -> ISRRules {
    guard var field = irqsaveFlag, field.offset == nil, let member = field.member else { return self }
    field.offset = try StructLayout.offset(of: member.field, in: member.type, elfPath: elfPath)
    var copy = self
    copy.irqsaveFlag = field
    return copy
  }

  static func isCIdentifier(_ text: String) -> Bool {
    guard let first = text.unicodeScalars.first,
      first == "_" || (first.isASCII && first.properties.isAlphabetic)
    else { return false }
    return text.unicodeScalars.allSatisfy {
      $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
    }
  }

  private static func number(_ text: String) -> UInt64? {
    text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
  }
}

extension Substring {
  /// The text without the given characters at either end (Foundation's name, without Foundation).
  func trimmingCharacters(in set: String) -> String {
    let characters = Set(set)
    var text = self
    while let first = text.first, characters.contains(first) { text = text.dropFirst() }
    while let last = text.last, characters.contains(last) { text = text.dropLast() }
    return String(text)
  }
}

/// Why the check could not run.
public struct ISRCheckError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: Sendable, Hashable {
    /// A file could not be read.
    case io
    /// The rules text is invalid.
    case rules
    /// The ELF is unreadable or lacks what the check needs (code, entry symbols).
    case elf
    /// Capstone could not be opened.
    case disassembler
  }

  /// The kind of failure.
  public var code: Code
  /// One sentence saying what is wrong.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
