/// Lock kinds after the Unikraft set.
public enum LockKind: String, Sendable, Codable, Equatable {
  case spin, ticket, rw, mutex, semaphore, unknown
}

/// One lock from the registry: who holds it, who waits, and what it has cost.
public struct LockRecord: Sendable, Codable, Equatable {
  /// A lcpu or thread waiting for the lock.
  public struct Waiter: Sendable, Codable, Equatable {
    public var lcpu: UInt32?
    public var thread: UInt64?
    public var sinceTSC: UInt64
    /// Where it waits: the return address (or RIP) of the first frame of its backtrace outside
    /// the lock and scheduler code (``WaiterSites``); nil when not known.
    public var site: UInt64? = nil
    /// The source line of `site`: the frame of that physical frame's inlined chain that is
    /// the waiter's own code.
    public var location: CodeLocation? = nil
    public init(lcpu: UInt32?, thread: UInt64?, sinceTSC: UInt64) {
      self.lcpu = lcpu
      self.thread = thread
      self.sinceTSC = sinceTSC
    }
  }
  public var name: String
  public var kind: LockKind
  public var flags: UInt32
  /// Address of the lock object (its identity).
  public var address: UInt64
  /// Address of the record itself.
  public var recordAddress: UInt64
  public var dynamic: Bool
  public var stateWord: UInt64
  public var holderLCPU: UInt32?
  public var holderThread: UInt64?
  public var readers: UInt32
  public var acquireSite: UInt64
  /// Where `acquireSite` (a return address) is in the source, once symbolized.
  public var acquireSiteLocation: CodeLocation? = nil
  public var acquiredTSC: UInt64
  public var acquisitions: UInt64
  public var contended: UInt64
  public var trylockFailures: UInt64
  public var waitTotalTSC: UInt64
  public var waitMaxTSC: UInt64
  public var holdTotalTSC: UInt64
  public var holdMaxTSC: UInt64
  public var misuseIRQUnsafe: UInt64
  public var misuseSleepInIRQ: UInt64
  public var misuseRecursion: UInt64
  public var misuseBadUnlock: UInt64
  public var waiterCount: UInt32
  public var pendingWriters: UInt32
  public var waiters: [Waiter]
  public var consistency: Consistency

  /// Every misuse counted on this lock.
  public var misuseTotal: UInt64 {
    misuseIRQUnsafe &+ misuseSleepInIRQ &+ misuseRecursion &+ misuseBadUnlock
  }
  /// Whether someone holds it now.
  public var isHeld: Bool { holderLCPU != nil || holderThread != nil || readers > 0 && kind == .rw }
  /// Contended share of acquisitions, 0...100.
  public var contendedPercent: Double {
    acquisitions == 0 ? 0 : 100 * Double(contended) / Double(acquisitions)
  }

  /// A value from all of its fields.
  public init(
    name: String, kind: LockKind, flags: UInt32, address: UInt64, recordAddress: UInt64, dynamic: Bool,
    stateWord: UInt64, holderLCPU: UInt32? = nil, holderThread: UInt64? = nil, readers: UInt32,
    acquireSite: UInt64, acquiredTSC: UInt64, acquisitions: UInt64, contended: UInt64,
    trylockFailures: UInt64, waitTotalTSC: UInt64, waitMaxTSC: UInt64, holdTotalTSC: UInt64,
    holdMaxTSC: UInt64, misuseIRQUnsafe: UInt64, misuseSleepInIRQ: UInt64, misuseRecursion: UInt64,
    misuseBadUnlock: UInt64, waiterCount: UInt32, pendingWriters: UInt32, waiters: [Waiter],
    consistency: Consistency
  ) {
    self.name = name
    self.kind = kind
    self.flags = flags
    self.address = address
    self.recordAddress = recordAddress
    self.dynamic = dynamic
    self.stateWord = stateWord
    self.holderLCPU = holderLCPU
    self.holderThread = holderThread
    self.readers = readers
    self.acquireSite = acquireSite
    self.acquiredTSC = acquiredTSC
    self.acquisitions = acquisitions
    self.contended = contended
    self.trylockFailures = trylockFailures
    self.waitTotalTSC = waitTotalTSC
    self.waitMaxTSC = waitMaxTSC
    self.holdTotalTSC = holdTotalTSC
    self.holdMaxTSC = holdMaxTSC
    self.misuseIRQUnsafe = misuseIRQUnsafe
    self.misuseSleepInIRQ = misuseSleepInIRQ
    self.misuseRecursion = misuseRecursion
    self.misuseBadUnlock = misuseBadUnlock
    self.waiterCount = waiterCount
    self.pendingWriters = pendingWriters
    self.waiters = waiters
    self.consistency = consistency
  }
}

