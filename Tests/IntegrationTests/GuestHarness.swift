import Foundation
import Inspector
import QEMULaunch
import QMP

/// The real guest booted in real QEMU (TCG), attached through its real sockets.
final class BootedGuest {
  let qemu: QEMUInstance
  let target: Target
  let kernel: String

  /// Builds the guest (cached), boots it and waits until its ABI says every lcpu is online.
  static func boot(
    smp: Int, machine: String = "pc", append: String? = nil, memoryMiB: Int = 128,
    waitForRunning: Bool = true, extra: [String] = [], launchPrefix: [String] = []
  ) async throws -> BootedGuest {
    let kernel = try GuestKernel.build()
    var config = QEMUConfiguration()
    config.smp = smp
    config.machine = machine
    config.kernel = kernel
    config.append = append
    config.memoryMiB = memoryMiB
    config.extraArguments = extra
    config.launchPrefix = launchPrefix
    let qemu = try QEMUInstance.launch(config)
    let target = try await Target.open(TargetOptions(qemu))
    let guest = BootedGuest(qemu: qemu, target: target, kernel: kernel)
    if waitForRunning { _ = try await guest.waitUntilRunning() }
    return guest
  }

  /// Boots a guest, runs `body` with it and always shuts it down.
  static func with<T>(
    smp: Int, machine: String = "pc", append: String? = nil, memoryMiB: Int = 128,
    waitForRunning: Bool = true, extra: [String] = [], launchPrefix: [String] = [],
    _ body: (BootedGuest) async throws -> T
  ) async throws -> T {
    let guest = try await boot(
      smp: smp, machine: machine, append: append, memoryMiB: memoryMiB, waitForRunning: waitForRunning,
      extra: extra, launchPrefix: launchPrefix)
    do {
      let result = try await body(guest)
      await guest.shutdown()
      return result
    } catch {
      await guest.shutdown()
      throw error
    }
  }

  private init(qemu: QEMUInstance, target: Target, kernel: String) {
    self.qemu = qemu
    self.target = target
    self.kernel = kernel
  }

  /// Polls live snapshots (zero pause) until boot_stage is RUNNING.
  func waitUntilRunning(timeout: Duration = .seconds(60)) async throws -> Snapshot {
    let deadline = ContinuousClock.now + timeout
    var last = "no snapshot"
    while ContinuousClock.now < deadline {
      if let snap = try? target.liveSnapshot() {
        if snap.guest?.isRunning == true { return snap }
        last = "boot stage \(snap.guest?.bootStage ?? 0), online \(snap.guest?.lcpusOnline ?? 0)"
      }
      if !qemu.isRunning { break }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw HarnessError(
      "guest did not reach RUNNING (\(last)); serial:\n\(qemu.serialOutput().suffix(800))\nqemu: \(qemu.qemuOutput())"
    )
  }

  /// Polls live snapshots until `condition` holds.
  func waitFor(
    _ what: String, timeout: Duration = .seconds(30), interval: Int = 20, _ condition: (Snapshot) -> Bool
  ) async throws -> Snapshot {
    let deadline = ContinuousClock.now + timeout
    var last: Snapshot?
    while ContinuousClock.now < deadline {
      if let snap = try? target.liveSnapshot() {
        last = snap
        if condition(snap) { return snap }
      }
      try await Task.sleep(for: .milliseconds(interval))
    }
    throw HarnessError(
      "timed out waiting for \(what); last lcpus: \(String(describing: last?.lcpus.map(\.stateLabel)))")
  }

  func shutdown() async {
    await target.close()
    qemu.shutdown()
  }
}

/// A QEMU with a second QMP monitor of the test's own: QEMU's word on the run state and the
/// vCPUs, independent of what smptop sees on the first.
struct WatchedQEMU {
  let qemu: QEMUInstance
  let monitor: QMPClient

  /// Launches `config` with a second QMP socket and connects to it (QEMU is shut down if that fails).
  static func launch(_ config: QEMUConfiguration) async throws -> WatchedQEMU {
    var config = config
    config.secondQMP = true
    let qemu = try QEMUInstance.launch(config)
    do {
      guard let path = qemu.secondQMPSocketPath else { throw HarnessError("QEMU has no second QMP socket") }
      return WatchedQEMU(qemu: qemu, monitor: try await QMPClient.connect(to: path))
    } catch {
      qemu.shutdown()
      throw error
    }
  }

  /// Closes the monitor and shuts QEMU down.
  func shutdown() {
    monitor.close()
    qemu.shutdown()
  }
}

struct HarnessError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
