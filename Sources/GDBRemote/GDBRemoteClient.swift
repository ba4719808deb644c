import Dispatch
import NIOConcurrencyHelpers

/// A gdbstub connection for async code: its blocking socket I/O runs on a serial dispatch
/// queue of its own, never on a thread of Swift's cooperative pool.
///
/// A request that waits for the stub (up to the connection's reply, step or interrupt
/// timeout) suspends the calling task; the pool's threads go on running other tasks
/// meanwhile. Requests run one at a time, in the order they were made, on the queue, so the
/// connection keeps its single-owner discipline and every reply still belongs to its request.
///
/// ``perform(_:)`` runs a block of synchronous ``GDBRemoteConnection`` calls on the queue
/// (one hop there and back for the whole block). A request is not cancelled with its task:
/// it ends by itself, within the connection's timeouts.
public final class GDBRemoteClient: Sendable {
  /// What the connection believed when its latest block ended.
  struct Status: Sendable {
    var runState: GDBRemoteConnection.RunState
    var isConnected: Bool
  }

  /// The queue every use of `connection` runs on.
  private let queue: DispatchQueue
  /// Used only on `queue` (by ``perform(_:)``); never touched from any other thread.
  private nonisolated(unsafe) let connection: GDBRemoteConnection
  private let status: NIOLockedValueBox<Status>

  /// Takes over `connection`; from now on it is used only through ``perform(_:)``.
  public init(_ connection: sending GDBRemoteConnection) {
    self.queue = DispatchQueue(label: "smptop.gdbstub-io")
    self.connection = connection
    self.status = NIOLockedValueBox(
      Status(runState: connection.runState, isConnected: connection.isConnected))
  }

  /// Connects to a gdbstub and performs the handshake, on the client's queue.
  ///
  /// Connecting to QEMU stops the VM; if it was running, the stub's `T02` is recorded.
  public static func connect(
    to address: GDBAddress, options: GDBRemoteConnection.Options = GDBRemoteConnection.Options()
  ) async throws(GDBRemoteError) -> GDBRemoteClient {
    let queue = DispatchQueue(label: "smptop.gdbstub-connect")
    let outcome = await withCheckedContinuation {
      (continuation: CheckedContinuation<Result<GDBRemoteClient, GDBRemoteError>, Never>) in
      queue.async {
        continuation.resume(
          returning: Result { () throws(GDBRemoteError) in
            GDBRemoteClient(try GDBRemoteConnection.connect(to: address, options: options))
          })
      }
    }
    return try outcome.get()
  }

  /// The run state the connection believed in when its latest request ended.
  public var runState: GDBRemoteConnection.RunState { status.withLockedValue { $0.runState } }

  /// Whether the socket was still open when the latest request ended.
  public var isConnected: Bool { status.withLockedValue { $0.isConnected } }

  /// Runs `body` with the connection on the client's queue and returns what it returns; the
  /// calling task is suspended meanwhile (no pool thread waits for the stub).
  ///
  /// `body` runs after every block asked for earlier and before any asked for later. Keep it
  /// to the requests that belong together (a stop, its reads and the resume): other callers
  /// wait behind it.
  public func perform<T, Failure: Error>(
    _ body: (GDBRemoteConnection) throws(Failure) -> T
  ) async throws(Failure) -> T {
    let outcome: Result<T, Failure> = await withoutActuallyEscaping(body) { body in
      let job = Job(body)
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        queue.async {
          job.run(self.connection)
          let status = Status(runState: self.connection.runState, isConnected: self.connection.isConnected)
          self.status.withLockedValue { $0 = status }
          continuation.resume()
        }
      }
      return job.take()
    }
    return try outcome.get()
  }

  /// Closes the socket without detaching (QEMU leaves the VM paused), after every request
  /// asked for earlier.
  public func close() async {
    await perform { connection in connection.close() }
  }
}

/// One block of ``GDBRemoteClient/perform(_:)`` on its way to the queue and its result on the
/// way back.
///
/// It crosses threads although `body` and its result need not be `Sendable`: the task that
/// made the job is suspended from the moment the job is queued until the queue has run it and
/// resumed the task, so the two threads never use it at the same time (the continuation's
/// resume orders the queue's writes before the task's reads). `body` is released on the queue,
/// before the resume, so it does not outlive the call (`withoutActuallyEscaping` checks that).
private final class Job<T, Failure: Error>: @unchecked Sendable {
  private var body: ((GDBRemoteConnection) throws(Failure) -> T)?
  private var result: Result<T, Failure>?

  init(_ body: @escaping (GDBRemoteConnection) throws(Failure) -> T) { self.body = body }

  /// Runs the body (once) and keeps its result; called on the client's queue.
  func run(_ connection: GDBRemoteConnection) {
    guard let body else { return }
    self.body = nil
    result = Result { () throws(Failure) in try body(connection) }
  }

  /// The result, after the queue ran the job.
  func take() -> Result<T, Failure> {
    guard let result else { preconditionFailure("a gdbstub job was taken before it ran") }
    return result
  }
}
