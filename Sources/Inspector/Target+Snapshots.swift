import GDBRemote

// Snapshots: live from shared RAM, stopped through the gdbstub, replayed from a recording.
extension Target {
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
}
