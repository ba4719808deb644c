import ELFSymbols
import GDBRemote
import NIOConcurrencyHelpers
import QEMULaunch
import QMP

/// What to attach to: QEMU's sockets, the guest's symbols and, optionally, its shared RAM file.
public struct TargetOptions: Sendable, Equatable {
  /// The gdbstub: `host:port`, `unix:/path` or a socket path.
  public var gdb: String?
  /// The QMP socket: `host:port`, `unix:/path` or a socket path.
  public var qmp: String?
  /// The kernel ELF (symbols, and `smptop_root` when the guest speaks the ABI).
  public var kernel: String?
  /// A Linux `System.map`, for generic mode.
  public var systemMap: String?
  /// QEMU's `memory-backend-file,share=on` file, for zero-pause live reads.
  public var memoryFile: String?
  /// The machine type (`pc` or `q35`), for the RAM file's layout above 4 GiB.
  public var machine: String = "pc"
  /// A recording to replay instead of a live QEMU (`smptop record` writes them).
  public var recording: String?

  /// Options with nothing set.
  public init() {}
}

extension TargetOptions {
  /// Everything a QEMU launched by `QEMULaunch` offers: its sockets, shared RAM and the kernel it boots.
  public init(_ qemu: QEMUInstance) {
    self.init()
    gdb = qemu.gdbSocketPath
    qmp = qemu.qmpSocketPath
    kernel = qemu.configuration.kernel
    memoryFile = qemu.memoryFilePath
    machine = qemu.configuration.machine
  }
}

/// Why attaching or talking to a target failed, in a sentence a user can act on.
public struct TargetError: Error, CustomStringConvertible, Sendable {
  /// The kind of failure (it picks the command line's exit code).
  public enum Code: Sendable, Equatable {
    case connect, symbols, abi, memory, gdbRequired, guestState
  }
  /// The kind of failure.
  public var code: Code
  /// What happened and what to do.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

/// The result of stepping one vCPU one instruction.
public struct StepRecord: Sendable, Codable, Equatable {
  /// The vCPU stepped.
  public var vcpu: Int
  /// RIP after the step.
  public var rip: UInt64
  /// RIP as symbol+offset.
  public var symbol: String?
  /// Whether the vCPU was halted (or about to execute `hlt`) and the step ended where the
  /// interrupt that woke it entered its handler.
  public var woke: Bool = false
  /// The source line at RIP (innermost frame with a line), when the kernel has DWARF and
  /// the line was asked for.
  public var location: SourceFrame?

  /// Creates a record.
  public init(vcpu: Int, rip: UInt64, symbol: String?, woke: Bool = false, location: SourceFrame? = nil) {
    self.vcpu = vcpu
    self.rip = rip
    self.symbol = symbol
    self.woke = woke
    self.location = location
  }
}

/// The result of stepping one vCPU to the next source line.
public struct LineStepRecord: Sendable, Codable, Equatable {
  /// The vCPU stepped.
  public var vcpu: Int
  /// Where the vCPU started: RIP and its source line (nil without a line).
  public var from: StepRecord
  /// Where it stopped.
  public var to: StepRecord
  /// Instructions stepped.
  public var instructions: Int
  /// Whether the line changed; false when the bound was reached first.
  public var lineChanged: Bool
}

/// An attached QEMU: QMP always (when given), the shared RAM file for live reads, and the
/// gdbstub only when something needs it — connecting to the gdbstub stops the VM, so live
/// mode never touches it unless asked for registers or stepping, and it leaves the VM in
/// the run state the user last chose when it detaches.
///
/// Not thread-safe: one task owns a target.
public final class Target {
  /// The options it was opened with.
  public let options: TargetOptions
  /// The QMP client, when a QMP address was given.
  public let qmp: QMPClient?
  /// The kernel ELF, when given.
  public let elf: ELFFile?
  /// Symbols for RIPs and backtraces (ELF or System.map).
  public let symbols: (any SymbolLookup)?
  /// Address of `smptop_root`; nil means generic mode (a guest without the ABI).
  public let rootAddress: UInt64?
  /// The shared RAM file, when given.
  public let sharedMemory: SharedMemory?
  /// The gdbstub client, once something needed it (its I/O runs off the cooperative pool).
  public private(set) var gdb: GDBRemoteClient?
  /// The recording being replayed, when replaying.
  public let recording: RecordedMemory?

