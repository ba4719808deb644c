import Foundation
import QEMULaunch
import Testing

/// The launcher against the real QEMU: sockets, private directory, clean shutdown.
@Suite(.serialized) struct QEMULaunchTests {
  @Test func launchOpensSocketsInPrivateDirectory() throws {
    var config = QEMUConfiguration()
    config.smp = 2
    config.memoryMiB = 32
    config.startPaused = true
    let qemu = try QEMUInstance.launch(config)
    let dir = qemu.runtimeDirectory
    var info = stat()
    #expect(stat(dir, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o700)
    for path in [qemu.gdbSocketPath, qemu.qmpSocketPath, qemu.memoryFilePath] {
      let path = try #require(path)
      #expect(FileManager.default.fileExists(atPath: path), "\(path) missing")
    }
    #expect(qemu.isRunning)
    qemu.shutdown()
    #expect(!qemu.isRunning)
    #expect(!FileManager.default.fileExists(atPath: dir))
  }

  @Test func missingExecutableIsAClearError() throws {
    var config = QEMUConfiguration()
    config.executable = "qemu-system-does-not-exist"
    #expect {
      _ = try QEMUInstance.launch(config)
    } throws: { error in
      let error = error as? QEMULaunchError
      return error?.code == .executableNotFound && error?.message.contains("install-deps") == true
    }
  }

  @Test func badArgumentsReportQEMUsOwnMessage() throws {
    var config = QEMUConfiguration()
    config.machine = "no-such-machine"
    config.sharedMemory = false
    #expect {
      _ = try QEMUInstance.launch(config)
    } throws: { error in
      guard let error = error as? QEMULaunchError, case .exitedEarly = error.code else { return false }
      return error.message.contains("unsupported machine type")
    }
  }
}
