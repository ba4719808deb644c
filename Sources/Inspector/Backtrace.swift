import InspectABI

/// Recovers call chains from guest stacks by following saved frame pointers (RBP), the way the
/// guest's own code lays them out: `push rbp; mov rbp, rsp` in every function, so `[rbp]` holds
/// the caller's RBP and `[rbp + 8]` the return address into the caller.
///
/// Every walk is bounded: by the stack it runs on (a frame pointer outside it ends the walk),
/// by the kernel's code range (a return address outside it is kept, marked untrusted, and ends
/// the walk) and by ``maxFrames``. Nothing is invented: a frame the stack does not hold is not
/// shown, and the reason the walk ended is kept in ``Backtrace/stop``.
public enum BacktraceWalker {
  /// The most frames one walk returns.
  public static let maxFrames = 32

  /// Reads `count` bytes of guest memory at an address; nil when unreadable.
  public typealias Reader = (UInt64, Int) -> [UInt8]?

  /// Walks from a register state: `pc` is the innermost frame (RIP, or a return address when
  /// `pcIsReturnAddress`), `rbp` the frame pointer, `rsp` the stack pointer.
  ///
  /// When `rsp` is known and `pc` sits where the function's frame is not (yet, or any more)
  /// set up — at `push rbp`, at `mov rbp, rsp` right after it, or at `ret` — the caller's
  /// return address is read from the top of the stack instead, so the caller is not skipped.
  ///
  /// A return address equal to `interruptReturn` (the root's `isr_return`) is an interrupt
  /// handler's: the walk goes on in the context the interrupt stopped, from the
  /// `struct smptop_trap_frame` above that frame (its RIP, which no frame pointer leads to,
  /// then its RBP; its RSP when that RIP sits in a prologue).
  ///
  /// - Parameters:
  ///   - stack: the stack the walk may read, `[lower, upper)`; nil walks without a bound
  ///     (only for a panic record, which the guest bounded itself).
  ///   - text: the kernel's code; return addresses outside it are marked and end the walk.
  ///   - interruptReturn: where the interrupt entry's call of its dispatcher returns.
  public static func walk(
    origin: Backtrace.Origin, pc: UInt64, pcIsReturnAddress: Bool = false, rbp: UInt64, rsp: UInt64?,
    stack: Range<UInt64>?, text: Range<UInt64>?, interruptReturn: UInt64? = nil, read: Reader
  ) -> Backtrace {
    var frames = [BacktraceFrame(address: pc, isReturnAddress: pcIsReturnAddress)]
    if let text, !text.contains(pc) {
      frames[0].trusted = false
      frames[0].note = "outside the kernel's code"
    }
    var fp = rbp
    // Frame 0 outside its own frame: the return address is at the top of the stack.
    if let rsp, !pcIsReturnAddress, let offset = prologueOffset(pc: pc, read: read) {
      guard let stack, inside(stack, rsp + offset, 8) else {
        return Backtrace(origin: origin, frames: frames, stop: "stack pointer \(hex(rsp)) outside the stack")
      }
      guard let ret = word(read, rsp + offset) else {
        return Backtrace(origin: origin, frames: frames, stop: "unreadable stack at \(hex(rsp + offset))")
      }
      if let stop = append(ret, to: &frames, text: text) {
        return Backtrace(origin: origin, frames: frames, stop: stop)
      }
    }
    while frames.count < maxFrames {
      if fp == 0 { return Backtrace(origin: origin, frames: frames) }  // the outermost frame
      if let stack, !inside(stack, fp, 16) {
        return Backtrace(
          origin: origin, frames: frames,
          stop:
            "frame pointer \(hex(fp)) outside the stack [\(hex(stack.lowerBound)), \(hex(stack.upperBound)))")
      }
      if fp & 7 != 0 {
        return Backtrace(origin: origin, frames: frames, stop: "misaligned frame pointer \(hex(fp))")
      }
      guard let bytes = read(fp, 16), bytes.count == 16 else {
        return Backtrace(origin: origin, frames: frames, stop: "unreadable frame at \(hex(fp))")
      }
      let next = le64(bytes, 0)
      let ret = le64(bytes, 8)
      if ret == 0 { return Backtrace(origin: origin, frames: frames) }  // a thread's first frame
      if let stop = append(ret, to: &frames, text: text) {
        return Backtrace(origin: origin, frames: frames, stop: stop)
      }
      if let interruptReturn, ret == interruptReturn {
        switch interrupted(
          trapFrame: fp &+ UInt64(SMPTOP_TRAP_FRAME_GAP), frames: &frames, stack: stack, text: text,
          read: read)
        {
        case .next(let rbp):
          fp = rbp
          continue
        case .stop(let stop):
          return Backtrace(origin: origin, frames: frames, stop: stop)
        }
      }
      if next != 0 && next <= fp {
        return Backtrace(
          origin: origin, frames: frames, stop: "frame pointer \(hex(next)) does not move up the stack")
      }
      fp = next
    }
    return Backtrace(origin: origin, frames: frames, stop: "frame limit (\(maxFrames)) reached")
  }