  /// Guest memory through the gdbstub: read only inside `gdb.perform`.
  private var gdbMemory: GDBMemory?
  var liveEngine: SnapshotEngine?
  private var stoppedEngine: SnapshotEngine?
  /// The engine over shared RAM read while the VM is stopped.
  private var frozenEngine: SnapshotEngine?
  var threads: [ThreadID] = []
  /// The kernel's source-line reader, once a line step needed it.
  private var lineReader: SourceLocator?
  /// The run state the user wants (QMP's state at attach, then every pause/resume).
  public internal(set) var wantsRunning = true

  private init(
    options: TargetOptions, qmp: QMPClient?, elf: ELFFile?, symbols: (any SymbolLookup)?, root: UInt64?,
    shared: SharedMemory?, recording: RecordedMemory?
  ) {
    self.options = options
    self.qmp = qmp
    self.elf = elf
    self.symbols = symbols
    self.rootAddress = root
    self.sharedMemory = shared
    self.recording = recording
    if let root, let source: any GuestMemory = recording ?? shared {
      liveEngine = SnapshotEngine(memory: source, rootAddress: root)
    }
  }

  /// Opens symbols and QMP and maps the RAM file. Does not touch the gdbstub.
  public static func open(_ options: TargetOptions) async throws(TargetError) -> Target {
    var elf: ELFFile?
    var symbols: (any SymbolLookup)?
    var root: UInt64?
    if let path = options.kernel {
      do {
        let file = try ELFFile(path: path)
        elf = file
        symbols = file
        root = file.address(of: "smptop_root")
      } catch {
        throw TargetError(.symbols, "cannot read the kernel ELF \(path): \(error)")
      }
    } else if let path = options.systemMap {
      do { symbols = try SystemMap(path: path) } catch {
        throw TargetError(.symbols, "cannot read System.map \(path): \(error)")
      }
    }
    var shared: SharedMemory?
    if let path = options.memoryFile {
      do { shared = try SharedMemory(path: path, machine: options.machine) } catch {
        throw TargetError(.memory, error.description)
      }
    }
    var recording: RecordedMemory?
    if let path = options.recording {
      do { recording = try RecordedMemory(path: path) } catch {
        throw TargetError(.memory, error.description)
      }
      guard root != nil else {
        throw TargetError(.symbols, "replaying needs the kernel ELF the recording was made from (--kernel)")
      }
    }
    var qmp: QMPClient?
    if let address = options.qmp {
      do { qmp = try await QMPClient.connect(to: address) } catch {
        throw TargetError(.connect, "cannot connect to QMP at \(address): \(error)")
      }
    }
    if options.gdb == nil && shared == nil && recording == nil {
      throw TargetError(
        .gdbRequired, "nothing to read guest memory from: give --gdb ADDR and/or --memory-file PATH")
    }
    let target = Target(
      options: options, qmp: qmp, elf: elf, symbols: symbols, root: root, shared: shared, recording: recording
    )
    if let status = try? await qmp?.queryStatus() { target.wantsRunning = status.running }
    return target
  }

  /// True when the guest publishes the inspection ABI (its ELF has `smptop_root`).
  public var speaksABI: Bool { rootAddress != nil }

  /// An address as text: `File.swift:27 in Mutex.lock()` when the kernel has DWARF (a return
  /// address names the line of its call), else `symbol+0x1a`; Swift names demangled and
  /// shortened for display.
  public func symbolize(_ address: UInt64) -> String? { symbolDisplay().text(address) }

  /// `symbol+0x1a` for an address (no source line): the `symbol` field of records.
  public func symbolName(_ address: UInt64) -> String? {
    Self.shortName(symbols, address)
  }

  /// This target's one symbol display, made on first use.
  private var display: SymbolDisplay?

  /// This target's symbol display (one per target, one cache): every symbolizer and site
  /// locator it hands out uses it.
  public func symbolDisplay() -> SymbolDisplay {
    if let display { return display }
    let made = SymbolDisplay(symbols: symbols, locator: try? sourceLocator(), elf: elf)
    display = made
    return made
  }

  /// A thread-safe symbolizer for this target's kernel, with source lines when it has DWARF
  /// (the target's one symbol display, shared with `symbolize(_:)`).
  public func makeSymbolizer() -> @Sendable (UInt64) -> String? {
    let display = symbolDisplay()
    return { display.text($0) }
  }

