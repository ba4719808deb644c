import InspectABI
import Testing

@testable import Inspector

/// The frame-pointer walk over made-up stacks: bounded by the stack and the code, honest about
/// why it ended, and never inventing a frame.
struct BacktraceTests {
  /// A little-endian guest memory made of 64-bit words at given addresses.
  struct FakeMemory {
    var words: [UInt64: UInt64] = [:]
    var bytes: [UInt64: UInt8] = [:]
    var reads = 0

    mutating func put(_ address: UInt64, _ value: UInt64) { words[address] = value }

    func read(_ address: UInt64, _ count: Int) -> [UInt8]? {
      var out: [UInt8] = []
      for i in 0..<UInt64(count) {
        let a = address + i
        if let b = bytes[a] {
          out.append(b)
        } else if let w = words[a & ~7] {
          out.append(UInt8(truncatingIfNeeded: w >> ((a & 7) * 8)))
        } else {
          return nil
        }
      }
      return out
    }
  }

  static let text: Range<UInt64> = 0x10_0000..<0x20_0000
  static let stack: Range<UInt64> = 0x80_0000..<0x80_4000

  /// A chain of three frames: rbp → [next rbp, return] pairs, ending with a zero frame pointer.
  static func chain() -> FakeMemory {
    var m = FakeMemory()
    m.put(0x80_3F00, 0x80_3F40)
    m.put(0x80_3F08, 0x10_1234)
    m.put(0x80_3F40, 0x80_3F80)
    m.put(0x80_3F48, 0x10_2345)
    m.put(0x80_3F80, 0)
    m.put(0x80_3F88, 0x10_3456)
    return m
  }

  /// An interrupt handler's stack: the handler (rbp 0x80_3000) returns into the interrupt
  /// entry at `isr`; its trap frame, SMPTOP_TRAP_FRAME_GAP above, holds the interrupted RIP
  /// 0x10_5000 and RBP 0x80_3F00, where `chain()` goes on.
  static let isr: UInt64 = 0x10_9000
  static func interrupted(rip: UInt64 = 0x10_5000, rsp: UInt64 = 0x80_3EF0) -> FakeMemory {
    var m = Self.chain()
    m.put(0x80_3000, 0x80_3F00)  // the handler's saved rbp: the interrupted one
    m.put(0x80_3008, Self.isr)
    let trap = 0x80_3000 + UInt64(SMPTOP_TRAP_FRAME_GAP)
    for i in 0..<22 { m.put(trap + UInt64(i * 8), 0xDEAD_0000 + UInt64(i)) }
    m.put(trap + UInt64(MemoryLayout<smptop_trap_frame>.offset(of: \.rip) ?? 0), rip)
    m.put(trap + UInt64(MemoryLayout<smptop_trap_frame>.offset(of: \.rbp) ?? 0), 0x80_3F00)
    m.put(trap + UInt64(MemoryLayout<smptop_trap_frame>.offset(of: \.rsp) ?? 0), rsp)
    return m
  }

