import GDBRemote
import Testing

@Suite struct ThreadAndStopReplyTests {
  @Test func parsesQEMUThreadIDs() {
    #expect(ThreadID(parsing: "p01.02") == ThreadID(pid: 1, tid: 2))
    #expect(ThreadID(parsing: "p1.a") == ThreadID(pid: 1, tid: 10))
    #expect(ThreadID(parsing: "p1.-1") == ThreadID(pid: 1, tid: -1))
    #expect(ThreadID(parsing: "03") == ThreadID(tid: 3))
    #expect(ThreadID(parsing: "-1") == .all)
    #expect(ThreadID(parsing: "p2") == ThreadID(pid: 2, tid: -1))
    #expect(ThreadID(parsing: "") == nil)
    #expect(ThreadID(parsing: "p.1") == nil)
    #expect(ThreadID(parsing: "pzz.1") == nil)
    #expect(ThreadID(parsing: "p1.") == nil)
    #expect(ThreadID(parsing: "12345678901234567") == nil)
    #expect(ThreadID(pid: 1, tid: 2).protocolText == "p1.2")
    #expect(ThreadID(pid: 1, tid: 2).vcpuIndex == 1)
    #expect(ThreadID.vcpu(3) == ThreadID(pid: 1, tid: 4))
    #expect(ThreadID.any.vcpuIndex == nil)
  }

  @Test func threadInfoHaltedFlag() {
    #expect(ThreadInfo(thread: .vcpu(0), text: "CPU#0 [running]").isHalted == false)
    #expect(ThreadInfo(thread: .vcpu(3), text: "CPU#3 [halted ]").isHalted == true)
    #expect(ThreadInfo(thread: .vcpu(3), text: "something").isHalted == nil)
  }

  @Test func parsesStopReplies() throws {
    let t = try #require(StopReply(parsing: "T05thread:p01.02;"))
    #expect(t.signal == 5)
    #expect(t.thread == ThreadID(pid: 1, tid: 2))
    #expect(!t.isExit)

    let w = try #require(StopReply(parsing: "T05thread:p01.01;watch:7008;"))
    #expect(w.watchAddress == 0x7008)
    #expect(w.fields.count == 2)

    let s = try #require(StopReply(parsing: "S02"))
    #expect(s.kind == .signal(2))
    #expect(s.thread == nil)

    let panic = try #require(StopReply(parsing: "T8fthread:p01.01;"))
    #expect(panic.signal == 0x8f)

    let exit = try #require(StopReply(parsing: "W00;process:1"))
    #expect(exit.kind == .exited(status: 0))
    #expect(exit.process == 1)
    #expect(exit.isExit)
    #expect(StopReply(parsing: "X09")?.kind == .terminated(signal: 9))

    for bad in ["", "T", "T0", "Tzz", "OK", "mp01.01"] {
      #expect(StopReply(parsing: bad) == nil, "\(bad)")
    }
    // Lenient, as gdb: an odd field or suffix keeps the stop reply (it must never be taken
    // for a command's reply); what cannot be read is left out.
    #expect(StopReply(parsing: "S05x")?.signal == 5)
    let noValue = try #require(StopReply(parsing: "T05thread"))
    #expect(noValue.thread == nil && noValue.fields.map(\.name) == ["thread"])
    let badThread = try #require(StopReply(parsing: "T05thread:zz;swbreak;core:1;"))
    #expect(badThread.thread == nil && badThread.fields.count == 3)
    #expect(StopReply(parsing: "W00;pid:1")?.process == nil)
  }
}

@Suite struct TargetDescriptionTests {
  static func qemuTarget() throws -> TargetDescription {
    try TargetDescription.parse(xml: Array(QEMU72.targetXML.utf8)) { href throws(GDBRemoteError) in
      guard href == "i386-64bit.xml" else {
        throw GDBRemoteError(.invalidTargetDescription, "unexpected include \(href)")
      }
      return Array(QEMU72.i386_64bitXML.utf8)
    }
  }

