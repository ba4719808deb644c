import InspectABI

/// Why the inspection ABI could not be decoded at all (a record that cannot be read is not
/// an error: it is marked in the snapshot instead).
public struct ABIError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kind of failure.
  public enum Code: Sendable, Equatable {
    /// The root's magic is zero: the guest has not finished publishing it (still booting).
    case notYetPublished
    /// The root's magic is something else: wrong symbol, wrong ELF, or not an smptop guest.
    case badMagic(found: UInt64)
    /// The guest speaks a version of the ABI this smptop does not know.
    case unsupportedVersion(found: UInt32)
    /// The root claims a size smaller than the structure it must hold.
    case badRootSize(found: UInt32)
    /// The root could not be read.
    case unreadableRoot
  }
  /// The kind of failure.
  public var code: Code
  /// A sentence a user can act on.
  public var message: String

  public var description: String { message }
}

/// The address and shape of one record table, validated against hostile values.
public struct TableLocation: Sendable, Equatable {
  public var address: UInt64
  public var count: Int
  public var stride: Int
  /// Bytes covered by the table.
  public var byteCount: Int { count * stride }
  /// The range to read.
  public var range: MemoryRange { MemoryRange(address: address, count: byteCount) }
}

/// Why a table named by the root cannot be used.
public struct TableError: Error, Sendable, Equatable {
  /// What is wrong with it.
  public var reason: String
  /// True when the guest simply does not publish the table (an older or smaller guest), which
  /// is not a problem to report; false when the root names it with bad values.
  public var absent = false
}

/// Decodes the inspection ABI's records from raw bytes, using the C header's own layouts.
///
/// Guest memory is hostile: every count and stride is bounded, every string is bounded and
/// decoded leniently, and nothing here can trap on any input.
public enum ABIDecoder {
  /// The ABI version this build understands.
  public static let supportedVersion = UInt32(SMPTOP_ABI_VERSION)
  /// The magic word of a published root.
  public static let magic = UInt64(SMPTOP_ABI_MAGIC)
  /// Bytes of the root structure.
  public static let rootSize = MemoryLayout<smptop_root>.size
  /// Bytes of one lcpu record.
  public static let lcpuSize = MemoryLayout<smptop_lcpu>.size
  /// Most records accepted in one table (a garbage count cannot make us read gigabytes).
  public static let maxRecords = 4096
  /// Largest stride accepted.
  public static let maxStride = 64 * 1024

  /// Decodes and validates the root; throws only when the ABI is absent or of another version.
  public static func decodeRoot(_ bytes: [UInt8], at address: UInt64) throws(ABIError) -> smptop_root {
    let decoded = bytes.withUnsafeBytes { raw in
      Result { () throws(ABIError) -> smptop_root in try decodeRoot(raw, at: address) }
    }
    return try decoded.get()
  }

