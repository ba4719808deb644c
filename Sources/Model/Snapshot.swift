/// Whether a record could be read, and how much it can be trusted.
public enum Consistency: Sendable, Codable, Equatable {
  /// Read with an even, unchanged sequence counter (or at a stopped VM).
  case consistent
  /// Still being written after the bounded number of retries; the fields may disagree.
  case inconsistent(retries: Int)
  /// Could not be read at all (bad pointer, out of RAM, source error).
  case unreadable(reason: String)

  /// True for `.consistent`.
  public var isConsistent: Bool { self == .consistent }

  private enum Keys: String, CodingKey { case state, retries, reason }

  /// Encodes as `{"state": "consistent"}`, `{"state": "inconsistent", "retries": 16}` or
  /// `{"state": "unreadable", "reason": "…"}`.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: Keys.self)
    switch self {
    case .consistent: try c.encode("consistent", forKey: .state)
    case .inconsistent(let retries):
      try c.encode("inconsistent", forKey: .state)
      try c.encode(retries, forKey: .retries)
    case .unreadable(let reason):
      try c.encode("unreadable", forKey: .state)
      try c.encode(reason, forKey: .reason)
    }
  }

  /// Decodes the form `encode(to:)` writes.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Keys.self)
    switch try c.decode(String.self, forKey: .state) {
    case "consistent": self = .consistent
    case "inconsistent": self = .inconsistent(retries: try c.decode(Int.self, forKey: .retries))
    default: self = .unreadable(reason: (try? c.decode(String.self, forKey: .reason)) ?? "")
    }
  }
}

/// Where a snapshot's bytes come from.
public enum MemorySourceKind: String, Sendable, Codable {
  /// The shared RAM file, read while the guest runs (zero pause).
  case sharedRAM = "shared-ram"
  /// The gdbstub, with the VM stopped for the read.
  case gdbstub
  /// A recording made earlier.
  case recording
}

/// lcpu states after Unikraft's model.
public enum LCPUState: String, Sendable, Codable, Equatable {
  case offline = "OFFLINE"
  case initializing = "INIT"
  case idle = "IDLE"
  case busy = "BUSY"
  case halted = "HALTED"
  /// A value the ABI does not define (garbage or a newer guest).
  case unknown = "UNKNOWN"
}

/// A CPU exception that stopped an lcpu.
public struct PanicRecord: Sendable, Codable, Equatable {
  public var vector: UInt64
  public var errorCode: UInt64
  public var rip: UInt64
  public var rsp: UInt64
  public var rbp: UInt64
  public var rflags: UInt64
  public var cr2: UInt64
  public var tsc: UInt64
  /// Return addresses, innermost first.
  public var backtrace: [UInt64]
  /// The same frames with their source locations (RIP first), once symbolized.
  public var frames: Backtrace? = nil
  /// Whether the record was complete when read.
  public var consistency: Consistency

  /// The conventional mnemonic of the exception vector (#PF, #UD, ...).
  public var vectorName: String {
    let names = [
      "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP",
      "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ]
    return vector < UInt64(names.count) ? names[Int(vector)] : "vector \(vector)"
  }

  /// A value from all of its fields.
  public init(
    vector: UInt64, errorCode: UInt64, rip: UInt64, rsp: UInt64, rbp: UInt64, rflags: UInt64, cr2: UInt64,
    tsc: UInt64, backtrace: [UInt64], consistency: Consistency
  ) {
    self.vector = vector
    self.errorCode = errorCode
    self.rip = rip
    self.rsp = rsp
    self.rbp = rbp
    self.rflags = rflags
    self.cr2 = cr2
    self.tsc = tsc
    self.backtrace = backtrace
    self.consistency = consistency
  }
}

/// One lcpu as the guest describes it in its ABI record.
public struct LCPURecord: Sendable, Codable, Equatable {
  public var index: UInt32
  public var apicID: UInt32
  public var state: LCPUState
  /// The raw state word (useful when `state` is `.unknown`).
  public var rawState: UInt32
  public var busyDepth: UInt32
  public var errorCode: UInt64
  public var stateSinceTSC: UInt64
  public var irqTimer: UInt64
  public var irqIPI: UInt64
  public var irqDevice: UInt64
  public var irqSpurious: UInt64
  public var ipiSent: UInt64
  public var ipiReceived: UInt64
  public var remoteCalls: UInt64
  public var ticks: UInt64
  public var cyclesIdle: UInt64
  public var cyclesBusy: UInt64
  public var currentThread: UInt64
  public var nextDeadlineTSC: UInt64
  public var lastTickRIP: UInt64
  public var lastTickTSC: UInt64
  public var stackBottom: UInt64
  public var stackTop: UInt64
  public var workLoops: UInt64
  /// The scheduler's self-check counters (ABI v3; nil in values made without them).
  public var scheduler: SchedulerCounters?
  /// The panic record, when the lcpu took an exception.
  public var panic: PanicRecord?
  /// Whether the state fields agree with each other.
  public var consistency: Consistency

