/// A range of guest memory to read.
public struct MemoryRange: Sendable, Hashable {
  /// How addresses are interpreted.
  public enum Space: Sendable, Hashable {
    /// Guest-physical addresses (`Qqemu.PhyMemMode:1`).
    case physical
    /// Virtual addresses, translated by the MMU (CR3) of the given thread, or of the
    /// currently selected thread when nil.
    case virtual(ThreadID?)
  }

  /// The first address.
  public var address: UInt64
  /// The number of bytes.
  public var count: Int
  /// How the address is interpreted.
  public var space: Space

  /// Creates a range.
  public init(address: UInt64, count: Int, space: Space = .physical) {
    self.address = address
    self.count = count
    self.space = space
  }

  /// Splits `[address, address + count)` at 4 KiB page boundaries and into pieces of at
  /// most `limit` bytes.
  static func chunks(address: UInt64, count: Int, limit: Int) -> [(UInt64, Int)] {
    var result: [(UInt64, Int)] = []
    var at = address
    var left = count
    while left > 0 {
      let toPage = 4096 - Int(at & 0xfff)
      let n = min(left, limit, toPage)
      result.append((at, n))
      left -= n
      if left > 0 { at &+= UInt64(n) }
    }
    return result
  }
}

/// The results of ``GDBRemoteConnection/readBatch(registersOf:memory:timeout:)``.
public struct BatchReadResult: Sendable, Equatable {
  /// The registers of each requested thread, or why they could not be read.
  public var registers: [ThreadID: Result<RegisterSet, GDBRemoteError>]
  /// The bytes of each requested range, in request order, or why they could not be read.
  public var memory: [Result<[UInt8], GDBRemoteError>]
}

extension GDBRemoteConnection {
  /// One logical read: the registers of a thread, or one chunk of a memory range.
  enum ReadOp {
    case registers(ThreadID)
    case memory(range: Int, address: UInt64, count: Int, physical: Bool, thread: ThreadID?)
  }

  /// Reads the registers of many threads and many memory ranges in one write and one
  /// read loop: the "stopped snapshot" primitive.
  ///
  /// The requests (`Hg`+`g` per thread; `Qqemu.PhyMemMode` only where the mode changes,
  /// `Hg` before the first request of each round that depends on a thread and wherever the
  /// thread changes; `m` per chunk of at most 2048 bytes within a page) are written at
  /// once and the replies read in order. A request whose reply arrives corrupt is
  /// repeated on its own; a short read is continued.
  ///
  /// - Returns: Per-thread and per-range results; a failure of one does not fail the rest.
  /// - Throws: Connection-level failures (closed, timeout) and refusals to run.
  public func readBatch(
    registersOf threads: [ThreadID], memory ranges: [MemoryRange], timeout: Duration? = nil
  ) throws(GDBRemoteError) -> BatchReadResult {
    try requireStopped("read registers or memory")
    let target: TargetDescription? = threads.isEmpty ? targetDescription : try requireTarget()
    var ops: [ReadOp] = threads.map { .registers($0) }
    var memoryResults: [Result<[UInt8], GDBRemoteError>?] = Array(repeating: nil, count: ranges.count)
    for (i, range) in ranges.enumerated() {
      guard range.count >= 0, range.count <= GDBRemoteConnection.maximumReadSize,
        range.count == 0 || range.address <= UInt64.max - UInt64(range.count - 1)
      else {
        memoryResults[i] = .failure(
          GDBRemoteError(
            .invalidArgument,
            "bad memory range of \(range.count) bytes (at most \(GDBRemoteConnection.maximumReadSize) per range, "
              + "not wrapping around the address space)", address: range.address))
        continue
      }
      let physical: Bool
      let thread: ThreadID?
      switch range.space {
      case .physical: (physical, thread) = (true, nil)
      case .virtual(let t): (physical, thread) = (false, t)
      }
      for (address, count) in MemoryRange.chunks(address: range.address, count: range.count, limit: 2048) {
        ops.append(.memory(range: i, address: address, count: count, physical: physical, thread: thread))
      }
    }

    var results = try perform(ops, timeout: timeout)
    // Requests whose reply stayed corrupt in the pipeline, and short reads: one by one.
    for pass in 0..<(options.maximumRetransmissions + 1) {
      var again: [Int] = []
      for (i, r) in results.enumerated() {
        if case .failure(let e) = r.result, e.isTransient, pass < options.maximumRetransmissions {
          again.append(i)
        } else if case .success(let bytes) = r.result, case .memory(_, _, let count, _, _) = ops[i],
          bytes.count < count, !r.shortReadStalled
        {
          again.append(i)
        }
      }
      if again.isEmpty { break }
      for i in again {
        var op = ops[i]
        var prefix: [UInt8] = []
        if case .success(let bytes) = results[i].result,
          case .memory(let range, let address, let count, let p, let t) = op
        {
          prefix = bytes
          op = .memory(
            range: range, address: address + UInt64(bytes.count), count: count - bytes.count, physical: p,
            thread: t)
        }
        guard var retried = try perform([op], timeout: timeout).first else { continue }
        if case .success(let more) = retried.result {
          retried.result = .success(prefix + more)
          if more.isEmpty { retried.shortReadStalled = true }
        }
        results[i] = retried
      }
    }

    var registers: [ThreadID: Result<RegisterSet, GDBRemoteError>] = [:]
    var memory: [[UInt8]] = Array(repeating: [], count: ranges.count)
    for (i, op) in ops.enumerated() {
      switch op {
      case .registers(let thread):
        registers[thread] = results[i].result.flatMap { reply -> Result<RegisterSet, GDBRemoteError> in
          guard let target else {
            return .failure(GDBRemoteError(.invalidTargetDescription, "no target description"))
          }
          return Result { () throws(GDBRemoteError) in
            try RegisterSet(thread: thread, target: target, reply: reply)
          }
        }
      case .memory(let range, let address, let count, _, _):
        guard memoryResults[range] == nil else { continue }
        switch results[i].result {
        case .failure(let e):
          memoryResults[range] = .failure(e)
        case .success(let bytes):
          if bytes.count != count {
            memoryResults[range] = .failure(
              GDBRemoteError(
                .protocolViolation, "the stub returned \(bytes.count) of \(count) bytes", address: address))
          } else {
            memory[range] += bytes
          }
        }
      }
    }
    for i in ranges.indices where memoryResults[i] == nil {
      memoryResults[i] = .success(memory[i])
    }
    return BatchReadResult(
      registers: registers,
      memory: memoryResults.map { $0 ?? .failure(GDBRemoteError(.protocolViolation, "no result")) })
  }