  /// Decodes and validates the root from a raw buffer.
  public static func decodeRoot(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws(ABIError)
    -> smptop_root
  {
    guard bytes.count >= rootSize else {
      throw ABIError(code: .unreadableRoot, message: "the ABI root at 0x\(hex(address)) is truncated")
    }
    let root = load(smptop_root.self, from: bytes, at: 0)
    if root.magic == 0 {
      throw ABIError(
        code: .notYetPublished,
        message: "the guest has not published its inspection ABI at 0x\(hex(address)) yet (still booting?)")
    }
    guard root.magic == magic else {
      throw ABIError(
        code: .badMagic(found: root.magic),
        message: "no smptop inspection ABI at 0x\(hex(address)) (magic 0x\(hex(root.magic))): is the ELF "
          + "given with --kernel the one QEMU is running?")
    }
    guard root.version == supportedVersion else {
      throw ABIError(
        code: .unsupportedVersion(found: root.version),
        message: "the guest speaks inspection ABI version \(root.version); this smptop understands "
          + "version \(supportedVersion). Rebuild smptop and the guest from the same tree.")
    }
    guard Int(root.size) >= rootSize else {
      throw ABIError(
        code: .badRootSize(found: root.size),
        message:
          "the ABI root claims \(root.size) bytes, fewer than the \(rootSize) of version \(root.version)")
    }
    return root
  }

  /// The guest description held in a root.
  public static func guestInfo(_ root: smptop_root) -> GuestInfo {
    var root = root
    let idLength = min(Int(clamping: root.build_id_len), Int(SMPTOP_BUILD_ID_BYTES))
    let buildID = withUnsafeBytes(of: &root.build_id) { raw in
      raw.prefix(idLength).map { hex($0, width: 2) }.joined()
    }
    let commandLine = withUnsafeBytes(of: &root.cmdline) { cString($0) }
    return GuestInfo(
      abiVersion: root.version, buildID: buildID, bootStage: root.boot_stage, features: root.features,
      bootTSC: root.boot_tsc, tscPerMs: root.tsc_per_ms, lapicPerMs: root.lapic_per_ms,
      tickMicroseconds: root.tick_us, lcpusPresent: root.lcpus_present, lcpusOnline: root.lcpus_online,
      ramBytes: root.ram_bytes, kernelStart: root.kernel_start, kernelEnd: root.kernel_end,
      textStart: root.text_start, textEnd: root.text_end, shutdownCode: root.shutdown_code,
      commandLine: commandLine, isrReturn: root.isr_return == 0 ? nil : root.isr_return)
  }

  /// The table in slot `kind` of the root, or a reason it cannot be used.
  public static func table(_ root: smptop_root, kind: Int, recordSize: Int) -> Result<
    TableLocation, TableError
  > {
    var root = root
    guard kind >= 0, kind < Int(SMPTOP_MAX_TABLES), kind < Int(root.table_count) else {
      return .failure(TableError(reason: "the guest publishes no table \(kind)", absent: true))
    }
    let entry = withUnsafeBytes(of: &root.tables) { raw in
      raw.loadUnaligned(fromByteOffset: kind * MemoryLayout<smptop_table>.stride, as: smptop_table.self)
    }
    let stride = Int(entry.stride)
    let count = Int(entry.count)
    if count == 0 { return .success(TableLocation(address: entry.addr, count: 0, stride: recordSize)) }
    guard entry.addr != 0 else { return .failure(TableError(reason: "table \(kind) has a null address")) }
    guard stride >= recordSize, stride <= maxStride else {
      return .failure(
        TableError(reason: "table \(kind) has stride \(stride), expected \(recordSize)...\(maxStride)"))
    }
    guard count <= maxRecords else {
      return .failure(TableError(reason: "table \(kind) claims \(count) records"))
    }
    guard !entry.addr.addingReportingOverflow(UInt64(count * stride)).overflow else {
      return .failure(TableError(reason: "table \(kind) wraps the address space"))
    }
    return .success(TableLocation(address: entry.addr, count: count, stride: stride))
  }

  /// Decodes one lcpu record from `bytes` at `offset` (bounds checked by the caller).
  public static func lcpu(_ bytes: UnsafeRawBufferPointer, at offset: Int, consistency: Consistency)
    -> LCPURecord
  {
    var r = load(smptop_lcpu.self, from: bytes, at: offset)
    let state: LCPUState =
      switch r.state {
      case UInt32(SMPTOP_LCPU_OFFLINE.rawValue): .offline
      case UInt32(SMPTOP_LCPU_INIT.rawValue): .initializing
      case UInt32(SMPTOP_LCPU_IDLE.rawValue): .idle
      case UInt32(SMPTOP_LCPU_BUSY.rawValue): .busy
      case UInt32(SMPTOP_LCPU_HALTED.rawValue): .halted
      default: .unknown
      }
    var panic: PanicRecord?
    if r.panic.seq != 0 {
      let frames = min(Int(clamping: r.panic.frames), Int(SMPTOP_PANIC_FRAMES))
      let trace = withUnsafeBytes(of: &r.panic.backtrace) { raw in
        (0..<frames).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
      }
      panic = PanicRecord(
        vector: r.panic.vector, errorCode: r.panic.error_code, rip: r.panic.rip, rsp: r.panic.rsp,
        rbp: r.panic.rbp, rflags: r.panic.rflags, cr2: r.panic.cr2, tsc: r.panic.tsc, backtrace: trace,
        consistency: r.panic.seq & 1 == 0 ? .consistent : .inconsistent(retries: 0))
    }
    return LCPURecord(
      index: r.index, apicID: r.apic_id, state: state, rawState: r.state, busyDepth: r.busy_depth,
      errorCode: r.error_code, stateSinceTSC: r.state_since_tsc, irqTimer: r.irq_timer, irqIPI: r.irq_ipi,
      irqDevice: r.irq_device, irqSpurious: r.irq_spurious, ipiSent: r.ipi_sent,
      ipiReceived: r.ipi_received, remoteCalls: r.remote_calls, ticks: r.ticks, cyclesIdle: r.cycles_idle,
      cyclesBusy: r.cycles_busy, currentThread: r.current_thread, nextDeadlineTSC: r.next_deadline_tsc,
      lastTickRIP: r.last_tick_rip, lastTickTSC: r.last_tick_tsc, stackBottom: r.stack_bottom,
      stackTop: r.stack_top, workLoops: r.work_loops,
      scheduler: SchedulerCounters(
        runqChecks: r.runq_checks, runqCheckFailures: r.runq_check_failures, sleepInAtomic: r.sleep_in_atomic),
      panic: panic, consistency: consistency)
  }

  /// The sequence word of the record at `offset`.
  static func sequence(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    load(UInt64.self, from: bytes, at: offset)
  }

  /// The sequence word of the record at `offset` of a raw buffer.
  static func sequence(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
    bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
  }

  /// Loads a trivially copyable value; the caller guarantees `offset + size <= bytes.count`.
  static func load<T: BitwiseCopyable>(_ type: T.Type, from bytes: [UInt8], at offset: Int) -> T {
    bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
  }

  /// Loads a trivially copyable value from a raw buffer; the caller guarantees the bounds.
  static func load<T: BitwiseCopyable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer, at offset: Int)
    -> T
  {
    bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
  }

  /// A NUL-terminated string from a fixed buffer, invalid UTF-8 replaced.
  static func cString(_ raw: UnsafeRawBufferPointer) -> String {
    let bytes = raw.prefix { $0 != 0 }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// Lower-case hexadecimal, optionally zero-padded.
func hex<T: BinaryInteger>(_ value: T, width: Int = 0) -> String {
  let digits = String(value, radix: 16)
  return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