  /// A thread-safe symbolizer over `symbols` and, when given, the kernel's source lines (for
  /// the UI thread): every place that shows an address as text goes through this.
  ///
  /// With a locator the text is `File.swift:LINE in function` (the innermost frame with a line;
  /// an inlined function is marked `[inlined]`). An address right after a call instruction is
  /// taken for a return address (acquire sites, backtrace frames) and named by the call's line.
  /// Without DWARF for the address it falls back to `symbol+0x1a`.
  public static func symbolizer(
    _ symbols: (any SymbolLookup)?, locator: SourceLocator? = nil, elf: ELFFile? = nil
  ) -> @Sendable (UInt64) -> String? {
    let display = SymbolDisplay(symbols: symbols, locator: locator, elf: elf)
    return { display.text($0) }
  }

  /// The source location of `address` (innermost frame first, the functions it was inlined
  /// into after it), or the symbol alone without DWARF for it; nil when nothing is known.
  public static func location(of address: UInt64, locator: SourceLocator) -> CodeLocation? {
    let frames = locator.frames(at: address)
    guard let first = frames.first, !first.function.hasPrefix("0x") else { return nil }
    let chain = frames.map { f in
      CodeLocation(
        function: displayName(f.function), file: f.hasLine ? f.file : nil, line: f.hasLine ? f.line : 0,
        inlined: f.isInlined)
    }
    var head = chain[0]
    head.inlinedInto = Array(chain.dropFirst())
    return head
  }

  /// The source location of `address` through the kernel's source lines, or the ELF symbol
  /// alone (System.map guests, no `llvm-symbolizer`); nil when nothing is known.
  public func location(of address: UInt64) -> CodeLocation? { symbolDisplay().location(address) }

  /// Whether the instruction that ends right before `address` is a call (`call rel32`, or
  /// `call` through a register or memory operand), read from the ELF's code.
  static func isAfterCall(_ address: UInt64, in elf: ELFFile) -> Bool {
    guard address >= 7, let b = try? elf.bytes(atVirtualAddress: address - 7, count: 7), b.count == 7 else {
      return false
    }
    if b[2] == 0xE8 { return true }  // call rel32
    // FF /2: call r/m64, with ModRM at b[i] and the instruction ending at `address`.
    func ffCall(_ op: Int) -> Bool {
      guard b[op] == 0xFF else { return false }
      let modrm = b[op + 1]
      guard (modrm >> 3) & 7 == 2 else { return false }
      let mod = modrm >> 6
      let rm = modrm & 7
      var length = 2
      if mod != 3 && rm == 4 { length += 1 }  // SIB
      if mod == 1 { length += 1 } else if mod == 2 || (mod == 0 && rm == 5) { length += 4 }
      return op + length == 7
    }
    return (0..<6).contains { ffCall($0) }
  }

  /// The display form of a function's symbol: demangled, shortened, without optimizer
  /// annotations and the module prefix.
  public static func displayName(_ symbol: String) -> String {
    var name = SwiftDemangler.shared.simplifiedName(symbol)
    // Optimizer annotations say nothing to a kernel engineer reading a RIP column.
    for prefix in ["specialized ", "merged ", "outlined ", "static "] {
      while name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
    }
    if name.hasPrefix("Kernel.") { name.removeFirst("Kernel.".count) }
    return name
  }

  /// The display form of the symbol at `address`.
  static func shortName(_ symbols: (any SymbolLookup)?, _ address: UInt64) -> String? {
    guard let match = symbols?.lookup(address) else { return nil }
    let name = displayName(match.name)
    return match.offset == 0 ? name : "\(name)+0x\(String(match.offset, radix: 16))"
  }

  // MARK: Where: backtraces and source locations

  /// Adds where everything is to a snapshot: every thread's backtrace (walked within its own
  /// stack, see ``BacktraceWalker/thread(_:vcpu:text:read:)``), each stopped vCPU's backtrace,
  /// and, with `locate`, the source location of every frame, lock acquire site and panic frame,
  /// and where each lock waiter waits (``WaiterSites``).
  ///
  /// Reads guest memory from shared RAM (no pause) or, without it, through the gdbstub while
  /// the VM is stopped (the walk then runs on the gdbstub client's queue).
  public func addBacktraces(to snap: inout Snapshot, locate: Bool = true) async {
    if sharedMemory == nil, let gdb, let gdbMemory {
      await gdb.perform { connection in
        let stopped = connection.runState == .stopped
        walkBacktraces(&snap) { address, count in stopped ? try? gdbMemory.read(address, count: count) : nil }
      }
    } else {
      walkBacktraces(&snap) { address, count in
        self.sharedMemory.flatMap { try? $0.read(address, count: count) }
      }
    }
    guard locate else { return }
    locateAll(in: &snap)
  }

