import ELFSymbols
import GDBRemote
import QEMULaunch
import QMP

/// What to attach to: QEMU's sockets, the guest's symbols and, optionally, its shared RAM file.
public struct TargetOptions: Sendable, Equatable {
  /// The gdbstub: `host:port`, `unix:/path` or a socket path.
  public var gdb: String?
  /// The QMP socket: `host:port`, `unix:/path` or a socket path.
  public var qmp: String?
  /// The kernel ELF (symbols, and `smptop_root` when the guest speaks the ABI).
  public var kernel: String?
  /// A Linux `System.map`, for generic mode.
  public var systemMap: String?
  /// QEMU's `memory-backend-file,share=on` file, for zero-pause live reads.
  public var memoryFile: String?
  /// The machine type (`pc` or `q35`), for the RAM file's layout above 4 GiB.
  public var machine: String = "pc"
  /// A recording to replay instead of a live QEMU (`smptop record` writes them).
  public var recording: String?

  /// Options with nothing set.
  public init() {}
}

extension TargetOptions {
  /// Everything a QEMU launched by `QEMULaunch` offers: its sockets, shared RAM and the kernel it boots.
  public init(_ qemu: QEMUInstance) {
    self.init()
    gdb = qemu.gdbSocketPath
    qmp = qemu.qmpSocketPath
    kernel = qemu.configuration.kernel
    memoryFile = qemu.memoryFilePath
    machine = qemu.configuration.machine
  }
}

/// Why attaching or talking to a target failed, in a sentence a user can act on.
public struct TargetError: Error, CustomStringConvertible, Sendable {
  /// The kind of failure (it picks the command line's exit code).
  public enum Code: Sendable, Equatable {
    case connect, symbols, abi, memory, gdbRequired, guestState
  }
  /// The kind of failure.
  public var code: Code
  /// What happened and what to do.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

// Attaching: what to attach to, why it failed, opening the sources and connecting the gdbstub on
// first use, and leaving.
extension Target {
  /// Opens symbols and QMP and maps the RAM file. Does not touch the gdbstub.
  public static func open(_ options: TargetOptions) async throws(TargetError) -> Target {
    var elf: ELFFile?
    var symbols: (any SymbolLookup)?
    var root: UInt64?
    if let path = options.kernel {
      do {
        let file = try ELFFile(path: path)
        elf = file
        symbols = file
        root = file.address(of: "smptop_root")
      } catch {
        throw TargetError(.symbols, "cannot read the kernel ELF \(path): \(error)")
      }
    } else if let path = options.systemMap {
      do { symbols = try SystemMap(path: path) } catch {
        throw TargetError(.symbols, "cannot read System.map \(path): \(error)")
      }
    }
    var shared: SharedMemory?
    if let path = options.memoryFile {
      do { shared = try SharedMemory(path: path, machine: options.machine) } catch {
        throw TargetError(.memory, error.description)
      }
    }
    var recording: RecordedMemory?
    if let path = options.recording {
      do { recording = try RecordedMemory(path: path) } catch {
        throw TargetError(.memory, error.description)
      }
      guard root != nil else {
        throw TargetError(.symbols, "replaying needs the kernel ELF the recording was made from (--kernel)")
      }
    }
    var qmp: QMPClient?
    if let address = options.qmp {
      do { qmp = try await QMPClient.connect(to: address) } catch {
        throw TargetError(.connect, "cannot connect to QMP at \(address): \(error)")
      }
    }
    if options.gdb == nil && shared == nil && recording == nil {
      throw TargetError(
        .gdbRequired, "nothing to read guest memory from: give --gdb ADDR and/or --memory-file PATH")
    }
    let target = Target(
      options: options, qmp: qmp, elf: elf, symbols: symbols, root: root, shared: shared, recording: recording
    )
    if let status = try? await qmp?.queryStatus() { target.wantsRunning = status.running }
    return target
  }

  /// Leaves the target: the VM is left in the run state the user last chose.
  ///
  /// `D;1` makes QEMU resume the VM, so when the user wants it paused the gdbstub socket is
  /// closed without detaching instead (QEMU then keeps it paused).
  public func close() async {
    if let gdb {
      let wantsRunning = self.wantsRunning
      await gdb.perform { gdb in
        guard gdb.isConnected else { return }
        if wantsRunning {
          try? gdb.detach()
        } else {
          if gdb.runState == .running { _ = try? gdb.interrupt() }
          gdb.close()
        }
      }
    }
    gdb = nil
    qmp?.close()
  }

  /// Connects to the gdbstub on first use (which stops the VM), learns the vCPUs and the
  /// register layout, and puts the VM back in the state the user wants.
  func connectGDB() async throws(TargetError) -> GDBRemoteClient {
    if let gdb, gdb.isConnected {
      // QMP `cont` resumes the VM without telling the gdbstub client: trust QMP when we have it.
      if let qmp, let status = try? await qmp.queryStatus(), status.running, gdb.runState != .running {
        await gdb.perform { $0.assumeRunning() }
      }
      return gdb
    }
    guard let text = options.gdb else {
      throw TargetError(.gdbRequired, "this needs the gdbstub: give --gdb ADDR (QEMU -gdb ...)")
    }
    let wasRunning: Bool
    if let qmp, let status = try? await qmp.queryStatus() {
      wasRunning = status.running
    } else {
      wasRunning = wantsRunning
    }
    let client: GDBRemoteClient
    let memory: GDBMemory
    do {
      let address = try GDBAddress(parsing: text)
      client = try await GDBRemoteClient.connect(to: address)
      (threads, memory) = try await client.perform { connection throws(GDBRemoteError) in
        try connection.handshake()
        _ = try connection.fetchTargetDescription()
        let threads = try connection.threads()
        if wasRunning { try connection.continue() }
        return (threads, GDBMemory(connection: connection))
      }
    } catch {
      throw TargetError(.connect, "cannot attach to the gdbstub at \(text): \(error)")
    }
    gdb = client
    gdbMemory = memory
    stoppedEngine = nil
    return client
  }
}