  /// Where a thread is, from what the snapshot holds: a stopped vCPU's registers when the
  /// thread runs on one, its latest timer tick when it runs and the VM was read live, and the
  /// context it saved on its stack when it is switched out. Always bounded by its own stack.
  ///
  /// A switched-out thread's record is read again after the walk (`recordAgain`): when its
  /// saved stack pointer or switch count changed, it ran while its stack was read, and every
  /// frame is marked untrusted.
  public static func thread(
    _ t: ThreadRecord, vcpu: VCPUState?, text: Range<UInt64>?, interruptReturn: UInt64? = nil, read: Reader
  ) -> Backtrace? {
    guard t.stackBottom < t.stackTop else { return nil }
    let stack = t.stackBottom..<t.stackTop
    if let vcpu, let rip = vcpu.value(of: "rip"), let rbp = vcpu.value(of: "rbp") {
      return walk(
        origin: .registers, pc: rip, rbp: rbp, rsp: vcpu.value(of: "rsp"), stack: stack, text: text,
        interruptReturn: interruptReturn, read: read)
    }
    if t.state == .running || t.savedRSP == 0 {
      guard t.tickTSC != 0 else { return nil }
      var bt = walk(
        origin: .tick, pc: t.tickRIP, rbp: t.tickRBP, rsp: t.tickRSP, stack: stack, text: text,
        interruptReturn: interruptReturn, read: read)
      bt.tickTSC = t.tickTSC
      return bt
    }
    // The context ctx_switch saved: r15, r14, r13, r12, rbx, rbp, return address.
    let context = t.savedRSP
    guard inside(stack, context, 56) else {
      return Backtrace(
        origin: .savedContext, frames: [], stop: "saved stack pointer \(hex(context)) outside the stack")
    }
    guard let saved = read(context + 40, 16), saved.count == 16 else {
      return Backtrace(origin: .savedContext, frames: [], stop: "unreadable saved context at \(hex(context))")
    }
    var bt = walk(
      origin: .savedContext, pc: le64(saved, 8), pcIsReturnAddress: true, rbp: le64(saved, 0), rsp: nil,
      stack: stack, text: text, interruptReturn: interruptReturn, read: read)
    if t.recordAddress != 0, ranMeanwhile(t, read: read) {
      for i in bt.frames.indices {
        bt.frames[i].trusted = false
        bt.frames[i].note = ranNote
      }
    }
    return bt
  }

  /// The note on frames of a thread that ran while its stack was read.
  public static let ranNote = "the thread ran while its stack was read"

  /// The note on frames of a thread whose state changed while its stack was read.
  public static let stateChangedNote = "the thread's state changed while its stack was read"

  /// ``thread(_:vcpu:text:read:)`` for a live read: when the thread ran while its stack was
  /// read, its record is read again (a consistent copy: even, unchanged sequence word) and the
  /// walk repeated, up to `retries` times; the last walk is returned either way.
  ///
  /// A repeated walk describes the thread as the fresh record has it, so it is kept only when
  /// that record has the same state and `blockedOn` as `t` (the record the caller shows). When
  /// they differ (a thread that was blocked on a lock now sleeps, say), the stack belongs to
  /// another moment than the record: the first walk is returned, every frame untrusted with
  /// ``stateChangedNote``. A record read while it was being written (not consistent) gives
  /// an untrusted walk (``tornNote``).
  public static func liveThread(
    _ t: ThreadRecord, text: Range<UInt64>?, interruptReturn: UInt64? = nil, read: Reader, retries: Int = 2
  )
    -> Backtrace?
  {
    var record = t
    var bt = thread(record, vcpu: nil, text: text, interruptReturn: interruptReturn, read: read)
    // A torn record's stack pointers and state may come from different moments.
    guard t.consistency.isConsistent else { return bt.map { untrusted($0, note: tornNote) } }
    for _ in 0..<retries {
      guard let walked = bt, walked.frames.contains(where: { $0.note == ranNote }),
        let fresh = reread(record, read: read)
      else { break }
      guard fresh.state == t.state, fresh.blockedOn == t.blockedOn else {
        return untrusted(walked, note: stateChangedNote)
      }
      record = fresh
      bt = thread(record, vcpu: nil, text: text, interruptReturn: interruptReturn, read: read)
    }
    return bt
  }

  /// The note on frames walked from a record that was being written while read.
  public static let tornNote = "the thread's record changed while it was read"

  /// `bt` with every frame marked untrusted for `note`.
  static func untrusted(_ bt: Backtrace, note: String) -> Backtrace {
    var out = bt
    for i in out.frames.indices {
      out.frames[i].trusted = false
      out.frames[i].note = note
    }
    return out
  }

  /// A fresh consistent copy of a thread record from guest memory, nil when it is being written.
  static func reread(_ t: ThreadRecord, read: Reader) -> ThreadRecord? {
    let size = MemoryLayout<smptop_thread>.size
    guard t.recordAddress != 0, let bytes = read(t.recordAddress, size), bytes.count == size else {
      return nil
    }
    let seq = le64(bytes, 0)
    guard seq & 1 == 0, let again = read(t.recordAddress, 8), again.count == 8, le64(again, 0) == seq else {
      return nil
    }
    var fresh = ABIDecoder.thread(bytes, consistency: .consistent)
    fresh.recordAddress = t.recordAddress
    return fresh
  }