  /// Every thread's and every stopped vCPU's backtrace, read through `read`.
  private func walkBacktraces(_ snap: inout Snapshot, read: BacktraceWalker.Reader) {
    let text = snap.guest.flatMap { $0.textStart < $0.textEnd ? $0.textStart..<$0.textEnd : nil }
    // Which vCPU runs which thread (a stopped snapshot has registers).
    var vcpuOfThread: [UInt64: VCPUState] = [:]
    for lcpu in snap.lcpus where lcpu.currentThread != 0 {
      if let vcpu = snap.vcpus?.first(where: { $0.index == Int(lcpu.apicID) }), !vcpu.registers.isEmpty {
        vcpuOfThread[lcpu.currentThread] = vcpu
      }
    }
    for i in snap.threads.indices {
      let t = snap.threads[i]
      if t.state == .running, let vcpu = vcpuOfThread[t.id] {
        snap.threads[i].backtrace = BacktraceWalker.thread(t, vcpu: vcpu, text: text, read: read)
      } else {
        snap.threads[i].backtrace = BacktraceWalker.liveThread(t, text: text, read: read)
      }
    }
    if var vcpus = snap.vcpus {
      for i in vcpus.indices {
        let v = vcpus[i]
        guard let rip = v.value(of: "rip"), let rbp = v.value(of: "rbp") else { continue }
        let rsp = v.value(of: "rsp")
        let lcpu = snap.lcpus.first { Int($0.apicID) == v.index }
        // The stack it runs on: the current thread's, else its lcpu's own (idle context).
        var stacks: [Range<UInt64>] = []
        if let lcpu, let t = snap.threads.first(where: { $0.id == lcpu.currentThread && $0.id != 0 }),
          t.stackBottom < t.stackTop
        {
          stacks.append(t.stackBottom..<t.stackTop)
        }
        if let lcpu, lcpu.stackBottom < lcpu.stackTop { stacks.append(lcpu.stackBottom..<lcpu.stackTop) }
        let stack = rsp.flatMap { r in stacks.first { $0.contains(r) } }
        if let stack {
          vcpus[i].backtrace = BacktraceWalker.walk(
            origin: .registers, pc: rip, rbp: rbp, rsp: rsp, stack: stack, text: text, read: read)
        } else {
          vcpus[i].backtrace = Backtrace(
            origin: .registers, frames: [BacktraceFrame(address: rip, isReturnAddress: false)],
            stop: "the stack pointer is in no known stack (thread or lcpu)")
        }
      }
      snap.vcpus = vcpus
    }
  }

  /// The source location of every frame, lock acquire site and panic frame, and where each
  /// lock waiter waits.
  private func locateAll(in snap: inout Snapshot) {
    // Locations: one batch for every address not cached yet.
    var addresses = Set<UInt64>()
    for t in snap.threads { for f in t.backtrace?.frames ?? [] { addresses.insert(f.lookupAddress) } }
    for v in snap.vcpus ?? [] { for f in v.backtrace?.frames ?? [] { addresses.insert(f.lookupAddress) } }
    for l in snap.locks where l.acquireSite != 0 { addresses.insert(l.acquireSite - 1) }
    let display = symbolDisplay()
    let missing = addresses.filter { !display.hasLocation($0) }
    if !missing.isEmpty, let locator = try? sourceLocator() { _ = locator.frames(at: Array(missing)) }
    func locateFrames(_ bt: inout Backtrace?) {
      guard var b = bt else { return }
      for j in b.frames.indices { b.frames[j].location = location(of: b.frames[j].lookupAddress) }
      bt = b
    }
    for i in snap.threads.indices { locateFrames(&snap.threads[i].backtrace) }
    if snap.vcpus != nil {
      for i in snap.vcpus!.indices { locateFrames(&snap.vcpus![i].backtrace) }
    }
    for i in snap.locks.indices where snap.locks[i].acquireSite != 0 {
      snap.locks[i].acquireSiteLocation = location(of: snap.locks[i].acquireSite - 1)
    }
    for i in snap.lcpus.indices {
      guard let panic = snap.lcpus[i].panic else { continue }
      var bt: Backtrace? = Backtrace(
        origin: .panic,
        frames: [BacktraceFrame(address: panic.rip, isReturnAddress: false)]
          + panic.backtrace.map { BacktraceFrame(address: $0, isReturnAddress: true) })
      locateFrames(&bt)
      snap.lcpus[i].panic?.frames = bt
    }
    WaiterSites.add(to: &snap)
  }