  struct OpResult {
    /// Raw `g` hex for registers; decoded bytes for memory.
    var result: Result<[UInt8], GDBRemoteError>
    var shortReadStalled = false
  }

  /// The largest memory range one call reads (256 MiB).
  static let maximumReadSize = 256 << 20
  /// How many reads go into one write: large reads become several pipelined rounds, each
  /// with its own deadline, so that memory and time per round stay bounded.
  static let pipelineWindow = 64

  /// Performs `ops` in pipelined rounds of at most ``pipelineWindow``.
  func perform(_ ops: [ReadOp], timeout: Duration?) throws(GDBRemoteError) -> [OpResult] {
    var results: [OpResult] = []
    results.reserveCapacity(ops.count)
    var start = 0
    while start < ops.count {
      let end = min(ops.count, start + GDBRemoteConnection.pipelineWindow)
      results += try performRound(Array(ops[start..<end]), timeout: timeout)
      start = end
    }
    return results
  }

  /// Plans the requests for `ops` (with `Hg`/`Qqemu.PhyMemMode` only where needed),
  /// pipelines them and maps the replies back to the ops.
  func performRound(_ ops: [ReadOp], timeout: Duration?) throws(GDBRemoteError) -> [OpResult] {
    enum Role {
      case select(ThreadID)
      case mode(Bool)
      case op(Int)
    }
    var requests: [(String, Expectation)] = []
    var roles: [Role] = []
    // Indices of the prerequisite requests each op depends on.
    var dependencies: [[Int]] = []
    // No `Hg` is taken from earlier writes: every stop (a step, a QMP `stop`/`cont` by
    // anyone) resets QEMU's selection, so each round leads with its own.
    var plannedThread: ThreadID? = nil
    var plannedMode = physicalMode
    var lastSelect: Int? = nil
    var lastMode: Int? = nil
    for (index, op) in ops.enumerated() {
      var deps: [Int] = []
      func select(_ t: ThreadID) {
        if plannedThread != t {
          requests.append(("Hg\(spelling(t))", .reply))
          roles.append(.select(t))
          lastSelect = requests.count - 1
          plannedThread = t
        }
        if let lastSelect { deps.append(lastSelect) }
      }
      switch op {
      case .registers(let t):
        select(t)
        requests.append(("g", .reply))
      case .memory(_, let address, let count, let physical, let thread):
        if plannedMode != physical {
          requests.append(("Qqemu.PhyMemMode:\(physical ? 1 : 0)", .reply))
          roles.append(.mode(physical))
          lastMode = requests.count - 1
          plannedMode = physical
        }
        if let lastMode { deps.append(lastMode) }
        if !physical {
          if let thread { select(thread) } else if let lastSelect { deps.append(lastSelect) }
        }
        requests.append(("m\(Hex.string(address)),\(Hex.string(UInt64(count)))", .reply))
      }
      roles.append(.op(index))
      dependencies.append(deps)
    }

    // The mode is unknown from the moment a request that changes it is sent until its `OK`.
    if roles.contains(where: { if case .mode = $0 { return true } else { return false } }) {
      physicalMode = nil
    }
    let answers = try exchange(requests, timeout: timeout)
    var failedPrerequisite: [Int: GDBRemoteError] = [:]
    var results: [OpResult] = []
    results.reserveCapacity(ops.count)
    for (r, role) in roles.enumerated() {
      let text = requests[r].0
      switch role {
      case .select:
        do throws(GDBRemoteError) {
          try GDBRemoteConnection.checkOK(answerPayload(try answers[r].get()), for: text)
        } catch {
          failedPrerequisite[r] = error
        }
      case .mode(let on):
        // The stub applies mode requests in order: the last one decides, and one whose
        // answer was lost (it may or may not have run) leaves the mode unknown.
        physicalMode = nil
        do throws(GDBRemoteError) {
          try GDBRemoteConnection.checkOK(answerPayload(try answers[r].get()), for: text)
          physicalMode = on
        } catch {
          failedPrerequisite[r] = error
        }
      case .op(let index):
        if let failed = dependencies[index].lazy.compactMap({ failedPrerequisite[$0] }).first {
          results.append(OpResult(result: .failure(failed)))
          continue
        }
        let reply: [UInt8]
        switch answers[r] {
        case .failure(let e):
          results.append(OpResult(result: .failure(e)))
          continue
        case .success(let a):
          reply = answerPayload(a)
        }
        switch ops[index] {
        case .registers:
          do throws(GDBRemoteError) {
            try GDBRemoteConnection.checkContent(reply, for: text)
            results.append(OpResult(result: .success(reply)))
          } catch {
            results.append(OpResult(result: .failure(error)))
          }
        case .memory(_, let address, let count, _, _):
          do throws(GDBRemoteError) {
            try GDBRemoteConnection.checkContent(reply, for: text, address: address)
            guard let bytes = Hex.decode(reply), bytes.count <= count else {
              throw GDBRemoteError(
                .protocolViolation, "memory reply is not \(count) bytes of hex",
                sent: Printable.excerpt(text),
                received: Printable.excerpt(reply), address: address)
            }
            results.append(OpResult(result: .success(bytes)))
          } catch {
            results.append(OpResult(result: .failure(error)))
          }
        }
      }
    }
    return results
  }
}

