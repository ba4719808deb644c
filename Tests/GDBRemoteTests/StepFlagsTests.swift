import GDBRemote
import QEMULaunch
import Testing

/// QEMU 7.2's single-step flags through the real gdbstub: read, set, and set back after a
/// step with interrupts on, also when that step cannot finish.
@Suite(.serialized) struct StepFlagsTests {
  static let vcpus = (0..<4).map { ThreadID.vcpu($0) }

  @Test func flagsReadSetAndUnsupportedBitsRefused() throws {
    let qemu = try launchResetVectorQEMU()
    defer { qemu.shutdown() }
    let c = try connect(qemu)
    #expect(try c.singleStepFlags() == 0x7)
    try c.setSingleStepFlags(0x1)
    #expect(try c.singleStepFlags() == 0x1)
    do {
      try c.setSingleStepFlags(0x8)
      Issue.record("QEMU 7.2 supports ENABLE, NOIRQ and NOTIMER only")
    } catch {
      #expect(error.code == .errorReply, "\(error)")
    }
    #expect(try c.singleStepFlags() == 0x1)
    try c.setSingleStepFlags(0x7)
    #expect(try c.singleStepFlags() == 0x7)
  }

  @Test func aWakeStepThatNothingEndsTimesOutAndTheFlagsComeBack() throws {
    // An AP waiting for its SIPI is halted, and no interrupt wakes it.
    try stepHaltedAPExpectingTimeout(vcpu: 2, mode: .wakeIfHalted) { c, _ in
      try Self.theFlagsCameBackAndTheBSPStepsAlone(c)
    }
  }

  /// After the timed-out wake step: default flags again, and the BSP (not halted) steps one
  /// instruction with them while the APs stay put.
  static func theFlagsCameBackAndTheBSPStepsAlone(_ c: GDBRemoteConnection) throws {
    #expect(try c.singleStepFlags() == 0x7)
    // The BSP (not halted) steps with the default flags: one instruction, the APs stay put.
    try c.step(thread: Self.vcpus[0], mode: .wakeIfHalted)
    #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") != 0xfff0)
    #expect(try c.readRegisters(of: Self.vcpus[2]).uint64("rip") == 0xfff0)
    #expect(try c.singleStepFlags() == 0x7)
  }
}
