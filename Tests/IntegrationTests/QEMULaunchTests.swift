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

  /// The host threads QEMU names (`-name debug-threads=on`): `CPU n/TCG` per vCPU with
  /// multi-threaded TCG, one `ALL CPUs/TCG` with single.
  @Test(arguments: TCGThreads.allCases) func tcgThreadsIsHowQEMURunsTheVCPUs(_ threads: TCGThreads) throws {
    var config = QEMUConfiguration()
    config.smp = 3
    config.memoryMiB = 32
    config.startPaused = true
    config.tcgThreads = threads
    config.extraArguments = ["-name", "debug-threads=on"]
    let qemu = try QEMUInstance.launch(config)
    defer { qemu.shutdown() }
    let tasks = "/proc/\(qemu.pid)/task"
    let names = try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap { task in
      (try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8))?.trimmingCharacters(
        in: .whitespacesAndNewlines)
    }
    let vcpuThreads = names.filter { $0.hasSuffix("/TCG") }.sorted()
    switch threads {
    case .multi: #expect(vcpuThreads == ["CPU 0/TCG", "CPU 1/TCG", "CPU 2/TCG"], "\(names)")
    case .single: #expect(vcpuThreads == ["ALL CPUs/TCG"], "\(names)")
    }
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
