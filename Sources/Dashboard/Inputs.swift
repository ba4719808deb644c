import Model
import NIOConcurrencyHelpers

/// Turns a guest code address into "symbol+0x1a"; nil when the address is in no known symbol.
///
/// Called for every visible RIP on every frame, so the caller should cache.
public typealias Symbolizer = (UInt64) -> String?

/// What the dashboard knows about the QEMU process it inspects (from QMP), for the header.
public struct TargetInfo: Sendable, Equatable, Codable {
  /// QEMU's version ("9.2.0").
  public var qemuVersion: String?
  /// The machine type ("pc-q35-9.2").
  public var machine: String?
  /// The kernel ELF's file name (`--kernel`), shown as "kernel NAME"; nil when none was given.
  public var name: String?

  /// Creates target information.
  public init(qemuVersion: String? = nil, machine: String? = nil, name: String? = nil) {
    self.qemuVersion = qemuVersion
    self.machine = machine
    self.name = name
  }
}

/// One disassembled instruction for the detail view (the Disassembly module's `Instruction`, copied).
public struct DisassemblyLine: Sendable, Equatable, Codable {
  /// Address of the first byte.
  public var address: UInt64
  /// The instruction's bytes.
  public var bytes: [UInt8]
  /// "mov", "(bad)".
  public var mnemonic: String
  /// "rbp, rsp".
  public var operands: String
  /// The source line this instruction starts, when it differs from the previous one's
  /// (`Mutex.swift:27 in Mutex.lock()`); the detail view prints it above the instruction.
  public var source: String? = nil

  /// Creates a line.
  public init(address: UInt64, bytes: [UInt8], mnemonic: String, operands: String) {
    self.address = address
    self.bytes = bytes
    self.mnemonic = mnemonic
    self.operands = operands
  }
}

/// What the detail view needs beyond the snapshot, fetched by the caller when `.openDetail` is asked for.
public struct DetailData: Sendable, Equatable, Codable {
  /// The lcpu (or vCPU) this data belongs to; ignored when it is not `state.detail`.
  public var lcpu: Int
  /// Return addresses from a frame-pointer walk, innermost first (nil when none was taken).
  public var frames: [UInt64]?
  /// Instructions around RIP.
  public var disassembly: [DisassemblyLine]
  /// The RIP the disassembly and frames were taken at.
  public var rip: UInt64?
  /// Why something is missing ("code at RIP is not in guest RAM").
  public var note: String?
  /// The frame-pointer walk with source locations (it supersedes `frames` when set).
  public var backtrace: Backtrace? = nil

  /// Creates detail data.
  public init(
    lcpu: Int, frames: [UInt64]? = nil, disassembly: [DisassemblyLine] = [], rip: UInt64? = nil,
    note: String? = nil
  ) {
    self.lcpu = lcpu
    self.frames = frames
    self.disassembly = disassembly
    self.rip = rip
    self.note = note
  }
}

/// The outcome of an effect the sampler carried out (pause, resume, step), for the status line.
public struct EffectResult: Sendable, Equatable, Codable {
  /// Grows with every result, so the run loop takes each one exactly once.
  public var sequence: UInt64
  /// What happened: "VM paused", "stepped lcpu 0 to 0x10be9a Mutex.lock()+0x1a", "step failed: …".
  public var message: String

  /// Creates a result.
  public init(sequence: UInt64, message: String) {
    self.sequence = sequence
    self.message = message
  }
}

/// What one refresh cost beside reading the snapshot itself, so the header can say what a number covers.
public struct SampleCost: Sendable, Equatable, Codable {
  /// Nanoseconds the sampler spent in QMP beside the read (the run state, which is a round trip only
  /// after an event or every 5 s, and the device-side virtio view); 0 without QMP.
  public var qmpNanoseconds: UInt64
  /// Nanoseconds spent reading the detail view's memory and disassembling it; 0 when it is closed.
  public var detailNanoseconds: UInt64

  /// Creates a cost breakdown.
  public init(qmpNanoseconds: UInt64 = 0, detailNanoseconds: UInt64 = 0) {
    self.qmpNanoseconds = qmpNanoseconds
    self.detailNanoseconds = detailNanoseconds
  }
}

/// Everything a frame is drawn from, apart from the UI state.
public struct DashboardData: Sendable {
  /// The latest snapshot; nil before the first one arrives.
  public var snapshot: Snapshot?
  /// Rates between the two latest snapshots; nil after the first one or when the interval was empty.
  public var rates: SnapshotRates?
  /// Detail-view extras for `state.detail`.
  public var detail: DetailData?
  /// QEMU version and machine.
  public var target: TargetInfo
  /// The latest finished effect (pause, resume, step); the run loop puts each new one on the status line.
  public var effect: EffectResult?
  /// What the refresh spent beside the snapshot read; nil when nobody measured it (tests, replays).
  public var cost: SampleCost?
  /// Changes whenever anything above changes (a `Latest` generation will do): the run loop redraws then.
  public var generation: UInt64
  /// The timeline pane's trace data; nil when the guest's trace rings cannot be read.
  public var timeline: TimelineData?
  /// The profile pane's stack samples; nil when the guest's profile rings cannot be read.
  public var profile: ProfileData?

  /// Creates the inputs of a frame.
  public init(
    snapshot: Snapshot?, rates: SnapshotRates? = nil, detail: DetailData? = nil,
    target: TargetInfo = TargetInfo(), effect: EffectResult? = nil, cost: SampleCost? = nil,
    generation: UInt64 = 0
  ) {
    self.snapshot = snapshot
    self.rates = rates
    self.detail = detail
    self.target = target
    self.effect = effect
    self.cost = cost
    self.generation = generation
  }
}

/// The newest value of something produced on another thread (the sampler's snapshot), read by the UI.
public final class Latest<Value: Sendable>: Sendable {
  private let storage: NIOLockedValueBox<(value: Value, generation: UInt64)>

  /// Creates the box with an initial value.
  public init(_ value: Value) { storage = NIOLockedValueBox((value, 0)) }

  /// Replaces the value; readers see it on their next `read`.
  public func publish(_ value: Value) {
    storage.withLockedValue { $0 = (value, $0.generation &+ 1) }
  }

  /// Changes the value in place under the lock.
  public func update(_ body: (inout Value) -> Void) {
    storage.withLockedValue {
      body(&$0.value)
      $0.generation &+= 1
    }
  }

  /// The current value and how many times it was published (to tell whether it changed).
  public func read() -> (value: Value, generation: UInt64) {
    storage.withLockedValue { ($0.value, $0.generation) }
  }
}
