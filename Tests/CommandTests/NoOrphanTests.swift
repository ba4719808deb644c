import Foundation
import QEMULaunch
import NIOConcurrencyHelpers
import Testing

/// A QEMU started by smptop dies with smptop, however smptop dies.
@Suite(.serialized) struct NoOrphanTests {
  /// SIGKILL gives smptop no chance to clean up: the kernel's parent-death signal must end QEMU.
  @Test func sigkilledRunLeavesNoQEMUBehind() async throws {
    let kernel = try GuestKernel.build()
    let smptop = try BackgroundProcess(
      [try SMPTopBinary.path(), "run", "--headless", "--after", "600", "--smp", "2", "--kernel", kernel])
    var qemu: pid_t?
    let deadline = ContinuousClock.now + .seconds(60)
    while qemu == nil, ContinuousClock.now < deadline, smptop.exitStatus == nil {
      qemu = children(of: smptop.pid).first { $0.command.hasPrefix("qemu-system") }?.pid
      try await Task.sleep(for: .milliseconds(50))
    }
    let qemuPID = try #require(qemu, "smptop run started no QEMU; stderr: \(smptop.stderr())")
    defer { if isAlive(qemuPID) { kill(qemuPID, SIGKILL) } }
    // QEMU is up and serving before smptop goes.
    #expect(isAlive(qemuPID))

    smptop.signal(SIGKILL)
    #expect(smptop.wait(timeout: .seconds(10)) == 128 + SIGKILL)
    let gone = ContinuousClock.now + .seconds(10)
    while isAlive(qemuPID), ContinuousClock.now < gone { try await Task.sleep(for: .milliseconds(20)) }
    #expect(!isAlive(qemuPID), "QEMU \(qemuPID) outlived its SIGKILLed smptop")
  }

  /// The parent-death signal follows the process, not the thread that spawned QEMU: a pool
  /// thread retiring after the launch must not take QEMU with it.
  @Test func qemuOutlivesTheThreadThatLaunchedIt() async throws {
    var config = QEMUConfiguration()
    config.smp = 1
    config.memoryMiB = 32
    config.startPaused = true
    let launched = NIOLockedValueBox<QEMUInstance?>(nil)
    let launch = config
    let thread = Thread {
      launched.withLockedValue { $0 = try? QEMUInstance.launch(launch) }
    }
    thread.start()
    while thread.isExecuting || !thread.isFinished { try await Task.sleep(for: .milliseconds(10)) }
    let qemu = try #require(launched.withLockedValue { $0 })
    defer { qemu.shutdown() }
    // The launching thread has exited; give a wrongly aimed parent-death signal time to land.
    try await Task.sleep(for: .milliseconds(500))
    #expect(qemu.isRunning)
    #expect(isAlive(qemu.pid))
  }
}
