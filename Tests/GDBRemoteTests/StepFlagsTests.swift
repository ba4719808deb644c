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
    let qemu = try launchResetVectorQEMU()
    defer { qemu.shutdown() }
    var options = GDBRemoteConnection.Options()
    options.stepTimeout = .milliseconds(500)
    let c = try connect(qemu, options: options)
    do {
      _ = try c.step(thread: Self.vcpus[2], mode: .wakeIfHalted)
      Issue.record("nothing wakes an AP waiting for its SIPI")
    } catch {
      #expect(error.code == .stepTimedOut, "\(error)")
    }
    #expect(c.runState == .stopped)
    #expect(try c.singleStepFlags() == 0x7)
    // The BSP (not halted) steps with the default flags: one instruction, the APs stay put.
    try c.step(thread: Self.vcpus[0], mode: .wakeIfHalted)
    #expect(try c.readRegisters(of: Self.vcpus[0]).uint64("rip") != 0xfff0)
    #expect(try c.readRegisters(of: Self.vcpus[2]).uint64("rip") == 0xfff0)
    #expect(try c.singleStepFlags() == 0x7)
  }
}