  /// "BUSY 2", "IDLE", "HALTED (#PF)".
  public var stateLabel: String {
    switch state {
    case .busy: return "BUSY \(busyDepth)"
    case .halted:
      if let panic { return "HALTED \(panic.vectorName)" }
      return "HALTED \(errorCode)"
    case .unknown: return "?\(rawState)"
    default: return state.rawValue
    }
  }

  /// A value from all of its fields.
  public init(
    index: UInt32, apicID: UInt32, state: LCPUState, rawState: UInt32, busyDepth: UInt32, errorCode: UInt64,
    stateSinceTSC: UInt64, irqTimer: UInt64, irqIPI: UInt64, irqDevice: UInt64, irqSpurious: UInt64,
    ipiSent: UInt64, ipiReceived: UInt64, remoteCalls: UInt64, ticks: UInt64, cyclesIdle: UInt64,
    cyclesBusy: UInt64, currentThread: UInt64, nextDeadlineTSC: UInt64, lastTickRIP: UInt64,
    lastTickTSC: UInt64, stackBottom: UInt64, stackTop: UInt64, workLoops: UInt64,
    scheduler: SchedulerCounters? = nil, panic: PanicRecord? = nil, consistency: Consistency
  ) {
    self.index = index
    self.apicID = apicID
    self.state = state
    self.rawState = rawState
    self.busyDepth = busyDepth
    self.errorCode = errorCode
    self.stateSinceTSC = stateSinceTSC
    self.irqTimer = irqTimer
    self.irqIPI = irqIPI
    self.irqDevice = irqDevice
    self.irqSpurious = irqSpurious
    self.ipiSent = ipiSent
    self.ipiReceived = ipiReceived
    self.remoteCalls = remoteCalls
    self.ticks = ticks
    self.cyclesIdle = cyclesIdle
    self.cyclesBusy = cyclesBusy
    self.currentThread = currentThread
    self.nextDeadlineTSC = nextDeadlineTSC
    self.lastTickRIP = lastTickRIP
    self.lastTickTSC = lastTickTSC
    self.stackBottom = stackBottom
    self.stackTop = stackTop
    self.workLoops = workLoops
    self.scheduler = scheduler
    self.panic = panic
    self.consistency = consistency
  }
}

/// What the guest says about itself in the ABI root.
public struct GuestInfo: Sendable, Codable, Equatable {
  public var abiVersion: UInt32
  public var buildID: String
  public var bootStage: UInt64
  public var features: UInt64
  public var bootTSC: UInt64
  public var tscPerMs: UInt64
  public var lapicPerMs: UInt64
  public var tickMicroseconds: UInt64
  public var lcpusPresent: UInt64
  public var lcpusOnline: UInt64
  public var ramBytes: UInt64
  public var kernelStart: UInt64
  public var kernelEnd: UInt64
  public var textStart: UInt64
  public var textEnd: UInt64
  public var shutdownCode: UInt64
  public var commandLine: String
  /// Where the interrupt entry's call of its dispatcher returns (`isr_return`): a backtrace
  /// continues from there into the interrupted context; nil when the guest does not say.
  public var isrReturn: UInt64?

