import Foundation
import GDBRemote
import NIOConcurrencyHelpers
import Testing

/// `GDBRemoteClient` against the fake QEMU 7.2 stub: a request that waits for a stub that
/// never answers holds no thread of Swift's cooperative pool, fails with its timeout, and
/// leaves the connection usable; concurrent callers each get their own reply.
@Suite struct ClientTests {
  /// One reply timeout for the stalled requests: far longer than the pool tasks need.
  static var stalling: GDBRemoteConnection.Options {
    var o = GDBRemoteConnection.Options()
    o.replyTimeout = .seconds(5)
    return o
  }

  /// The number of threads Swift's cooperative pool runs on (one per core on Linux), and never
  /// fewer than two stalled requests.
  static var poolWidth: Int { max(2, ProcessInfo.processInfo.activeProcessorCount) }

  /// A fake stub that accepts every `m` request (acknowledges nothing, answers nothing) and a
  /// connection to it after the handshake.
  static func silentOnMemoryReads(options: GDBRemoteConnection.Options) throws -> (
    FakeStub, GDBRemoteConnection
  ) {
    var configuration = FakeStub.Configuration()
    configuration.faults = [StubFault(prefix: "m", times: Int.max, kind: .silence)]
    let stub = FakeStub(configuration)
    let connection = try GDBRemoteConnection(adoptingSocket: stub.clientDescriptor, options: options)
    try connection.handshake()
    return (stub, connection)
  }

  /// Waits (on the pool, a sleep at a time) until every stub has received a memory read.
  static func awaitMemoryReads(at stubs: [FakeStub]) async throws {
    for _ in 0..<1000 {
      if stubs.allSatisfy({ $0.requests.contains { $0.hasPrefix("m") } }) { return }
      try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("the stubs never received their memory reads")
  }

  /// The order in which requests and pool tasks finished.
  final class Finishes: Sendable {
    enum Kind: Sendable { case request, poolTask }
    private let box = NIOLockedValueBox<[Kind]>([])
    func add(_ kind: Kind) { box.withLockedValue { $0.append(kind) } }
    var all: [Kind] { box.withLockedValue { $0 } }
  }

  /// Runs `count` tasks that each sleep 10 ms, and waits for them.
  static func poolTasks(_ count: Int, _ finishes: Finishes) async {
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<count {
        group.addTask {
          try? await Task.sleep(for: .milliseconds(10))
          finishes.add(.poolTask)
        }
      }
    }
  }

  @Test func poolTasksFinishWhileAsManyRequestsAsPoolThreadsWaitForASilentStub() async throws {
    // One stalled request per pool thread: were they waiting on pool threads, no other task
    // could run until they timed out.
    var stubs: [FakeStub] = []
    var clients: [GDBRemoteClient] = []
    for _ in 0..<Self.poolWidth {
      let (stub, connection) = try Self.silentOnMemoryReads(options: Self.stalling)
      stubs.append(stub)
      clients.append(GDBRemoteClient(connection))
    }
    defer { for stub in stubs { stub.stop() } }
    let finishes = Finishes()
    let started = ContinuousClock.now
    async let failures: [GDBRemoteError?] = withTaskGroup(of: GDBRemoteError?.self) { group in
      for client in clients {
        group.addTask {
          defer { finishes.add(.request) }
          do throws(GDBRemoteError) {
            _ = try await client.perform { connection throws(GDBRemoteError) in
              try connection.readMemory(address: 0x1000, count: 16, physical: true)
            }
            return nil
          } catch {
            return error
          }
        }
      }
      var errors: [GDBRemoteError?] = []
      for await error in group { errors.append(error) }
      return errors
    }
    try await Self.awaitMemoryReads(at: stubs)
    await Self.poolTasks(2 * Self.poolWidth, finishes)
    // Every pool task finished while every request was still waiting for the stub.
    #expect(finishes.all == Array(repeating: .poolTask, count: 2 * Self.poolWidth))

    let errors = await failures
    #expect(errors.count == Self.poolWidth)
    for error in errors {
      let error = try #require(error, "a request to a silent stub must fail")
      #expect(error.code == .timeout, "\(error)")
      #expect(error.sent?.contains("m1000,10") == true, "the timeout names its request: \(error)")
    }
    #expect(ContinuousClock.now - started >= Self.stalling.replyTimeout)
    // The connections are still in step with their stubs: the next request gets its own reply.
    for client in clients {
      let threads = try await client.perform { connection throws(GDBRemoteError) in try connection.threads() }
      #expect(threads.count == 4)
    }
  }

  /// Negative control: the same stalled requests made straight on the connection from pool
  /// tasks occupy every pool thread, so the pool tasks can only finish after a request did.
  @Test func blockingCallsOnThePoolHoldUpPoolTasks() async throws {
    var configuration = FakeStub.Configuration()
    configuration.faults = [StubFault(prefix: "m", times: Int.max, kind: .silence)]
    let stubs = (0..<Self.poolWidth).map { _ in FakeStub(configuration) }
    defer { for stub in stubs { stub.stop() } }
    let finishes = Finishes()
    await withTaskGroup(of: Void.self) { group in
      for stub in stubs {
        group.addTask {
          var options = GDBRemoteConnection.Options()
          options.replyTimeout = .seconds(1)
          if let connection = try? GDBRemoteConnection(
            adoptingSocket: stub.clientDescriptor, options: options)
          {
            try? connection.handshake()
            _ = try? connection.readMemory(address: 0x1000, count: 16, physical: true)
          }
          finishes.add(.request)
        }
      }
      await Self.poolTasks(2 * Self.poolWidth, finishes)
    }
    let all = finishes.all
    #expect(all.filter { $0 == .request }.count == Self.poolWidth)
    let lastPoolTask = try #require(all.lastIndex(of: .poolTask))
    #expect(
      all[..<lastPoolTask].contains(.request), "pool tasks ran while every pool thread was blocked: \(all)")
  }

  @Test func concurrentCallersEachGetTheirOwnReply() async throws {
    let stub = FakeStub()
    defer { stub.stop() }
    let connection = try GDBRemoteConnection(adoptingSocket: stub.clientDescriptor)
    try connection.handshake()
    let client = GDBRemoteClient(connection)
    let addresses = (0..<64).map { UInt64(0x1000 + $0 * 0x40) }
    let results = try await withThrowingTaskGroup(of: (UInt64, [UInt8]).self) { group in
      for address in addresses {
        group.addTask {
          let bytes = try await client.perform { connection throws(GDBRemoteError) in
            try connection.readMemory(address: address, count: 8, physical: true)
          }
          return (address, bytes)
        }
      }
      var results: [UInt64: [UInt8]] = [:]
      for try await (address, bytes) in group { results[address] = bytes }
      return results
    }
    #expect(results.count == addresses.count)
    for address in addresses {
      let expected = (0..<8).map { QEMU72Model.memoryByte(address + UInt64($0)) }
      #expect(results[address] == expected, "the reply for 0x\(String(address, radix: 16))")
    }
    #expect(client.runState == .stopped)
    await client.close()
    #expect(!client.isConnected)
  }
}