  /// Reads guest-physical memory: from shared RAM when mapped, else through the gdbstub
  /// (which needs the VM stopped; nil while it runs).
  public func readMemory(_ address: UInt64, count: Int) async -> [UInt8]? {
    if let sharedMemory { return try? sharedMemory.read(address, count: count) }
    guard let gdb, let gdbMemory else { return nil }
    return await gdb.perform { connection in
      connection.runState == .stopped ? try? gdbMemory.read(address, count: count) : nil
    }
  }

  /// The guest-physical ranges a snapshot of the model reads (for benchmarks and recordings).
  public var modelRanges: [MemoryRange] {
    (liveEngine ?? stoppedEngine)?.modelRanges ?? []
  }

  /// The gdbstub's vCPU threads, once connected.
  public var vcpuThreads: [ThreadID] { threads }

  /// The run state last asked of QMP, and when.
  var cachedRunState: (state: VMRunState, at: ContinuousClock.Instant)?

  /// QEMU's run state from QMP (`running`, `paused`, `debug`, …), nil without QMP.
  ///
  /// Asked with `query-status` only when QMP reported an event since (STOP, RESUME, …),
  /// after this target changed the run state itself, or every 5 s: a sample at 10 Hz then
  /// costs no QMP round trip.
  public func runState() async -> VMRunState? {
    guard let qmp else { return nil }
    let events = qmp.drainEvents()
    if let cached = cachedRunState, events.isEmpty, ContinuousClock.now - cached.at < .seconds(5) {
      return cached.state
    }
    guard let status = try? await qmp.queryStatus() else {
      cachedRunState = nil
      return nil
    }
    let state = VMRunState(status.status.rawValue)
    cachedRunState = (state, .now)
    return state
  }

  // MARK: Snapshots

  /// A live snapshot from the shared RAM file: zero pause, sequence counters honoured.
  public func liveSnapshot() throws(TargetError) -> Snapshot {
    guard let liveEngine else {
      if sharedMemory == nil {
        throw TargetError(.memory, "a live snapshot needs the shared RAM file (--memory-file)")
      }
      throw TargetError(
        .abi, "the kernel ELF has no smptop_root symbol: generic mode needs a stopped snapshot (gdbstub)")
    }
    do {
      var snap = try liveEngine.snapshot()
      if let recording {
        // Replay: the recorder's clock, and the next frame for the next snapshot.
        snap.timeNanoseconds = recording.frames[recording.current].timeNanoseconds
        recording.markPlayed()
        if !recording.advance() { snap.problems.append("end of the recording") }
      }
      return snap
    } catch { throw TargetError(.abi, error.message) }
  }

  /// Where a stopped snapshot reads the model from.
  public enum StoppedModelSource: Sendable, Equatable {
    /// The shared RAM file, while the VM is stopped: only registers cross the gdbstub.
    case sharedRAM
    /// The gdbstub's memory reads, in the same burst as the registers.
    case gdbstub
  }

  /// Where the time of one stopped snapshot went, in nanoseconds.
  public struct StopTiming: Sendable, Equatable, Codable {
    /// From sending the interrupt to its stop reply: stopping every vCPU (0 if it was stopped).
    public var stop: UInt64
    /// Reading the model while stopped (from shared RAM: while the stub answers the register
    /// requests, so the two overlap).
    public var model: UInt64
    /// The rest: reading every vCPU's registers and resuming.
    public var registers: UInt64
  }

  /// The breakdown of the latest stopped snapshot.
  public private(set) var lastStopTiming: StopTiming?

  /// The model source a stopped snapshot uses by default: shared RAM when mapped (and the
  /// guest speaks the ABI), else the gdbstub.
  public var defaultStoppedModelSource: StoppedModelSource {
    sharedMemory != nil && rootAddress != nil && recording == nil ? .sharedRAM : .gdbstub
  }