  /// True once every lcpu that could start is up and the tables are complete.
  public var isRunning: Bool { bootStage >= 2 }

  /// A value from all of its fields.
  public init(
    abiVersion: UInt32, buildID: String, bootStage: UInt64, features: UInt64, bootTSC: UInt64,
    tscPerMs: UInt64, lapicPerMs: UInt64, tickMicroseconds: UInt64, lcpusPresent: UInt64, lcpusOnline: UInt64,
    ramBytes: UInt64, kernelStart: UInt64, kernelEnd: UInt64, textStart: UInt64, textEnd: UInt64,
    shutdownCode: UInt64, commandLine: String, isrReturn: UInt64? = nil
  ) {
    self.abiVersion = abiVersion
    self.buildID = buildID
    self.bootStage = bootStage
    self.features = features
    self.bootTSC = bootTSC
    self.tscPerMs = tscPerMs
    self.lapicPerMs = lapicPerMs
    self.tickMicroseconds = tickMicroseconds
    self.lcpusPresent = lcpusPresent
    self.lcpusOnline = lcpusOnline
    self.ramBytes = ramBytes
    self.kernelStart = kernelStart
    self.kernelEnd = kernelEnd
    self.textStart = textStart
    self.textEnd = textEnd
    self.shutdownCode = shutdownCode
    self.commandLine = commandLine
    self.isrReturn = isrReturn
  }
}

/// One vCPU as QEMU's gdbstub reports it (needs a stopped VM).
public struct VCPUState: Sendable, Codable, Equatable {
  /// vCPU index (gdb thread id − 1).
  public var index: Int
  /// Halted in `hlt`: the gdbstub's qThreadExtraInfo for a guest without the ABI; for an ABI
  /// guest its lcpu record says IDLE (which saves four stub round trips per stopped snapshot,
  /// and may differ from the instruction-level truth for a moment around `hlt`).
  public var halted: Bool
  /// Register name → value, for registers up to 64 bits, in target-description order.
  public var registers: [Register]
  /// RIP as symbol+offset, when symbols are known.
  public var symbol: String?
  /// The frame-pointer walk from its registers (within the stack of the thread it runs, or
  /// its lcpu's stack), once asked for.
  public var backtrace: Backtrace? = nil

  /// One named register value.
  public struct Register: Sendable, Codable, Equatable {
    public var name: String
    public var value: UInt64
    public init(name: String, value: UInt64) {
      self.name = name
      self.value = value
    }
  }

  /// The value of a register by name.
  public func value(of name: String) -> UInt64? { registers.first { $0.name == name }?.value }

  /// A value from all of its fields.
  public init(
    index: Int, halted: Bool, registers: [Register], symbol: String? = nil
  ) {
    self.index = index
    self.halted = halted
    self.registers = registers
    self.symbol = symbol
  }
}

/// One virtio device as QEMU's device model sees it (QMP x-query-virtio*).
public struct VirtioDeviceState: Sendable, Codable, Equatable {
  public var name: String
  /// The QOM path QMP knows it by.
  public var path: String
  /// Device status bits as QEMU names them (acknowledge, driver, driver-ok, …).
  public var statuses: [String]
  /// Features the driver accepted, as QEMU names them.
  public var guestFeatures: [String]
  public var queues: [VirtioQueueState]