/// Kernel thread states.
public enum ThreadState: String, Sendable, Codable, Equatable {
  case free, running, ready, blockedOnLock = "blocked-lock", blockedOnSemaphore = "blocked-sem"
  case blockedOnWaitQueue = "blocked-waitq", sleeping, spinning, exited, unknown
}

/// One kernel thread.
public struct ThreadRecord: Sendable, Codable, Equatable {
  public var id: UInt64
  public var name: String
  public var state: ThreadState
  public var lcpu: UInt32
  /// The lock, semaphore or wait queue it waits on (0 = none).
  public var blockedOn: UInt64
  public var wakeTSC: UInt64
  public var cpuTSC: UInt64
  public var switches: UInt64
  public var ops: UInt64
  public var consistency: Consistency
  /// Address of the record itself (a live backtrace re-reads it to see the thread did not run).
  public var recordAddress: UInt64 = 0
  /// Its stack, `[stackBottom, stackTop)`.
  public var stackBottom: UInt64 = 0
  /// The end of its stack.
  public var stackTop: UInt64 = 0
  /// The stack pointer its context switch saved while switched out; 0 while it runs.
  public var savedRSP: UInt64 = 0
  /// RIP, RBP and RSP where the latest timer tick interrupted it, and that tick's TSC (0 = never).
  public var tickRIP: UInt64 = 0
  /// RBP at its latest timer tick.
  public var tickRBP: UInt64 = 0
  /// RSP at its latest timer tick.
  public var tickRSP: UInt64 = 0
  /// TSC of its latest timer tick, 0 = never interrupted by one.
  public var tickTSC: UInt64 = 0
  /// Where it is: a frame-pointer walk of its own stack (see ``Backtrace``), once asked for.
  public var backtrace: Backtrace?

  /// A value from all of its fields (the ABI v4 ones default to "not known").
  public init(
    id: UInt64, name: String, state: ThreadState, lcpu: UInt32, blockedOn: UInt64, wakeTSC: UInt64,
    cpuTSC: UInt64, switches: UInt64, ops: UInt64, consistency: Consistency, recordAddress: UInt64 = 0,
    stackBottom: UInt64 = 0, stackTop: UInt64 = 0, savedRSP: UInt64 = 0, tickRIP: UInt64 = 0,
    tickRBP: UInt64 = 0, tickRSP: UInt64 = 0, tickTSC: UInt64 = 0, backtrace: Backtrace? = nil
  ) {
    self.id = id
    self.name = name
    self.state = state
    self.lcpu = lcpu
    self.blockedOn = blockedOn
    self.wakeTSC = wakeTSC
    self.cpuTSC = cpuTSC
    self.switches = switches
    self.ops = ops
    self.consistency = consistency
    self.recordAddress = recordAddress
    self.stackBottom = stackBottom
    self.stackTop = stackTop
    self.savedRSP = savedRSP
    self.tickRIP = tickRIP
    self.tickRBP = tickRBP
    self.tickRSP = tickRSP
    self.tickTSC = tickTSC
    self.backtrace = backtrace
  }

  /// Whether `address` lies in its stack.
  public func stackContains(_ address: UInt64, count: UInt64 = 8) -> Bool {
    stackBottom < stackTop && address >= stackBottom && address <= stackTop &- count
  }
}

