/// QEMU's run state as QMP `query-status` names it, plus `unreachable` when QEMU went away.
///
/// Encoded as QMP's word (`"running"`, `"paused"`, …), so JSON is unchanged; a word smptop does
/// not know is kept as `.other`.
public enum VMRunState: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
  /// The vCPUs run.
  case running
  /// Stopped by QMP `stop` (or by smptop's pause).
  case paused
  /// Stopped by the debugger (the gdbstub, after a step or an interrupt).
  case debug
  /// Not started yet (`-S`).
  case prelaunch
  /// The guest shut down.
  case shutdown
  /// QEMU hit an internal error.
  case internalError
  /// The guest reported a panic through pvpanic.
  case guestPanicked
  /// An I/O error stopped the VM.
  case ioError
  /// QEMU could not be reached (smptop's own word, not QMP's).
  case unreachable
  /// Any other QMP word (`inmigrate`, `suspended`, …).
  case other(String)

  /// The state QMP's word names.
  public init(_ word: String) {
    switch word {
    case "running": self = .running
    case "paused": self = .paused
    case "debug": self = .debug
    case "prelaunch": self = .prelaunch
    case "shutdown": self = .shutdown
    case "internal-error": self = .internalError
    case "guest-panicked": self = .guestPanicked
    case "io-error": self = .ioError
    case "unreachable": self = .unreachable
    default: self = .other(word)
    }
  }

  /// The state a literal QMP word names.
  public init(stringLiteral word: String) { self.init(word) }

  /// QMP's word.
  public var word: String {
    switch self {
    case .running: "running"
    case .paused: "paused"
    case .debug: "debug"
    case .prelaunch: "prelaunch"
    case .shutdown: "shutdown"
    case .internalError: "internal-error"
    case .guestPanicked: "guest-panicked"
    case .ioError: "io-error"
    case .unreachable: "unreachable"
    case .other(let word): word
    }
  }

  /// QMP's word.
  public var description: String { word }

  /// Whether the vCPUs run.
  public var isRunning: Bool { self == .running }

  /// Whether the VM is stopped for good or broken (shut down, crashed, gone).
  public var isFailed: Bool {
    switch self {
    case .internalError, .guestPanicked, .shutdown, .ioError, .unreachable: true
    default: false
    }
  }

  /// Decodes QMP's word.
  public init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode(String.self))
  }

  /// Encodes QMP's word.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(word)
  }
}
