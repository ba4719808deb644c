import ELFSymbols
import GDBRemote

// Run control and stepping: QMP's run state, pause, resume, and single steps of one vCPU
// through the gdbstub.
extension Target {
  /// Pauses the VM (QMP `stop`, or the gdbstub's interrupt without QMP).
  public func pause() async throws(TargetError) {
    wantsRunning = false
    cachedRunState = nil
    if let qmp {
      do { try await qmp.stop() } catch { throw TargetError(.connect, "QMP stop failed: \(error)") }
      if let gdb { _ = await gdb.perform { try? $0.waitForStop(timeout: .milliseconds(200)) } }
    } else if let gdb {
      do { _ = try await gdb.perform { gdb throws(GDBRemoteError) in try gdb.interrupt() } } catch {
        throw TargetError(.connect, "cannot stop the VM: \(error)")
      }
    }
  }

  /// Resumes the VM (through the gdbstub when connected, so it knows; else QMP `cont`).
  public func resume() async throws(TargetError) {
    wantsRunning = true
    cachedRunState = nil
    if let gdb, gdb.isConnected {
      do { try await gdb.perform { gdb throws(GDBRemoteError) in try gdb.continue() } } catch {
        throw TargetError(.connect, "cannot resume the VM: \(error)")
      }
    } else if let qmp {
      do { try await qmp.cont() } catch { throw TargetError(.connect, "QMP cont failed: \(error)") }
    }
  }

  /// How long a step of a halted vCPU may wait for the interrupt that wakes it.
  public static let wakeTimeout: Duration = .seconds(3)

  /// Steps vCPU `vcpu` by `count` instructions while every other vCPU stays stopped.
  ///
  /// The VM is stopped first if it runs; with `restore` it is resumed afterwards if it was
  /// running. A step masks interrupts and timers (QEMU's default), except on a vCPU that is
  /// halted or about to execute `hlt`: that step runs with interrupts and timers on, so it
  /// ends at the first instruction of the handler of the interrupt that wakes the vCPU
  /// (within ``wakeTimeout``), and the flags are set back afterwards.
  public func step(vcpu: Int, count: Int, restore: Bool = true) async throws(TargetError) -> [StepRecord] {
    try await stepping(vcpu: vcpu, restore: restore) { gdb, thread throws(GDBRemoteError) in
      var records: [StepRecord] = []
      var rip: UInt64?
      for _ in 0..<count {
        let record = try stepInstruction(gdb, thread, vcpu: vcpu, rip: rip, first: records.isEmpty)
        rip = record.rip
        records.append(record)
      }
      return records
    }
  }

  /// Steps vCPU `vcpu` until its source line changes (at most `limit` instructions) while
  /// every other vCPU stays stopped.
  ///
  /// The line is the innermost frame with a line at RIP (``SourceLocator``); instructions
  /// without a line (assembly, compiler-generated code) do not end the step. A halted vCPU
  /// wakes into its interrupt handler as in ``step(vcpu:count:restore:)``.
  public func stepLine(vcpu: Int, limit: Int = 10_000, restore: Bool = true) async throws(TargetError)
    -> LineStepRecord
  {
    let locator = try sourceLocator()
    return try await stepping(vcpu: vcpu, restore: restore) { gdb, thread throws(GDBRemoteError) in
      let startRIP = try readRIP(gdb, thread)
      let startLine = locator.location(at: startRIP)
      let from = StepRecord(
        vcpu: vcpu, rip: startRIP, symbol: symbolName(startRIP), location: startLine.hasLine ? startLine : nil
      )
      var last = from
      for n in 1...max(1, limit) {
        var record = try stepInstruction(gdb, thread, vcpu: vcpu, rip: last.rip, first: n == 1)
        let here = locator.location(at: record.rip)
        record.location = here.hasLine ? here : nil
        last = record
        if here.hasLine && (here.file != startLine.file || here.line != startLine.line || !startLine.hasLine)
        {
          return LineStepRecord(vcpu: vcpu, from: from, to: record, instructions: n, lineChanged: true)
        }
      }
      return LineStepRecord(vcpu: vcpu, from: from, to: last, instructions: max(1, limit), lineChanged: false)
    }
  }

  /// Connects, stops the VM if it runs, runs `body` on the vCPU's thread, and resumes the VM
  /// afterwards with `restore` if it was running. Stop, `body` and resume run as one block on
  /// the gdbstub client's queue.
  private func stepping<T>(
    vcpu: Int, restore: Bool,
    _ body: (GDBRemoteConnection, ThreadID) throws(GDBRemoteError) -> T
  ) async throws(TargetError) -> T {
    cachedRunState = nil
    let gdb = try await connectGDB()
    guard let thread = threads.first(where: { $0.vcpuIndex == vcpu }) else {
      throw TargetError(.guestState, "there is no vCPU \(vcpu) (the VM has \(threads.count))")
    }
    let (result, resumed) = try await gdb.perform { gdb throws(TargetError) -> (T, Bool) in
      let wasRunning = gdb.runState == .running
      let result: T
      do throws(GDBRemoteError) {
        if wasRunning { try gdb.interrupt() }
        result = try body(gdb, thread)
      } catch {
        if restore && wasRunning { try? gdb.continue() }
        if error.code == .stepTimedOut {
          throw TargetError(.guestState, "vCPU \(vcpu) did not finish its step: \(error.message)")
        }
        throw TargetError(.connect, "step failed: \(error)")
      }
      guard restore && wasRunning else { return (result, false) }
      do { try gdb.continue() } catch {
        throw TargetError(.connect, "cannot resume after the step: \(error)")
      }
      return (result, true)
    }
    if !resumed { wantsRunning = false }
    return result
  }

  /// Steps one instruction; a halted vCPU, or one whose next instruction is `hlt`, steps
  /// with interrupts on and ends in the handler that woke it. `rip` is the current RIP when
  /// known (saves a read). Only the `first` step asks whether the vCPU is halted: after a
  /// step of anything but `hlt`, or a step that woke it, it is not.
  private func stepInstruction(
    _ gdb: GDBRemoteConnection, _ thread: ThreadID, vcpu: Int, rip: UInt64?, first: Bool
  ) throws(GDBRemoteError) -> StepRecord {
    var wake = false
    if first { wake = try gdb.threadInfo(thread).isHalted == true }
    if !wake {
      let pc: UInt64
      if let rip { pc = rip } else { pc = try readRIP(gdb, thread) }
      wake = (try? gdb.readMemory(address: pc, count: 1, thread: thread)) == [0xF4]
    }
    if wake {
      try gdb.step(thread: thread, timeout: Self.wakeTimeout, mode: .interruptsOn)
    } else {
      try gdb.step(thread: thread, mode: .forceMasked)
    }
    let after = try readRIP(gdb, thread)
    return StepRecord(vcpu: vcpu, rip: after, symbol: symbolName(after), woke: wake)
  }

  /// The vCPU's RIP.
  private func readRIP(_ gdb: GDBRemoteConnection, _ thread: ThreadID) throws(GDBRemoteError) -> UInt64 {
    guard let rip = try gdb.readRegister("rip", of: thread).uint64 else {
      throw GDBRemoteError(.protocolViolation, "the stub returned no value for rip")
    }
    return rip
  }

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