  @Test func parsesQEMUx86_64DescriptionThroughInclude() throws {
    let target = try Self.qemuTarget()
    // The fixtures are byte-exact captures (8175 bytes; the literal drops the final newline).
    #expect(QEMU72.i386_64bitXML.utf8.count == 8174)
    #expect(QEMU72.targetXML.utf8.count == 154)
    #expect(QEMU72.i386_64bitXML.contains("\t<field name=\"ID\" start=\"21\" end=\"21\"/>"))
    #expect(target.architecture == "i386:x86-64")
    #expect(target.features == ["org.gnu.gdb.i386.core"])
    #expect(target.registers.count == 66)
    // 608 bytes: the size of QEMU 7.2's `g` reply for x86_64.
    #expect(target.registerBytes == 608)
    #expect(
      target.registers.map(\.name).prefix(18) == [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15", "rip", "eflags",
      ])
    let rip = try #require(target.register(named: "rip"))
    #expect(rip.number == 16 && rip.offset == 128 && rip.bitSize == 64 && rip.type == "code_ptr")
    let eflags = try #require(target.register(named: "eflags"))
    #expect(eflags.offset == 136 && eflags.bitSize == 32 && eflags.type == "x64_eflags")
    let st0 = try #require(target.register(named: "st0"))
    #expect(st0.number == 33 && st0.byteSize == 10)
    #expect(target.register(named: "fctrl")?.group == "float")
    #expect(target.register(named: "mxcsr")?.number == 65)
    #expect(target.register(named: "mxcsr")?.group == "vector")
    // The XML comments out cs_base…es_base; they must not appear.
    #expect(target.register(named: "cs_base") == nil)
    #expect(target.register(number: 24)?.name == "fs_base")
  }

  @Test func honoursRegnumAndOrdersTheGPacketByNumber() throws {
    let xml = """
      <?xml version="1.0"?>
      <target><feature name="x">
        <reg name="b" bitsize="32" regnum="5"/>
        <reg name="c" bitsize="16"/>
        <reg name="a" bitsize="64" regnum="0" type="code_ptr" group="general"/>
      </feature></target>
      """
    let t = try TargetDescription.parse(xml: Array(xml.utf8))
    #expect(t.registers.map(\.name) == ["b", "c", "a"])
    #expect(t.register(named: "c")?.number == 6)
    #expect(t.register(named: "a")?.offset == 0)
    #expect(t.register(named: "b")?.offset == 8)
    #expect(t.register(named: "c")?.offset == 12)
    #expect(t.register(named: "a")?.group == "general")
  }

  @Test(arguments: [
    "<target><reg name=\"a\"/></target>",
    "<target><reg bitsize=\"8\"/></target>",
    "<target><reg name=\"a\" bitsize=\"0\"/></target>",
    "<target><reg name=\"a\" bitsize=\"8\"/><reg name=\"a\" bitsize=\"8\"/></target>",
    "<target><reg name=\"a\" bitsize=\"8\" regnum=\"-2\"/></target>",
    "<target></target>",
    "<target><reg name=\"a\" bitsize=\"8\"</target>",
    "<target><reg name=\"a &bogus;\" bitsize=\"8\"/></target>",
    "<!-- unterminated",
    "<target><xi:include href=\"self.xml\"/></target>",
  ])
  func rejectsBrokenDescriptions(xml: String) {
    #expect {
      _ = try TargetDescription.parse(xml: Array(xml.utf8), name: "self.xml") { _ throws(GDBRemoteError) in
        Array(xml.utf8)
      }
    } throws: { error in
      (error as? GDBRemoteError)?.code == .invalidTargetDescription
    }
  }

  @Test func decodesTheResetRegisterReply() throws {
    let target = try Self.qemuTarget()
    let set = try RegisterSet(thread: .vcpu(0), target: target, reply: Array(QEMU72.resetRegisters.utf8))
    #expect(set.uint64("rip") == 0xfff0)
    #expect(set.uint64("cs") == 0xf000)
    #expect(set.uint64("rdx") == 0x60fb1)  // CPUID signature left in EDX at reset
    #expect(set.uint64("eflags") == 0x2)
    #expect(set.uint64("cr0") == 0x6000_0010)
    #expect(set["st0"]?.bytes.count == 10)
    #expect(set["st0"]?.uint64 == nil)
    #expect(set["xmm0"]?.bytes.count == 16)
    #expect(set["nonexistent"] == nil)
    #expect(set.values.count == 66)
  }

  @Test func registerRepliesAreValidated() throws {
    let target = try Self.qemuTarget()
    // Short reply: registers beyond it are simply absent, as in gdb.
    let short = try RegisterSet(
      thread: .vcpu(0), target: target, reply: Array(QEMU72.resetRegisters.utf8.prefix(272)))
    #expect(short.uint64("rip") == 0xfff0)
    #expect(short.uint64("eflags") == nil)
    // `xx` marks unavailable bytes.
    var unavailable = Array(QEMU72.resetRegisters.utf8)
    unavailable.replaceSubrange(256..<272, with: Array(String(repeating: "x", count: 16).utf8))
    let u = try RegisterSet(thread: .vcpu(0), target: target, reply: unavailable)
    #expect(u["rip"] == nil)
    #expect(u.uint64("rsp") == 0)
    for bad in [
      QEMU72.resetRegisters + "0", QEMU72.resetRegisters + "00", "zz" + QEMU72.resetRegisters.dropFirst(2),
    ] {
      #expect(throws: GDBRemoteError.self) {
        _ = try RegisterSet(thread: .vcpu(0), target: target, reply: Array(bad.utf8))
      }
    }
  }
}