  @Test func anInterruptHandlersWalkGoesOnInTheInterruptedContext() {
    let m = Self.interrupted()
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3000, rsp: nil, stack: Self.stack, text: Self.text,
      interruptReturn: Self.isr, read: m.read)
    #expect(bt.frames.map(\.address) == [0x10_0100, Self.isr, 0x10_5000, 0x10_1234, 0x10_2345, 0x10_3456])
    #expect(bt.frames.map(\.isReturnAddress) == [false, true, false, true, true, true])
    #expect(bt.stop == nil && bt.frames.allSatisfy(\.trusted))
    // Without the root's isr_return the interrupted function is skipped, as a plain
    // frame-pointer walk does.
    let plain = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3000, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(plain.frames.map(\.address) == [0x10_0100, Self.isr, 0x10_1234, 0x10_2345, 0x10_3456])
  }

  @Test func anInterruptInAPrologueFindsItsCallerOnTheInterruptedStack() {
    var m = Self.interrupted()
    m.bytes[0x10_4FFF] = 0x90
    m.bytes[0x10_5000] = 0x55  // push rbp: the interrupted function has no frame yet
    m.bytes[0x10_5001] = 0x48
    m.bytes[0x10_5002] = 0x89
    m.put(0x80_3EF0, 0x10_7777)  // its return address, on top of the interrupted stack
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3000, rsp: nil, stack: Self.stack, text: Self.text,
      interruptReturn: Self.isr, read: m.read)
    #expect(
      bt.frames.map(\.address) == [
        0x10_0100, Self.isr, 0x10_5000, 0x10_7777, 0x10_1234, 0x10_2345, 0x10_3456,
      ])
  }

  @Test func aGarbageTrapFrameEndsTheWalkWithAReason() {
    let outside = Self.interrupted(rip: 0xFFFF_0000)
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3000, rsp: nil, stack: Self.stack, text: Self.text,
      interruptReturn: Self.isr, read: outside.read)
    #expect(bt.frames.last?.address == 0xFFFF_0000 && bt.frames.last?.trusted == false)
    #expect(bt.stop?.contains("outside the kernel's code") == true)
    // A handler frame so high on the stack that its trap frame would lie beyond the stack's top.
    var high = FakeMemory()
    high.put(0x80_3F80, 0x80_3FC0)
    high.put(0x80_3F88, Self.isr)
    let cut = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F80, rsp: nil, stack: Self.stack, text: Self.text,
      interruptReturn: Self.isr, read: high.read)
    #expect(cut.frames.map(\.address) == [0x10_0100, Self.isr])
    #expect(cut.stop?.contains("outside the stack") == true)
  }

  @Test func walksTheWholeChainAndStopsAtAZeroFramePointer() {
    let m = Self.chain()
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F00, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.map(\.address) == [0x10_0100, 0x10_1234, 0x10_2345, 0x10_3456])
    #expect(bt.frames.map(\.isReturnAddress) == [false, true, true, true])
    #expect(bt.frames.allSatisfy { $0.trusted })
    #expect(bt.stop == nil)
    #expect(bt.frames[1].lookupAddress == 0x10_1233, "a return address is looked up at its call")
    #expect(bt.frames[0].lookupAddress == 0x10_0100)
  }

  @Test func aFramePointerOutsideTheStackEndsTheWalkWithoutReadingIt() {
    var m = Self.chain()
    m.put(0x80_3F40, 0x90_0000)  // points outside the stack
    m.put(0x90_0000, 0x80_3F80)
    m.put(0x90_0008, 0x10_9999)  // would be a believable frame if read
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F00, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.map(\.address) == [0x10_0100, 0x10_1234, 0x10_2345])
    #expect(bt.stop?.contains("outside the stack") == true)
    #expect(!bt.frames.map(\.address).contains(0x10_9999))
  }

  @Test func aReturnAddressOutsideTheCodeIsKeptMarkedAndEndsTheWalk() {
    var m = Self.chain()
    m.put(0x80_3F48, 0xDEAD_BEEF)
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F00, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.map(\.address) == [0x10_0100, 0x10_1234, 0xDEAD_BEEF])
    #expect(bt.frames.map(\.trusted) == [true, true, false])
    #expect(bt.stop?.contains("outside the kernel's code") == true)
  }

  @Test func aLoopingChainEndsInsteadOfRepeating() {
    var m = Self.chain()
    m.put(0x80_3F40, 0x80_3F00)  // points back down
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F00, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.count == 3)
    #expect(bt.stop?.contains("does not move up") == true)
  }

  @Test func anUnreadableFrameEndsTheWalkWithItsAddress() {
    var m = Self.chain()
    m.words[0x80_3F40] = nil
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_3F00, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.count == 2)
    #expect(bt.stop == "unreadable frame at 0x803f40")
  }

  @Test func theFrameLimitBoundsALongChain() {
    var m = FakeMemory()
    for i in 0..<UInt64(100) {
      m.put(0x80_0000 + i * 16, 0x80_0000 + (i + 1) * 16)
      m.put(0x80_0008 + i * 16, 0x10_0000 + i)
    }
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_0100, rbp: 0x80_0000, rsp: nil, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.count == BacktraceWalker.maxFrames)
    #expect(bt.stop?.contains("frame limit") == true)
  }

  @Test func atPushRBPTheCallerComesFromTheTopOfTheStack() {
    var m = Self.chain()
    m.bytes[0x10_0FFF] = 0xC3
    m.bytes[0x10_1000] = 0x55  // push rbp: the function has not built its frame yet
    m.bytes[0x10_1001] = 0x48
    m.bytes[0x10_1002] = 0x89
    m.put(0x80_3E00, 0x10_0777)  // [rsp] = return address into the caller
    let bt = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_1000, rbp: 0x80_3F00, rsp: 0x80_3E00, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(bt.frames.map(\.address) == [0x10_1000, 0x10_0777, 0x10_1234, 0x10_2345, 0x10_3456])
    // In a function body the top of the stack is not a return address.
    m.bytes[0x10_1000] = 0x90
    let body = BacktraceWalker.walk(
      origin: .registers, pc: 0x10_1000, rbp: 0x80_3F00, rsp: 0x80_3E00, stack: Self.stack, text: Self.text,
      read: m.read)
    #expect(body.frames.map(\.address) == [0x10_1000, 0x10_1234, 0x10_2345, 0x10_3456])
  }

  /// A switched-out thread whose context ctx_switch saved at 0x803e00.
  static func savedThread() -> (ThreadRecord, FakeMemory) {
    var m = Self.chain()
    let context: UInt64 = 0x80_3E00
    for i in 0..<UInt64(5) { m.put(context + i * 8, 0x1111 * (i + 1)) }  // r15 … rbx
    m.put(context + 40, 0x80_3F00)  // rbp
    m.put(context + 48, 0x10_0AAA)  // return address into schedule()
    // The record at 0x700000: saved_rsp and switches as read.
    let record: UInt64 = 0x70_0000
    let t = ThreadRecord(
      id: 3, name: "worker", state: .blockedOnLock, lcpu: 1, blockedOn: 0x1234, wakeTSC: 0, cpuTSC: 0,
      switches: 7, ops: 0, consistency: .consistent, recordAddress: record,
      stackBottom: Self.stack.lowerBound,
      stackTop: Self.stack.upperBound, savedRSP: context)
    for offset in stride(from: UInt64(0), to: 256, by: 8) { m.put(record + offset, 0) }
    m.put(record + UInt64(BacktraceWalker.savedRSPOffset), context)
    m.put(record + UInt64(BacktraceWalker.switchesOffset), 7)
    return (t, m)
  }

  @Test func aSwitchedOutThreadIsWalkedFromItsSavedContext() throws {
    let (t, m) = Self.savedThread()
    let bt = try #require(BacktraceWalker.thread(t, vcpu: nil, text: Self.text, read: m.read))
    #expect(bt.origin == .savedContext)
    #expect(bt.frames.map(\.address) == [0x10_0AAA, 0x10_1234, 0x10_2345, 0x10_3456])
    #expect(bt.frames[0].isReturnAddress)
    #expect(bt.frames.allSatisfy { $0.trusted })
  }

  @Test func aThreadThatRanWhileItsStackWasReadHasEveryFrameUntrusted() throws {
    var (t, m) = Self.savedThread()
    m.put(t.recordAddress + UInt64(BacktraceWalker.switchesOffset), 8)
    let bt = try #require(BacktraceWalker.thread(t, vcpu: nil, text: Self.text, read: m.read))
    #expect(!bt.frames.isEmpty && bt.frames.allSatisfy { !$0.trusted })
    #expect(bt.frames.first?.note?.contains("ran while") == true)
    // A saved stack pointer outside its stack is refused, not followed.
    t.savedRSP = 0x90_0000
    let outside = try #require(BacktraceWalker.thread(t, vcpu: nil, text: Self.text, read: m.read))
    #expect(outside.frames.isEmpty && outside.stop?.contains("outside the stack") == true)
  }

  @Test func aLiveWalkReadsTheRecordAgainWhenTheThreadRanAndWalksAgain() throws {
    let (t, saved) = Self.savedThread()
    var m = saved
    // The guest's record now: switched once more, same saved context (a consistent copy).
    var raw = smptop_thread()
    raw.seq = 10
    raw.id = 3
    raw.state = UInt32(SMPTOP_THREAD_BLOCKED_LOCK.rawValue)
    raw.blocked_on = 0x1234
    raw.switches = 8
    raw.stack_bottom = Self.stack.lowerBound
    raw.stack_top = Self.stack.upperBound
    raw.saved_rsp = t.savedRSP
    let bytes = withUnsafeBytes(of: raw) { Array($0) }
    for (i, b) in bytes.enumerated() { m.bytes[t.recordAddress + UInt64(i)] = b }
    let bt = try #require(BacktraceWalker.liveThread(t, text: Self.text, read: m.read))
    #expect(bt.frames.map(\.address) == [0x10_0AAA, 0x10_1234, 0x10_2345, 0x10_3456])
    #expect(bt.frames.allSatisfy { $0.trusted }, "the second walk matched the fresh record")
    // The fresh record in another state (it sleeps now): its stack is not the blocked one the
    // caller's record describes, so the walk stays untrusted and says why.
    var sleeping = m
    raw.state = UInt32(SMPTOP_THREAD_SLEEPING.rawValue)
    raw.blocked_on = 0
    let sleepingBytes = withUnsafeBytes(of: raw) { Array($0) }
    for (i, b) in sleepingBytes.enumerated() { sleeping.bytes[t.recordAddress + UInt64(i)] = b }
    let moved = try #require(BacktraceWalker.liveThread(t, text: Self.text, read: sleeping.read))
    #expect(!moved.frames.isEmpty && moved.frames.allSatisfy { !$0.trusted })
    #expect(moved.frames.allSatisfy { $0.note == BacktraceWalker.stateChangedNote })
    // Blocked on another lock: also another moment.
    raw.state = UInt32(SMPTOP_THREAD_BLOCKED_LOCK.rawValue)
    raw.blocked_on = 0x5678
    let otherBytes = withUnsafeBytes(of: raw) { Array($0) }
    for (i, b) in otherBytes.enumerated() { sleeping.bytes[t.recordAddress + UInt64(i)] = b }
    let other = try #require(BacktraceWalker.liveThread(t, text: Self.text, read: sleeping.read))
    #expect(other.frames.allSatisfy { $0.note == BacktraceWalker.stateChangedNote })
    // A record read while being written: its state and stack pointers may disagree.
    var torn = t
    torn.consistency = .inconsistent(retries: 16)
    let tornWalk = try #require(BacktraceWalker.liveThread(torn, text: Self.text, read: saved.read))
    #expect(tornWalk.frames.count == 4 && tornWalk.frames.allSatisfy { $0.note == BacktraceWalker.tornNote })
    // A record being written (odd sequence word) is not taken: the first walk's marks stay.
    m.bytes[t.recordAddress] = 11
    let half = try #require(BacktraceWalker.liveThread(t, text: Self.text, read: m.read))
    #expect(half.frames.allSatisfy { !$0.trusted })
  }

  @Test func aRunningThreadLiveIsWalkedFromItsLatestTick() throws {
    var (t, m) = Self.savedThread()
    t.state = .running
    t.savedRSP = 0
    t.tickTSC = 0
    #expect(
      BacktraceWalker.thread(t, vcpu: nil, text: Self.text, read: m.read) == nil, "no tick yet: nothing")
    t.tickRIP = 0x10_5555
    t.tickRBP = 0x80_3F00
    t.tickRSP = 0x80_3E80
    t.tickTSC = 42
    m.bytes[0x10_5554] = 0x90
    m.bytes[0x10_5555] = 0x90
    m.bytes[0x10_5556] = 0x90
    m.bytes[0x10_5557] = 0x90
    let bt = try #require(BacktraceWalker.thread(t, vcpu: nil, text: Self.text, read: m.read))
    #expect(bt.origin == .tick && bt.tickTSC == 42)
    #expect(bt.frames.map(\.address) == [0x10_5555, 0x10_1234, 0x10_2345, 0x10_3456])
    // A stopped vCPU's registers win over the tick.
    let vcpu = VCPUState(
      index: 1, halted: false,
      registers: [.init(name: "rip", value: 0x10_6666), .init(name: "rbp", value: 0x80_3F40)], symbol: nil)
    let stopped = try #require(BacktraceWalker.thread(t, vcpu: vcpu, text: Self.text, read: m.read))
    #expect(stopped.origin == .registers)
    #expect(stopped.frames.map(\.address) == [0x10_6666, 0x10_2345, 0x10_3456])
  }

  @Test func garbageMemoryNeverCrashesAndStaysWithinBounds() {
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<200 {
      var m = FakeMemory()
      for i in 0..<UInt64(0x800) { m.put(Self.stack.lowerBound + i * 8, generator.next()) }
      let bt = BacktraceWalker.walk(
        origin: .registers, pc: generator.next(), rbp: Self.stack.lowerBound + (generator.next() % 0x4000),
        rsp: Self.stack.lowerBound + (generator.next() % 0x4000), stack: Self.stack, text: Self.text,
        read: m.read)
      #expect(bt.frames.count <= BacktraceWalker.maxFrames)
      #expect(bt.frames.count >= 1)
      // Every frame after the first came out of the stack and lies in the code, or is the one
      // untrusted frame that ended the walk.
      for frame in bt.frames.dropFirst().dropLast() { #expect(Self.text.contains(frame.address)) }
    }
  }
}

