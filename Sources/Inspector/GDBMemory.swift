import GDBRemote

/// Guest memory read through QEMU's gdbstub while the VM is stopped.
///
/// Each `read` is one pipelined burst (one write, one read loop). When `registerThreads` is
/// set, the next burst also carries `Hg`+`g` for those vCPUs, so a stopped snapshot (every
/// register of every vCPU plus the model) costs a single round trip after the first.
///
/// Reads block until the stub answers: use it inside ``GDBRemoteClient/perform(_:)`` of the
/// client that owns the connection, which runs them off Swift's cooperative pool.
public final class GDBMemory: GuestMemory {
  public let kind = MemorySourceKind.gdbstub
  public let isLive = false
  /// The connection; the VM must be stopped while reading.
  public let connection: GDBRemoteConnection
  /// vCPUs whose registers the next read also fetches (then cleared).
  public var registerThreads: [ThreadID] = []
  /// Registers fetched by the latest read that carried them.
  public private(set) var registers: [ThreadID: Result<RegisterSet, GDBRemoteError>] = [:]

  /// Reads through `connection` in physical-address mode.
  public init(connection: GDBRemoteConnection) {
    self.connection = connection
  }

  public func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    let threads = registerThreads
    registerThreads = []
    let requests = ranges.map {
      GDBRemote.MemoryRange(address: $0.address, count: $0.count, space: .physical)
    }
    do {
      let result = try connection.readBatch(registersOf: threads, memory: requests)
      if !threads.isEmpty { registers = result.registers }
      return zip(ranges, result.memory).map { range, r in
        r.mapError { GuestMemoryError(.sourceFailed, range, $0.description) }
      }
    } catch {
      return ranges.map { .failure(GuestMemoryError(.sourceFailed, $0, error.description)) }
    }
  }
}