extension ThreadRecord {
  private enum Keys: String, CodingKey {
    case id, name, state, lcpu, blockedOn, wakeTSC, cpuTSC, switches, ops, consistency, recordAddress
    case stackBottom, stackTop, savedRSP, tickRIP, tickRBP, tickRSP, tickTSC, backtrace
  }

  /// Decodes the JSON `encode(to:)` writes; the fields ABI v4 added may be absent (older JSON).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Keys.self)
    self.init(
      id: try c.decode(UInt64.self, forKey: .id), name: try c.decode(String.self, forKey: .name),
      state: try c.decode(ThreadState.self, forKey: .state), lcpu: try c.decode(UInt32.self, forKey: .lcpu),
      blockedOn: try c.decode(UInt64.self, forKey: .blockedOn),
      wakeTSC: try c.decode(UInt64.self, forKey: .wakeTSC),
      cpuTSC: try c.decode(UInt64.self, forKey: .cpuTSC),
      switches: try c.decode(UInt64.self, forKey: .switches),
      ops: try c.decode(UInt64.self, forKey: .ops),
      consistency: try c.decode(Consistency.self, forKey: .consistency),
      recordAddress: try c.decodeIfPresent(UInt64.self, forKey: .recordAddress) ?? 0,
      stackBottom: try c.decodeIfPresent(UInt64.self, forKey: .stackBottom) ?? 0,
      stackTop: try c.decodeIfPresent(UInt64.self, forKey: .stackTop) ?? 0,
      savedRSP: try c.decodeIfPresent(UInt64.self, forKey: .savedRSP) ?? 0,
      tickRIP: try c.decodeIfPresent(UInt64.self, forKey: .tickRIP) ?? 0,
      tickRBP: try c.decodeIfPresent(UInt64.self, forKey: .tickRBP) ?? 0,
      tickRSP: try c.decodeIfPresent(UInt64.self, forKey: .tickRSP) ?? 0,
      tickTSC: try c.decodeIfPresent(UInt64.self, forKey: .tickTSC) ?? 0,
      backtrace: try c.decodeIfPresent(Backtrace.self, forKey: .backtrace))
  }
}

/// A code address in source terms: function, file and line, and the functions it was inlined into.
public struct CodeLocation: Sendable, Codable, Equatable, Hashable {
  /// The function's display name (demangled), or its symbol without debug information.
  public var function: String
  /// The source file's path, nil without a line.
  public var file: String?
  /// The 1-based line, 0 when unknown.
  public var line: Int
  /// Whether `function` was inlined into the caller named first in `inlinedInto`.
  public var inlined: Bool
  /// The frames it was inlined into, innermost first (the last is the physical function).
  public var inlinedInto: [CodeLocation]

  /// Creates a location.
  public init(
    function: String, file: String?, line: Int, inlined: Bool = false, inlinedInto: [CodeLocation] = []
  ) {
    self.function = function
    self.file = file
    self.line = line
    self.inlined = inlined
    self.inlinedInto = inlinedInto
  }

  /// `File.swift:27` (the file's last path component), or nil without a line.
  public var shortFileLine: String? {
    guard let file, line > 0 else { return nil }
    return (file.split(separator: "/").last.map(String.init) ?? file) + ":\(line)"
  }

  /// This frame and every frame it was inlined into, innermost first.
  public var chain: [CodeLocation] {
    var own = self
    own.inlinedInto = []
    return [own] + inlinedInto
  }

  /// `File.swift:27 in Mutex.lock()`, or the function alone without a line.
  public var text: String {
    shortFileLine.map { "\($0) in \(function)" } ?? function
  }
}

/// One frame of a ``Backtrace``.
public struct BacktraceFrame: Sendable, Codable, Equatable, Hashable {
  /// The code address: RIP for the innermost frame, a return address for the others.
  public var address: UInt64
  /// Whether `address` is a return address (its source line is that of the call before it).
  public var isReturnAddress: Bool
  /// Whether the frame can be trusted; false when the stack changed while it was read, or the
  /// address lies outside the kernel's code.
  public var trusted: Bool
  /// Why the frame is not trusted.
  public var note: String?
  /// Where the address is in the source, when symbols or DWARF are known.
  public var location: CodeLocation?