  /// Whether a switched-out thread was switched in since its record was read (its saved stack
  /// pointer or switch count differ now, or the record cannot be read again).
  static func ranMeanwhile(_ t: ThreadRecord, read: Reader) -> Bool {
    guard let again = read(t.recordAddress + UInt64(savedRSPOffset), 8),
      let switches = read(t.recordAddress + UInt64(switchesOffset), 8),
      again.count == 8, switches.count == 8
    else { return true }
    return le64(again, 0) != t.savedRSP || le64(switches, 0) != t.switches
  }

  /// Offset of `saved_rsp` in `struct smptop_thread`.
  static let savedRSPOffset = MemoryLayout<smptop_thread>.offset(of: \smptop_thread.saved_rsp) ?? 0
  /// Offset of `switches` in `struct smptop_thread`.
  static let switchesOffset = MemoryLayout<smptop_thread>.offset(of: \smptop_thread.switches) ?? 0

  /// The offset from RSP of the return address when `pc` is at a point where its function's
  /// frame is not set up: 0 at `push rbp` and at `ret`, 8 at `mov rbp, rsp` right after
  /// `push rbp`; nil in a function body.
  static func prologueOffset(pc: UInt64, read: Reader) -> UInt64? {
    guard pc > 0, let code = read(pc - 1, 4), code.count == 4 else { return nil }
    if code[1] == 0x55 || code[1] == 0xC3 { return 0 }  // push rbp / ret
    if code[0] == 0x55 && code[1] == 0x48 && code[2] == 0x89 && code[3] == 0xE5 { return 8 }  // mov rbp, rsp
    return nil
  }

  /// How a walk goes on after an interrupt handler's frame.
  enum AfterInterrupt {
    /// From this frame pointer, the interrupted context's.
    case next(UInt64)
    /// It ends, for this reason.
    case stop(String)
  }

  /// Appends the context an interrupt stopped, from the trap frame at `address`: its RIP, and
  /// the return address on top of its stack when that RIP sits in a prologue or at `ret`.
  static func interrupted(
    trapFrame address: UInt64, frames: inout [BacktraceFrame], stack: Range<UInt64>?, text: Range<UInt64>?,
    read: Reader
  ) -> AfterInterrupt {
    let size = MemoryLayout<smptop_trap_frame>.size
    if let stack, !inside(stack, address, UInt64(size)) {
      return .stop("interrupt frame \(hex(address)) outside the stack")
    }
    guard let bytes = read(address, size), bytes.count == size else {
      return .stop("unreadable interrupt frame at \(hex(address))")
    }
    func field(_ key: KeyPath<smptop_trap_frame, UInt64>) -> UInt64 {
      le64(bytes, MemoryLayout<smptop_trap_frame>.offset(of: key) ?? 0)
    }
    let rip = field(\.rip)
    let rbp = field(\.rbp)
    let rsp = field(\.rsp)
    if let text, !text.contains(rip) {
      frames.append(
        BacktraceFrame(
          address: rip, isReturnAddress: false, trusted: false, note: "interrupted outside the kernel's code")
      )
      return .stop("interrupted RIP \(hex(rip)) outside the kernel's code")
    }
    frames.append(BacktraceFrame(address: rip, isReturnAddress: false))
    if let offset = prologueOffset(pc: rip, read: read) {
      guard let stack, inside(stack, rsp &+ offset, 8), let ret = word(read, rsp &+ offset) else {
        return .stop("interrupted stack pointer \(hex(rsp)) outside the stack")
      }
      if let stop = append(ret, to: &frames, text: text) { return .stop(stop) }
    }
    if rbp == 0 { return .stop("the interrupted context has no frame pointer") }
    return .next(rbp)
  }

  /// Appends a return address; returns why the walk must end when it is outside the code.
  private static func append(_ ret: UInt64, to frames: inout [BacktraceFrame], text: Range<UInt64>?)
    -> String?
  {
    if let text, !text.contains(ret) {
      frames.append(
        BacktraceFrame(
          address: ret, isReturnAddress: true, trusted: false,
          note: "return address outside the kernel's code"))
      return "return address \(hex(ret)) outside the kernel's code"
    }
    frames.append(BacktraceFrame(address: ret, isReturnAddress: true))
    return nil
  }

  private static func inside(_ stack: Range<UInt64>, _ address: UInt64, _ count: UInt64) -> Bool {
    address >= stack.lowerBound && address <= stack.upperBound &- count && stack.upperBound >= count
  }

  private static func word(_ read: Reader, _ address: UInt64) -> UInt64? {
    guard let bytes = read(address, 8), bytes.count == 8 else { return nil }
    return le64(bytes, 0)
  }

  private static func le64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in (0..<8).reversed() { v = v << 8 | UInt64(bytes[at + i]) }
    return v
  }

  private static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
}
