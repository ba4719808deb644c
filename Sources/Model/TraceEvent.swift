/// What a trace record says happened (`enum smptop_trace_kind`).
public enum TraceKind: UInt16, Sendable, Codable, CaseIterable {
  /// A lock was found busy: the waiter starts waiting.
  case lockContend = 1
  /// A lock was taken (after a wait when `arg2` is nonzero).
  case lockAcquired = 2
  /// A lock was released.
  case lockReleased = 3
  /// An interrupt handler started.
  case irqEnter = 4
  /// An interrupt handler finished.
  case irqExit = 5
  /// The lcpu switched from one thread to another.
  case contextSwitch = 6
  /// A timer expired.
  case timerFired = 7
  /// The driver notified a virtqueue's device.
  case virtioKick = 8
  /// A virtqueue's interrupt was taken.
  case virtioInterrupt = 9
  /// An allocation failed.
  case allocFailure = 10

  /// A short lower-case name (`lock-contend`, `irq-enter`, …) used in JSON lines.
  public var name: String {
    switch self {
    case .lockContend: "lock-contend"
    case .lockAcquired: "lock-acquired"
    case .lockReleased: "lock-released"
    case .irqEnter: "irq-enter"
    case .irqExit: "irq-exit"
    case .contextSwitch: "switch"
    case .timerFired: "timer-fired"
    case .virtioKick: "virtio-kick"
    case .virtioInterrupt: "virtio-irq"
    case .allocFailure: "alloc-failure"
    }
  }
}

/// Classes of events the guest can trace (`enum smptop_trace_class`), the bits of the control word
/// (InspectorTests checks the bits against smptop_abi.h).
public struct TraceClasses: OptionSet, Sendable, Hashable, Codable {
  /// The bits.
  public var rawValue: UInt64
  /// Creates a set from control-word bits.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// Lock contend-begin, acquired, released.
  public static let locks = TraceClasses(rawValue: 1 << 0)
  /// Interrupt enter and exit.
  public static let irq = TraceClasses(rawValue: 1 << 1)
  /// Context switches.
  public static let sched = TraceClasses(rawValue: 1 << 2)
  /// Timer expiries.
  public static let timer = TraceClasses(rawValue: 1 << 3)
  /// Virtqueue kicks and interrupts.
  public static let virtio = TraceClasses(rawValue: 1 << 4)
  /// Allocation failures.
  public static let alloc = TraceClasses(rawValue: 1 << 5)
  /// Every class.
  public static let all: TraceClasses = [.locks, .irq, .sched, .timer, .virtio, .alloc]

  /// Names in the guest command line's spelling, in a fixed order.
  public static let names: [(String, TraceClasses)] = [
    ("locks", .locks), ("irq", .irq), ("sched", .sched), ("timer", .timer), ("virtio", .virtio),
    ("alloc", .alloc),
  ]

  /// Parses `all`, `off` or a comma list such as `locks,irq`; nil for an unknown name.
  public init?(parsing text: String) {
    var set = TraceClasses()
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      if part == "all" {
        set.formUnion(.all)
      } else if part == "off" {
        continue
      } else if let match = Self.names.first(where: { $0.0 == part }) {
        set.formUnion(match.1)
      } else {
        return nil
      }
    }
    self = set
  }

  /// The command-line spelling (`all`, `off`, or a comma list).
  public var spelled: String {
    if self == .all { return "all" }
    let parts = Self.names.filter { contains($0.1) }.map(\.0)
    return parts.isEmpty ? "off" : parts.joined(separator: ",")
  }
}

/// One decoded trace record.
public struct TraceEvent: Sendable, Equatable, Codable {
  /// The lcpu whose ring held it (the lcpu that wrote it).
  public var ring: UInt32
  /// Its position in that ring (0 = the first record the ring ever held).
  public var position: UInt64
  /// Guest TSC when it was written.
  public var tsc: UInt64
  /// What happened.
  public var kind: TraceKind
  /// The lcpu it is about (a lock's new holder may be on another lcpu than the ring's).
  public var lcpu: UInt32
  /// Lock / thread / virtqueue address / vector / order, by kind (smptop_abi.h).
  public var object: UInt64
  /// First argument, by kind.
  public var arg: UInt64
  /// Second argument, by kind.
  public var arg2: UInt64
  /// Code address (call site), 0 = unknown.
  public var site: UInt64

  /// Creates an event.
  public init(
    ring: UInt32, position: UInt64, tsc: UInt64, kind: TraceKind, lcpu: UInt32, object: UInt64,
    arg: UInt64 = 0, arg2: UInt64 = 0, site: UInt64 = 0
  ) {
    self.ring = ring
    self.position = position
    self.tsc = tsc
    self.kind = kind
    self.lcpu = lcpu
    self.object = object
    self.arg = arg
    self.arg2 = arg2
    self.site = site
  }

  /// For `lockAcquired`: whether the acquisition had to wait (one `contended` count).
  public var contended: Bool { kind == .lockAcquired && arg2 != 0 }
}
