import ELFSymbols
import GDBRemote

/// One round of sampling a guest without the inspection ABI: every vCPU's RIP and frame chain,
/// read through the gdbstub while the VM was stopped for it.
public struct PauseRound: Sendable, Equatable {
  /// One sample per vCPU whose registers could be read: `lcpu` is the vCPU index, `position`
  /// the round, `tsc` the host's monotonic nanoseconds at the stop, `idle` whether the vCPU
  /// was halted, `periods` 1.
  public var samples: [ProfileSample]
  /// Whether this round stopped the VM (false when it was stopped already).
  public var paused: Bool
  /// How long the VM stayed stopped, in nanoseconds: from the stop reply to the resume's
  /// acknowledgement (0 when this round did not stop it).
  public var pauseNanoseconds: UInt64
  /// What could not be read (a vCPU's registers, say), one sentence each.
  public var problems: [String]
}

/// How a pausing sample walks the frame-pointer chain, and the checks that keep the walk
/// to reads of the interrupted stack.
public struct PauseSampling: Sendable, Equatable {
  /// Return addresses kept per sample (0 = the interrupted instruction only).
  public var maxFrames: Int
  /// Bytes of stack read from RBP up, in the same stop: the chain ends where it leaves them.
  public var stackWindow: Int
  /// How far above RSP the frame pointer may be for the walk to start (farther means RBP
  /// does not point into the interrupted stack).
  public var maxFrameDistance: UInt64

  /// The defaults: up to 16 frames within 1 KiB of stack above RBP, RBP within 64 KiB of RSP.
  public init(maxFrames: Int = 16, stackWindow: Int = 1024, maxFrameDistance: UInt64 = 64 << 10) {
    self.maxFrames = max(0, maxFrames)
    self.stackWindow = max(16, min(stackWindow, 4096))
    self.maxFrameDistance = maxFrameDistance
  }
}

extension Target {
  /// Samples every vCPU once by pausing the VM: stops it (when it runs), reads every vCPU's
  /// registers, whether it is halted and, in 64-bit mode, a bounded window of its stack from
  /// RBP, then resumes it. For guests without the inspection ABI (whose own samples would need
  /// no pause).
  ///
  /// The frame walk reads only what passes these checks, and only while the VM is stopped:
  /// the vCPU is in long mode (EFER.LMA), RBP is 8-byte aligned and at most
  /// ``PauseSampling/maxFrameDistance`` above RSP (so it points into the stack being run on, which
  /// is RAM, not a device), and the window is read in one page-split batch (a page the stub
  /// refuses ends the chain there). Each saved RBP must be higher than the last and stay in the
  /// window; each return address must be canonical, non-zero and, with symbols, inside a symbol.
  /// A chain that breaks a rule ends there, so a guest built without frame pointers gets short
  /// or empty chains, never wrong reads.
  ///
  /// The VM is resumed also when a read fails; an error leaves it running whenever the stub
  /// still answers.
  public func samplePaused(round: UInt64, sampling: PauseSampling = PauseSampling()) async throws(TargetError)
    -> PauseRound
  {
    cachedRunState = nil
    let gdb = try await connectGDB()
    let threads = self.threads
    let symbols = self.symbols
    return try await gdb.perform { gdb throws(TargetError) -> PauseRound in
      let wasRunning = gdb.runState == .running
      do throws(GDBRemoteError) {
        if wasRunning { try gdb.interrupt() }
      } catch {
        throw TargetError(.connect, "cannot stop the VM through the gdbstub: \(error)")
      }
      let stopped = monotonicNanoseconds()
      var result = PauseRound(samples: [], paused: wasRunning, pauseNanoseconds: 0, problems: [])
      do throws(GDBRemoteError) {
        result.samples = try Self.readSamples(
          gdb, threads: threads, symbols: symbols, round: round, time: stopped, sampling: sampling,
          problems: &result.problems)
      } catch {
        if wasRunning { try? gdb.continue() }
        throw TargetError(.connect, "cannot read the vCPUs through the gdbstub: \(error)")
      }
      if wasRunning {
        do throws(GDBRemoteError) { try gdb.continue() } catch {
          throw TargetError(.connect, "cannot resume the VM through the gdbstub: \(error)")
        }
        result.pauseNanoseconds = monotonicNanoseconds() - stopped
      }
      return result
    }
  }