  /// Creates a frame.
  public init(
    address: UInt64, isReturnAddress: Bool, trusted: Bool = true, note: String? = nil,
    location: CodeLocation? = nil
  ) {
    self.address = address
    self.isReturnAddress = isReturnAddress
    self.trusted = trusted
    self.note = note
    self.location = location
  }

  /// The address whose source line is the frame's: one byte back for a return address.
  public var lookupAddress: UInt64 { isReturnAddress && address > 0 ? address - 1 : address }
}

/// A call chain recovered from a stack by following saved frame pointers (RBP).
public struct Backtrace: Sendable, Codable, Equatable, Hashable {
  /// Where the walk started from.
  public enum Origin: String, Sendable, Codable, Equatable, Hashable {
    /// The registers of a stopped vCPU.
    case registers
    /// The registers the thread's latest timer tick saw (a running thread, read live).
    case tick
    /// The context a switched-out thread saved on its stack.
    case savedContext = "saved-context"
    /// A panic record's frames (the guest walked them itself).
    case panic
  }
  /// Where the walk started from.
  public var origin: Origin
  /// Innermost first.
  public var frames: [BacktraceFrame]
  /// Why the walk ended early (a pointer outside the stack, an unreadable word, the frame
  /// limit), nil when it reached the stack's outermost frame.
  public var stop: String?
  /// For a walk from a timer tick: the TSC of that tick.
  public var tickTSC: UInt64?

  /// Creates a backtrace.
  public init(origin: Origin, frames: [BacktraceFrame], stop: String? = nil, tickTSC: UInt64? = nil) {
    self.origin = origin
    self.frames = frames
    self.stop = stop
    self.tickTSC = tickTSC
  }
}

/// One lcpu's timer queue.
public struct TimerQueueRecord: Sendable, Codable, Equatable {
  /// A pending timer.
  public struct Pending: Sendable, Codable, Equatable {
    public var deadlineTSC: UInt64
    /// The owning thread (0 = the kernel itself).
    public var ownerThread: UInt64
    /// Where the owner waits for it: the address of the first frame of its backtrace outside
    /// the lock, wait and scheduler code (``WaiterSites``); nil when not known.
    public var ownerSite: UInt64? = nil
    /// The source line of `ownerSite`.
    public var ownerLocation: CodeLocation? = nil

    /// A value from all of its fields.
    public init(
      deadlineTSC: UInt64, ownerThread: UInt64
    ) {
      self.deadlineTSC = deadlineTSC
      self.ownerThread = ownerThread
    }
  }
  public var lcpu: UInt32
  public var pending: UInt32
  public var nextDeadlineTSC: UInt64
  public var fired: UInt64
  public var lateTotalTSC: UInt64
  public var lateMaxTSC: UInt64
  /// Counts of lateness <1us, <10us, <100us, <1ms, <10ms, <100ms, <1s, >=1s.
  public var lateHistogram: [UInt64]
  public var timers: [Pending]
  public var consistency: Consistency

  /// A value from all of its fields.
  public init(
    lcpu: UInt32, pending: UInt32, nextDeadlineTSC: UInt64, fired: UInt64, lateTotalTSC: UInt64,
    lateMaxTSC: UInt64, lateHistogram: [UInt64], timers: [Pending], consistency: Consistency
  ) {
    self.lcpu = lcpu
    self.pending = pending
    self.nextDeadlineTSC = nextDeadlineTSC
    self.fired = fired
    self.lateTotalTSC = lateTotalTSC
    self.lateMaxTSC = lateMaxTSC
    self.lateHistogram = lateHistogram
    self.timers = timers
    self.consistency = consistency
  }
}

/// The workload's self-description.
public struct WorkloadRecord: Sendable, Codable, Equatable {
  public var scenario: String
  public var checks: UInt64
  public var checkFailures: UInt64
  public var expected: UInt64
  public var observed: UInt64
  /// Operations done per lcpu.
  public var ops: [UInt64]
  public var consistency: Consistency