  /// A value from all of its fields.
  public init(
    name: String, path: String, statuses: [String], guestFeatures: [String], queues: [VirtioQueueState]
  ) {
    self.name = name
    self.path = path
    self.statuses = statuses
    self.guestFeatures = guestFeatures
    self.queues = queues
  }
}

/// One virtqueue's device-side indices (QMP x-query-virtio-queue-status).
public struct VirtioQueueState: Sendable, Codable, Equatable {
  public var index: Int
  /// Ring size (vring-num).
  public var size: Int
  /// The device's next avail index to process.
  public var lastAvailIndex: Int?
  /// The avail index the device last read from the ring.
  public var shadowAvailIndex: Int?
  /// The device's used index.
  public var usedIndex: Int
  /// Buffers the device holds.
  public var inUse: Int
  /// Guest addresses of the descriptor table, avail ring and used ring.
  public var descriptorTable: UInt64
  public var availRing: UInt64
  public var usedRing: UInt64

  /// A value from all of its fields.
  public init(
    index: Int, size: Int, lastAvailIndex: Int? = nil, shadowAvailIndex: Int? = nil, usedIndex: Int,
    inUse: Int, descriptorTable: UInt64, availRing: UInt64, usedRing: UInt64
  ) {
    self.index = index
    self.size = size
    self.lastAvailIndex = lastAvailIndex
    self.shadowAvailIndex = shadowAvailIndex
    self.usedIndex = usedIndex
    self.inUse = inUse
    self.descriptorTable = descriptorTable
    self.availRing = availRing
    self.usedRing = usedRing
  }
}

/// A consistent, typed picture of the guest at one moment. Feeds the dashboard, `--json` and recordings.
public struct Snapshot: Sendable, Codable, Equatable {
  /// Monotonic capture time in nanoseconds (host clock), for rates.
  public var timeNanoseconds: UInt64
  /// Where the bytes came from.
  public var source: MemorySourceKind
  /// The guest's own description; nil in generic mode (no ABI).
  public var guest: GuestInfo?
  /// Every lcpu record from the ABI.
  public var lcpus: [LCPURecord]
  /// Every lock: the static registry, then the dynamically created ones.
  public var locks: [LockRecord] = []
  /// Kernel threads (free slots left out).
  public var threads: [ThreadRecord] = []
  /// Per-lcpu timer queues.
  public var timerQueues: [TimerQueueRecord] = []
  /// The workload's self-description, when the guest runs one.
  public var workload: WorkloadRecord?
  /// The buddy allocator, when the guest has one.
  public var allocator: AllocatorRecord?
  /// virtio devices as the guest driver sees them.
  public var virtioDevices: [VirtioDeviceRecord] = []
  /// Every virtqueue as the guest driver sees it.
  public var virtqueues: [VirtqRecord] = []
  /// Registers and halted state per vCPU, when the snapshot stopped the VM.
  public var vcpus: [VCPUState]?
  /// QEMU's run state (QMP query-status), when known.
  public var runState: VMRunState?
  /// virtio devices and their queues from QMP, when asked for.
  public var virtio: [VirtioDeviceState]?
  /// Things that could not be read, for the user to see.
  public var problems: [String]
  /// Time spent taking the snapshot, in nanoseconds.
  public var costNanoseconds: UInt64
  /// Of that, the read of guest memory the records were decoded from, in nanoseconds: on a live
  /// source, the window from the first sequence word read to the last.
  public var readNanoseconds: UInt64 = 0
  /// How long the guest was paused for it (0 for a live read).
  public var pauseNanoseconds: UInt64

  /// Creates a snapshot.
  public init(
    timeNanoseconds: UInt64, source: MemorySourceKind, guest: GuestInfo?, lcpus: [LCPURecord],
    vcpus: [VCPUState]? = nil, runState: VMRunState? = nil, problems: [String] = [],
    costNanoseconds: UInt64 = 0, pauseNanoseconds: UInt64 = 0
  ) {
    self.timeNanoseconds = timeNanoseconds
    self.source = source
    self.guest = guest
    self.lcpus = lcpus
    self.vcpus = vcpus
    self.runState = runState
    self.problems = problems
    self.costNanoseconds = costNanoseconds
    self.pauseNanoseconds = pauseNanoseconds
  }

  /// Guest uptime in seconds from the newest timer tick, when the guest reports its clock.
  public var uptimeSeconds: Double? { clock.uptimeSeconds }
}