  /// Reads the samples of one stopped round: registers and halted state of every vCPU in two
  /// pipelined rounds, then (for the vCPUs whose walk may start) their stack windows in a third.
  private static func readSamples(
    _ gdb: GDBRemoteConnection, threads: [ThreadID], symbols: (any SymbolLookup)?, round: UInt64,
    time: UInt64,
    sampling: PauseSampling, problems: inout [String]
  ) throws(GDBRemoteError) -> [ProfileSample] {
    let registers = try gdb.readBatch(registersOf: threads, memory: []).registers
    let halted = Dictionary(
      (try? gdb.threadInfo(threads))?.map { ($0.thread, $0.isHalted == true) } ?? [],
      uniquingKeysWith: { a, _ in a })
    struct Seen {
      var vcpu: Int
      var rip: UInt64
      var idle: Bool
      var window: StackWindow?
    }
    var seen: [Seen] = []
    var ranges: [GDBRemote.MemoryRange] = []
    for thread in threads {
      let vcpu = thread.vcpuIndex ?? 0
      guard case .success(let set)? = registers[thread], let rip = set.uint64("rip") ?? set.uint64("pc")
      else {
        problems.append("registers of vCPU \(vcpu) unreadable")
        continue
      }
      let idle = halted[thread] ?? false
      var window: StackWindow?
      if sampling.maxFrames > 0, !idle,
        let w = StackWindow(
          rbp: set.uint64("rbp"), rsp: set.uint64("rsp"), efer: set.uint64("efer"), sampling: sampling)
      {
        window = w
        w.first = ranges.count
        ranges += w.ranges(thread)
      }
      seen.append(Seen(vcpu: vcpu, rip: rip, idle: idle, window: window))
    }
    let memory = ranges.isEmpty ? [] : try gdb.readBatch(registersOf: [], memory: ranges).memory
    return seen.map { s in
      var frames: [UInt64] = []
      var truncated = false
      if let w = s.window {
        (frames, truncated) = w.walk(
          Array(memory[w.first..<(w.first + w.pages.count)]), maxFrames: sampling.maxFrames, symbols: symbols)
      }
      return ProfileSample(
        lcpu: UInt32(s.vcpu), position: round, tsc: time, thread: 0, periods: 1, idle: s.idle,
        truncated: truncated, rip: s.rip, frames: frames)
    }
  }
}

/// The stack a pausing sample reads to walk one vCPU's frame-pointer chain: from RBP up,
/// split at page boundaries so a page the stub refuses ends the window there.
final class StackWindow {
  /// The frame pointer the walk starts at, and the first byte read.
  let base: UInt64
  /// `[address, count)` of each page-bounded piece, lowest first.
  let pages: [(address: UInt64, count: Int)]
  /// Index of the first piece in the round's batch of ranges.
  var first = 0

  /// A window for a vCPU in long mode whose RBP is aligned and within reach above RSP; nil
  /// when the walk must not start.
  init?(rbp: UInt64?, rsp: UInt64?, efer: UInt64?, sampling: PauseSampling) {
    guard let rbp, let rsp, let efer, efer & (1 << 10) != 0,  // EFER.LMA: 64-bit paging is on
      rbp & 7 == 0, rbp >= rsp, rbp - rsp <= sampling.maxFrameDistance,
      StackWindow.isCanonical(rbp), rbp <= UInt64.max - UInt64(sampling.stackWindow)
    else { return nil }
    base = rbp
    var pieces: [(UInt64, Int)] = []
    var at = rbp
    var left = sampling.stackWindow
    while left > 0 {
      let n = min(left, 4096 - Int(at & 0xfff))
      pieces.append((at, n))
      left -= n
      at += UInt64(n)
    }
    pages = pieces
  }

  /// The ranges to read, through `thread`'s page tables.
  func ranges(_ thread: ThreadID) -> [GDBRemote.MemoryRange] {
    pages.map { GDBRemote.MemoryRange(address: $0.address, count: $0.count, space: .virtual(thread)) }
  }

  /// Whether `address` is canonical for 48-bit virtual addresses (bits 63..47 all equal).
  static func isCanonical(_ address: UInt64) -> Bool {
    let top = address >> 47
    return top == 0 || top == 0x1FFFF
  }

  /// Walks the chain through the bytes read (one result per piece): return addresses,
  /// innermost first, and whether the chain went on past what was kept.
  func walk(_ results: [Result<[UInt8], GDBRemoteError>], maxFrames: Int, symbols: (any SymbolLookup)?)
    -> (frames: [UInt64], truncated: Bool)
  {
    // The contiguous bytes from `base`: up to the first piece that failed or came back short.
    var bytes: [UInt8] = []
    for (i, r) in results.enumerated() {
      guard case .success(let b) = r, b.count == pages[i].count else { break }
      bytes += b
    }
    func word(_ address: UInt64) -> UInt64? {
      guard address >= base, address - base <= UInt64(bytes.count),
        UInt64(bytes.count) - (address - base) >= 8
      else { return nil }
      let at = Int(address - base)
      var v: UInt64 = 0
      for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * k) }
      return v
    }
    func isCode(_ address: UInt64) -> Bool {
      guard address != 0, Self.isCanonical(address) else { return false }
      guard let symbols else { return true }
      guard let match = symbols.lookup(address) else { return false }
      return match.size == nil || match.isWithinSymbol
    }
    var frames: [UInt64] = []
    var fp = base
    while true {
      guard let next = word(fp), let ret = word(fp + 8) else {
        // The chain leaves the window: there may be more frames than were read.
        return (frames, !frames.isEmpty)
      }
      guard isCode(ret) else { return (frames, false) }
      if frames.count == maxFrames { return (frames, true) }
      frames.append(ret)
      guard next > fp, next & 7 == 0, next - fp <= 64 << 10 else { return (frames, false) }
      fp = next
    }
  }
}

extension Target {
  /// Whether QMP says the VM is stopped although this target did not leave it so (the user
  /// paused it, say); when it is, the target will leave it stopped on ``close()``. False
  /// without QMP.
  public func isStoppedByOthers() async -> Bool {
    guard let qmp, let status = try? await qmp.queryStatus() else { return false }
    _ = qmp.drainEvents()
    cachedRunState = nil
    if !status.running { wantsRunning = false }
    return !status.running
  }
}
