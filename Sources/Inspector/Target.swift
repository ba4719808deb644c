import ELFSymbols
import GDBRemote
import QMP

/// An attached QEMU: QMP always (when given), the shared RAM file for live reads, and the
/// gdbstub only when something needs it — connecting to the gdbstub stops the VM, so live
/// mode never touches it unless asked for registers or stepping, and it leaves the VM in
/// the run state the user last chose when it detaches.
///
/// Not thread-safe: one task owns a target.
///
/// Its jobs live in extensions, one file each: attaching (`Target+Attach`), snapshots
/// (`Target+Snapshots`), backtraces (`Target+Backtraces`), symbol display (`Target+Symbols`),
/// run control and stepping (`Target+RunControl`), the virtio query (`Target+Virtio`) and the
/// recorder (`Target+Recorder`); this file holds what they share.
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
  public internal(set) var gdb: GDBRemoteClient?
  /// The recording being replayed, when replaying.
  public let recording: RecordedMemory?

  /// Guest memory through the gdbstub: read only inside `gdb.perform`.
  var gdbMemory: GDBMemory?
  /// The engine over shared RAM (live) or the recording (replay).
  var liveEngine: SnapshotEngine?
  /// The engine over the gdbstub's memory reads (stopped snapshots without shared RAM).
  var stoppedEngine: SnapshotEngine?
  /// The engine over shared RAM read while the VM is stopped.
  var frozenEngine: SnapshotEngine?
  /// The gdbstub's vCPU threads, once connected.
  var threads: [ThreadID] = []
  /// The kernel's source-line reader, once a line step needed it.
  var lineReader: SourceLocator?
  /// The run state the user wants (QMP's state at attach, then every pause/resume).
  public internal(set) var wantsRunning = true

  /// A target over sources already opened (`open(_:)` opens them).
  init(
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

  /// True when the guest publishes the inspection ABI (its ELF has `smptop_root`).
  public var speaksABI: Bool { rootAddress != nil }

  /// This target's one symbol display, made on first use.
  var display: SymbolDisplay?

  /// The gdbstub's vCPU threads, once connected.
  public var vcpuThreads: [ThreadID] { threads }

  /// The run state last asked of QMP, and when.
  var cachedRunState: (state: VMRunState, at: ContinuousClock.Instant)?

  /// The breakdown of the latest stopped snapshot.
  public internal(set) var lastStopTiming: StopTiming?

  /// Why the source-line reader could not start (it is not tried again).
  var lineReaderError: TargetError?
}