  /// A value from all of its fields.
  public init(
    scenario: String, checks: UInt64, checkFailures: UInt64, expected: UInt64, observed: UInt64,
    ops: [UInt64], consistency: Consistency
  ) {
    self.scenario = scenario
    self.checks = checks
    self.checkFailures = checkFailures
    self.expected = expected
    self.observed = observed
    self.ops = ops
    self.consistency = consistency
  }
}

/// One buddy order.
public struct AllocOrderRecord: Sendable, Codable, Equatable {
  public var order: UInt64
  public var blockBytes: UInt64
  public var freeBlocks: UInt64
  public var usedBlocks: UInt64
  public var allocs: UInt64
  public var frees: UInt64
  public var splits: UInt64
  public var merges: UInt64
  public var failures: UInt64
  public var casRetries: UInt64

  /// A value from all of its fields.
  public init(
    order: UInt64, blockBytes: UInt64, freeBlocks: UInt64, usedBlocks: UInt64, allocs: UInt64, frees: UInt64,
    splits: UInt64, merges: UInt64, failures: UInt64, casRetries: UInt64
  ) {
    self.order = order
    self.blockBytes = blockBytes
    self.freeBlocks = freeBlocks
    self.usedBlocks = usedBlocks
    self.allocs = allocs
    self.frees = frees
    self.splits = splits
    self.merges = merges
    self.failures = failures
    self.casRetries = casRetries
  }
}

/// The buddy allocator.
public struct AllocatorRecord: Sendable, Codable, Equatable {
  public var mode: String
  public var base: UInt64
  public var pageBytes: UInt64
  public var pagesManaged: UInt64
  public var pagesFree: UInt64
  public var largestFreeOrder: UInt64?
  public var churnChecks: UInt64
  public var churnFailures: UInt64
  public var startFreePages: UInt64
  public var heapBytesInUse: UInt64
  public var heapAllocs: UInt64
  public var heapFrees: UInt64
  public var lcpuAllocs: [UInt64]
  public var lcpuFrees: [UInt64]
  public var orders: [AllocOrderRecord]
  public var consistency: Consistency

  /// A value from all of its fields.
  public init(
    mode: String, base: UInt64, pageBytes: UInt64, pagesManaged: UInt64, pagesFree: UInt64,
    largestFreeOrder: UInt64? = nil, churnChecks: UInt64, churnFailures: UInt64, startFreePages: UInt64,
    heapBytesInUse: UInt64, heapAllocs: UInt64, heapFrees: UInt64, lcpuAllocs: [UInt64], lcpuFrees: [UInt64],
    orders: [AllocOrderRecord], consistency: Consistency
  ) {
    self.mode = mode
    self.base = base
    self.pageBytes = pageBytes
    self.pagesManaged = pagesManaged
    self.pagesFree = pagesFree
    self.largestFreeOrder = largestFreeOrder
    self.churnChecks = churnChecks
    self.churnFailures = churnFailures
    self.startFreePages = startFreePages
    self.heapBytesInUse = heapBytesInUse
    self.heapAllocs = heapAllocs
    self.heapFrees = heapFrees
    self.lcpuAllocs = lcpuAllocs
    self.lcpuFrees = lcpuFrees
    self.orders = orders
    self.consistency = consistency
  }
}

/// Virtqueue roles.
public enum VirtqRole: String, Sendable, Codable, Equatable { case rx, tx, ctrl, unknown }

/// One virtio device as the guest driver sees it.
public struct VirtioDeviceRecord: Sendable, Codable, Equatable {
  public var name: String
  public var pciBDF: UInt32
  public var deviceID: UInt32
  public var features: UInt64
  public var queuePairs: UInt32
  public var queues: UInt32
  public var mac: String
  public var linkUp: Bool
  public var msix: Bool
  public var firstQueue: UInt64
  public var consistency: Consistency