  /// A stopped snapshot: stops the VM if it runs, reads every register of every vCPU and the
  /// whole model, and resumes it if it was running.
  ///
  /// With the model from shared RAM (the default when mapped) only the registers cross the
  /// gdbstub, in one write that also resumes the VM; the model is read from the mapping while
  /// every vCPU is stopped, so it is exactly consistent. Through the gdbstub the registers and
  /// the model's memory go in one pipelined burst.
  public func stoppedSnapshot(model: StoppedModelSource? = nil) async throws(TargetError) -> Snapshot {
    cachedRunState = nil
    let gdb = try await connectGDB()
    let source = model ?? defaultStoppedModelSource
    let start = monotonicNanoseconds()
    var wasRunning = false
    var pauseStart = start
    var snapshot = Snapshot(timeNanoseconds: start, source: .gdbstub, guest: nil, lcpus: [])
    var problems: [String] = []
    var registers: [ThreadID: Result<RegisterSet, GDBRemoteError>] = [:]
    var resumeError: Error?
    var modelEnd = start
    var end = start
    var infos: [ThreadInfo] = []
    let threads = self.threads
    // Stop, read and resume in one block on the client's queue.
    try await gdb.perform { gdb throws(TargetError) in
      wasRunning = gdb.runState == .running
      do { if wasRunning { try gdb.interrupt() } } catch {
        throw TargetError(.connect, "cannot stop the VM through the gdbstub: \(error)")
      }
      pauseStart = monotonicNanoseconds()
      modelEnd = pauseStart
      if source == .sharedRAM, let root = rootAddress, let sharedMemory {
        let engine =
          frozenEngine ?? SnapshotEngine(memory: StoppedSharedMemory(sharedMemory), rootAddress: root)
        frozenEngine = engine
        // The register requests go first; the model is read while the stub answers them, and
        // the resume is written only after that.
        var model: Result<Snapshot, ABIError> = .failure(ABIError(code: .unreadableRoot, message: "not read"))
        var modelTime: UInt64 = 0
        let read = {
          let t = monotonicNanoseconds()
          model = Result { () throws(ABIError) in try engine.snapshot() }
          modelTime = max(1, monotonicNanoseconds() - t)
        }
        do {
          registers = try gdb.readRegisters(of: threads, thenContinue: wasRunning, whileStopped: read)
        } catch {
          problems.append("cannot read registers: \(error)")
          if modelTime == 0 { read() }
          if wasRunning && gdb.runState != .running {
            do { try gdb.continue() } catch { resumeError = error }
          }
        }
        switch model {
        case .success(let s): snapshot = s
        case .failure(let error): throw TargetError(.abi, error.message)
        }
        snapshot.source = .gdbstub
        modelEnd = pauseStart + modelTime
      } else {
        guard let memory = gdbMemory else { throw TargetError(.connect, "the gdbstub is not connected") }
        memory.registerThreads = threads
        if let root = rootAddress {
          let engine = stoppedEngine ?? SnapshotEngine(memory: memory, rootAddress: root)
          stoppedEngine = engine
          do throws(ABIError) { snapshot = try engine.snapshot() } catch {
            if wasRunning { try? gdb.continue() }
            throw TargetError(.abi, error.message)
          }
        } else {
          _ = memory.read([])  // registers only (generic mode)
          snapshot = Snapshot(timeNanoseconds: start, source: .gdbstub, guest: nil, lcpus: [])
        }
        modelEnd = monotonicNanoseconds()
        registers = memory.registers
        // Halted or not: a guest with the ABI says so itself (IDLE = in hlt), which spares the
        // pause four more stub round trips; a generic guest is asked through qThreadExtraInfo.
        infos = rootAddress == nil ? ((try? gdb.threadInfo(threads)) ?? []) : []
        if wasRunning {
          do { try gdb.continue() } catch { resumeError = error }
        }
      }
      end = monotonicNanoseconds()
    }
    if let resumeError { problems.append("could not resume the VM: \(resumeError)") }
    lastStopTiming = StopTiming(
      stop: wasRunning ? pauseStart - start : 0, model: modelEnd - pauseStart, registers: end - modelEnd)

    snapshot.vcpus = threads.map { thread in
      let index = thread.vcpuIndex ?? 0
      let halted =
        infos.first { $0.thread == thread }?.isHalted
        ?? (snapshot.lcpus.first { $0.apicID == UInt32(index) }?.state == .idle)
      guard case .success(let set)? = registers[thread] else {
        problems.append("registers of vCPU \(index) unreadable")
        return VCPUState(index: index, halted: halted, registers: [], symbol: nil)
      }
      let registers = set.values.compactMap { pair -> VCPUState.Register? in
        guard let value = pair.value.uint64 else { return nil }
        return VCPUState.Register(name: pair.register.name, value: value)
      }
      let rip = set.uint64("rip") ?? set.uint64("pc")
      return VCPUState(index: index, halted: halted, registers: registers, symbol: rip.flatMap(symbolName))
    }
    snapshot.timeNanoseconds = start
    snapshot.pauseNanoseconds = wasRunning ? end - pauseStart : 0
    snapshot.costNanoseconds = end - start
    snapshot.problems += problems
    snapshot.runState = await runState()
    return snapshot
  }