/// ABI v4's thread fields decode into the record a walk starts from.
struct ThreadRecordV4Tests {
  @Test func stackBoundsSavedContextAndTickAreDecoded() {
    var raw = smptop_thread()
    raw.id = 9
    raw.state = UInt32(SMPTOP_THREAD_BLOCKED_LOCK.rawValue)
    raw.stack_bottom = 0x80_0000
    raw.stack_top = 0x80_4000
    raw.saved_rsp = 0x80_3E00
    raw.tick_rip = 0x10_1111
    raw.tick_rbp = 0x80_3F00
    raw.tick_rsp = 0x80_3E80
    raw.tick_tsc = 77
    let bytes = withUnsafeBytes(of: raw) { Array($0) }
    let t = ABIDecoder.thread(bytes, consistency: .consistent)
    #expect(t.id == 9 && t.state == .blockedOnLock)
    #expect(t.stackBottom == 0x80_0000 && t.stackTop == 0x80_4000 && t.savedRSP == 0x80_3E00)
    #expect(t.tickRIP == 0x10_1111 && t.tickRBP == 0x80_3F00 && t.tickRSP == 0x80_3E80 && t.tickTSC == 77)
    #expect(t.stackContains(0x80_3FF8) && !t.stackContains(0x80_3FFC) && !t.stackContains(0x7F_FFF8))
  }
}