@Suite struct ParserFuzzTests {
  /// Mutated target descriptions, stop replies and thread ids: parse or fail, never trap.
  @Test func mutatedInputsParseOrFail() {
    var rng = SeededGenerator(seed: 0xBAD_C0DE)
    let xml = Array(QEMU72.i386_64bitXML.utf8)
    var parsed = 0
    for _ in 0..<1000 {
      var m = xml
      for _ in 0..<Int.random(in: 1...6, using: &rng) {
        let at = Int.random(in: 0..<m.count, using: &rng)
        switch Int.random(in: 0...3, using: &rng) {
        case 0: m[at] = Array("<>\"'=/&;!-?[]".utf8).randomElement(using: &rng) ?? 0
        case 1: m.remove(at: at)
        case 2: m.insert(UInt8.random(in: 0...255, using: &rng), at: at)
        default: m = Array(m.prefix(at))
        }
        if m.isEmpty { break }
      }
      if let t = try? TargetDescription.parse(xml: m) {
        parsed += 1
        // Whatever parsed is self-consistent: offsets are a permutation of the layout.
        let total = t.registers.reduce(0) { $0 + $1.byteSize }
        #expect(t.registerBytes == total)
        #expect(t.registers.allSatisfy { $0.offset + $0.byteSize <= total })
      }
    }
    #expect(parsed > 0)

    let samples = ["T05thread:p01.02;watch:7008;", "W00;process:1", "S05", "p01.02", "p1.-1", "X0f"]
    for _ in 0..<20_000 {
      var s = Array((samples.randomElement(using: &rng) ?? "").utf8)
      for _ in 0..<Int.random(in: 0...3, using: &rng) where !s.isEmpty {
        s[Int.random(in: 0..<s.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      if let stop = StopReply(parsing: s) {
        #expect(stop.raw == String(decoding: s, as: UTF8.self))
      }
      _ = ThreadID(parsing: String(decoding: s, as: UTF8.self))
    }
  }
}