extension GDBRemoteConnection {
  /// Reads every register of each of `threads` (`Hg`+`g` each) and, with `thenContinue`,
  /// resumes the target (`c` after the last `g`) without waiting for the registers first.
  ///
  /// The register requests are written, then `whileStopped` runs (say, reading guest RAM
  /// while the stub is busy answering), then the `c` is written: the stub runs the requests
  /// in order, so the target resumes right after it answered the last `g` and after
  /// `whileStopped` returned, with no round trip of its own for the resume. A register read that fails
  /// (a corrupt reply) is that thread's failure and is not repeated when the target has
  /// resumed meanwhile; a stopped target falls back to ``readBatch(registersOf:memory:timeout:)``'s
  /// repeats.
  ///
  /// - Returns: The registers of each thread, or why they could not be read.
  /// - Throws: Connection-level failures (closed, timeout), a missing target description,
  ///   and a resume that was not acknowledged.
  public func readRegisters(
    of threads: [ThreadID], thenContinue: Bool, timeout: Duration? = nil, whileStopped: (() -> Void)? = nil
  ) throws(GDBRemoteError) -> [ThreadID: Result<RegisterSet, GDBRemoteError>] {
    try requireStopped("read registers")
    let target = try requireTarget()
    // A vCPU whose step was interrupted needs `continue()`'s special resume.
    guard thenContinue, staleStepThread == nil else {
      whileStopped?()
      let registers = try readBatch(registersOf: threads, memory: [], timeout: timeout).registers
      if thenContinue { try self.continue() }
      return registers
    }
    var requests: [(String, Expectation)] = []
    requests.reserveCapacity(threads.count * 2 + 1)
    for thread in threads {
      requests.append(("Hg\(spelling(thread))", .reply))
      requests.append(("g", .reply))
    }
    requests.append(("c", .acknowledgement))
    let answers = try exchange(requests, timeout: timeout, holdBack: 1, between: whileStopped)
    var registers: [ThreadID: Result<RegisterSet, GDBRemoteError>] = [:]
    for (i, thread) in threads.enumerated() {
      let select = requests[2 * i].0
      registers[thread] = Result { () throws(GDBRemoteError) in
        try GDBRemoteConnection.checkOK(answerPayload(try answers[2 * i].get()), for: select)
        let reply = answerPayload(try answers[2 * i + 1].get())
        try GDBRemoteConnection.checkContent(reply, for: "g")
        return try RegisterSet(thread: thread, target: target, reply: reply)
      }
    }
    if case .failure? = answers.last, runState != .running {
      // The resume's `+` was lost: resume on its own (the exchange's leading `+` stops a
      // target that did resume, so the `c` is not lost).
      try self.continue()
    }
    return registers
  }
}