  /// A snapshot the cheapest way available: live from shared RAM when possible, else stopped.
  ///
  /// Generic mode (no ABI) always stops the VM for registers. `virtio` adds QMP's view of
  /// every virtio queue (a few QMP round trips, so the dashboard asks for it less often).
  public func snapshot(preferStopped: Bool = false, virtio: Bool? = nil) async throws(TargetError) -> Snapshot
  {
    var snap: Snapshot
    if !preferStopped, liveEngine != nil {
      snap = try liveSnapshot()
      snap.runState = await runState()
    } else {
      snap = try await stoppedSnapshot()
    }
    if virtio ?? !speaksABI { snap.virtio = await virtioState() }
    return snap
  }

  /// Why the source-line reader could not start (it is not tried again).
  private var lineReaderError: TargetError?

  /// The kernel's source-line reader, started on first use (one `llvm-symbolizer` process).
  public func sourceLocator() throws(TargetError) -> SourceLocator {
    if let lineReader { return lineReader }
    if let lineReaderError { throw lineReaderError }
    guard let path = options.kernel else {
      let error = TargetError(.symbols, "source lines need the kernel ELF: give --kernel PATH")
      lineReaderError = error
      throw error
    }
    do {
      let locator = try SourceLocator(elfPath: path, symbols: elf)
      lineReader = locator
      return locator
    } catch {
      let failure = TargetError(.symbols, "cannot read source lines of \(path): \(error)")
      lineReaderError = failure
      throw failure
    }
  }

  /// Leaves the target: the VM is left in the run state the user last chose.
  ///
  /// `D;1` makes QEMU resume the VM, so when the user wants it paused the gdbstub socket is
  /// closed without detaching instead (QEMU then keeps it paused).
  public func close() async {
    if let gdb {
      let wantsRunning = self.wantsRunning
      await gdb.perform { gdb in
        guard gdb.isConnected else { return }
        if wantsRunning {
          try? gdb.detach()
        } else {
          if gdb.runState == .running { _ = try? gdb.interrupt() }
          gdb.close()
        }
      }
    }
    gdb = nil
    qmp?.close()
  }

  /// Connects to the gdbstub on first use (which stops the VM), learns the vCPUs and the
  /// register layout, and puts the VM back in the state the user wants.
  func connectGDB() async throws(TargetError) -> GDBRemoteClient {
    if let gdb, gdb.isConnected {
      // QMP `cont` resumes the VM without telling the gdbstub client: trust QMP when we have it.
      if let qmp, let status = try? await qmp.queryStatus(), status.running, gdb.runState != .running {
        await gdb.perform { $0.assumeRunning() }
      }
      return gdb
    }
    guard let text = options.gdb else {
      throw TargetError(.gdbRequired, "this needs the gdbstub: give --gdb ADDR (QEMU -gdb ...)")
    }
    let wasRunning: Bool
    if let qmp, let status = try? await qmp.queryStatus() {
      wasRunning = status.running
    } else {
      wasRunning = wantsRunning
    }
    let client: GDBRemoteClient
    let memory: GDBMemory
    do {
      let address = try GDBAddress(parsing: text)
      client = try await GDBRemoteClient.connect(to: address)
      (threads, memory) = try await client.perform { connection throws(GDBRemoteError) in
        try connection.handshake()
        _ = try connection.fetchTargetDescription()
        let threads = try connection.threads()
        if wasRunning { try connection.continue() }
        return (threads, GDBMemory(connection: connection))
      }
    } catch {
      throw TargetError(.connect, "cannot attach to the gdbstub at \(text): \(error)")
    }
    gdb = client
    gdbMemory = memory
    stoppedEngine = nil
    return client
  }
}