  /// A value from all of its fields.
  public init(
    name: String, pciBDF: UInt32, deviceID: UInt32, features: UInt64, queuePairs: UInt32, queues: UInt32,
    mac: String, linkUp: Bool, msix: Bool, firstQueue: UInt64, consistency: Consistency
  ) {
    self.name = name
    self.pciBDF = pciBDF
    self.deviceID = deviceID
    self.features = features
    self.queuePairs = queuePairs
    self.queues = queues
    self.mac = mac
    self.linkUp = linkUp
    self.msix = msix
    self.firstQueue = firstQueue
    self.consistency = consistency
  }
}

/// One virtqueue as the guest driver sees it.
public struct VirtqRecord: Sendable, Codable, Equatable {
  public var device: UInt32
  public var index: UInt32
  public var role: VirtqRole
  public var lcpu: UInt32
  public var size: UInt32
  public var freeDescriptors: UInt32
  public var availIndex: UInt32
  public var usedIndex: UInt32
  public var lastUsed: UInt32
  public var notificationsOff: Bool
  public var packets: UInt64
  public var bytes: UInt64
  public var errors: UInt64
  public var drops: UInt64
  public var kicks: UInt64
  public var interrupts: UInt64
  public var polls: UInt64
  public var descriptorTable: UInt64
  public var availRing: UInt64
  public var usedRing: UInt64
  public var consistency: Consistency

  /// A value from all of its fields.
  public init(
    device: UInt32, index: UInt32, role: VirtqRole, lcpu: UInt32, size: UInt32, freeDescriptors: UInt32,
    availIndex: UInt32, usedIndex: UInt32, lastUsed: UInt32, notificationsOff: Bool, packets: UInt64,
    bytes: UInt64, errors: UInt64, drops: UInt64, kicks: UInt64, interrupts: UInt64, polls: UInt64,
    descriptorTable: UInt64, availRing: UInt64, usedRing: UInt64, consistency: Consistency
  ) {
    self.device = device
    self.index = index
    self.role = role
    self.lcpu = lcpu
    self.size = size
    self.freeDescriptors = freeDescriptors
    self.availIndex = availIndex
    self.usedIndex = usedIndex
    self.lastUsed = lastUsed
    self.notificationsOff = notificationsOff
    self.packets = packets
    self.bytes = bytes
    self.errors = errors
    self.drops = drops
    self.kicks = kicks
    self.interrupts = interrupts
    self.polls = polls
    self.descriptorTable = descriptorTable
    self.availRing = availRing
    self.usedRing = usedRing
    self.consistency = consistency
  }
}

/// A wait-for cycle: each thread waits for a lock the next one holds (ABBA and longer).
public struct WaitCycle: Sendable, Codable, Equatable {
  /// One edge: `thread` waits for `lock`, held by the next step's thread.
  public struct Step: Sendable, Codable, Equatable {
    public var thread: UInt64
    public var lock: String
    public var lockAddress: UInt64

    /// A value from all of its fields.
    public init(
      thread: UInt64, lock: String, lockAddress: UInt64
    ) {
      self.thread = thread
      self.lock = lock
      self.lockAddress = lockAddress
    }
  }
  public var steps: [Step]

  /// A value from all of its fields.
  public init(
    steps: [Step]
  ) {
    self.steps = steps
  }
}

/// One lcpu's scheduler self-check counters (struct smptop_lcpu, ABI v3).
public struct SchedulerCounters: Sendable, Codable, Equatable {
  /// Run-queue self-checks the lcpu ran (one per timer tick once threads run).
  public var runqChecks: UInt64
  /// Self-checks that found the run queue and the thread table disagreeing (0 when healthy).
  public var runqCheckFailures: UInt64
  /// Times a thread tried to block with preemption off (not switched out, counted).
  public var sleepInAtomic: UInt64

  /// Creates the counters.
  public init(runqChecks: UInt64, runqCheckFailures: UInt64, sleepInAtomic: UInt64) {
    self.runqChecks = runqChecks
    self.runqCheckFailures = runqCheckFailures
    self.sleepInAtomic = sleepInAtomic
  }
}
