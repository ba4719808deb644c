import Foundation
import Transport

/// A QMP (QEMU Machine Protocol) client for QEMU 7.2 and later.
///
/// `connect` opens the socket, reads the greeting and negotiates capabilities. Commands are
/// `async` and matched to their replies by id, so any number of tasks may share one client
/// (for example a sampler and a UI): the class is `Sendable` and keeps its state behind a
/// `NIOLockedValueBox` (a pthread mutex); a background thread reads the socket. Asynchronous events arrive both through
/// `events()` streams (one per subscriber) and through a bounded queue read with
/// `nextEvent(timeout:)` / `drainEvents()`.
///
/// Every wait has a timeout. When the connection closes (QEMU exits or is killed, the peer sends
/// something that is not QMP, or `close()` is called), every pending and later call fails with
/// `QMPError.Code.connectionClosed` (or `.protocolViolation`), and every event stream ends.
public final class QMPClient: Sendable {
  /// The address connected to.
  public let address: QMPAddress
  /// The server's greeting (QEMU version, capabilities).
  public let greeting: QMPGreeting
  /// The timeout used by calls that do not pass one.
  public let defaultTimeout: Duration

  let connection: QMPConnection

  private init(
    address: QMPAddress, greeting: QMPGreeting, defaultTimeout: Duration, connection: QMPConnection
  ) {
    self.address = address
    self.greeting = greeting
    self.defaultTimeout = defaultTimeout
    self.connection = connection
  }

  deinit {
    connection.finish(with: QMPError(.connectionClosed, "the QMP client was released"))
  }

  /// Connects to a QMP server, reads its greeting and sends `qmp_capabilities`.
  /// - Parameters:
  ///   - address: The server's socket.
  ///   - timeout: The limit for connecting, the greeting and the negotiation, each.
  ///   - commandTimeout: The default timeout of later commands.
  ///   - eventQueueLimit: How many events `nextEvent`/`drainEvents` keep before dropping the oldest.
  public static func connect(
    to address: QMPAddress, timeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(5),
    eventQueueLimit: Int = 1024
  ) async throws(QMPError) -> QMPClient {
    let connection = try QMPConnection(
      address: address, eventQueueLimit: eventQueueLimit, connectTimeout: timeout, writeTimeout: timeout)
    connection.start()
    do {
      let greeting = try await connection.awaitGreeting(timeout: timeout).get()
      _ = try await connection.execute("qmp_capabilities", arguments: nil, timeout: timeout).get()
      return QMPClient(
        address: address, greeting: greeting, defaultTimeout: commandTimeout, connection: connection)
    } catch {
      connection.finish(with: error)
      throw error
    }
  }

  /// Connects to an address written as `unix:/path`, `/path`, `host:port` or `tcp:host:port`.
  public static func connect(
    to address: String, timeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(5)
  ) async throws(QMPError) -> QMPClient {
    let parsed: QMPAddress
    do { parsed = try QMPAddress(parsing: address) } catch { throw QMPError(error) }
    return try await connect(to: parsed, timeout: timeout, commandTimeout: commandTimeout)
  }

  // MARK: Connection state

  /// Whether the connection is still open.
  public var isConnected: Bool { connection.closedError == nil }

  /// Why the connection closed, once it has.
  public var closeReason: QMPError? { connection.closedError }

  /// Closes the connection: pending calls fail with `.connectionClosed`, event streams end.
  public func close() {
    connection.finish(with: QMPError(.connectionClosed, "the QMP connection was closed by the client"))
  }

  /// Events dropped because the `nextEvent` queue was full, and replies that matched no request
  /// (late replies to timed-out or cancelled calls).
  public var counters: (droppedEvents: Int, unmatchedReplies: Int) { connection.counters }

  /// Messages that were framed but not valid JSON (`inf`, `nan` from QEMU's `%.17g`):
  /// dropped and counted here; the connection stays open.
  public var undecodableMessages: Int { connection.undecodableMessages }

  // MARK: Commands

  /// Executes any QMP command and returns its `return` value.
  /// - Parameters:
  ///   - command: The command name, e.g. `query-status`.
  ///   - arguments: The `arguments` object, if any.
  ///   - timeout: How long to wait for the reply (default: `defaultTimeout`).
  /// - Throws: `QMPError` with `.commandFailed` (and the QMP error class) for an error reply,
  ///   `.timedOut`, `.connectionClosed`, `.protocolViolation` or `.cancelled`.
  @discardableResult
  public func execute(
    _ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration? = nil
  ) async throws(QMPError) -> JSONValue {
    try await connection.execute(
      command, arguments: arguments.map(JSONValue.object), timeout: timeout ?? defaultTimeout
    ).get()
  }

  /// `query-status`: the run state and whether the vCPUs run.
  public func queryStatus() async throws(QMPError) -> QMPStatus {
    try QMPStatus(await execute("query-status"))
  }

  /// `stop`: pauses the VM (emits `STOP`).
  public func stop() async throws(QMPError) {
    try await execute("stop")
  }

  /// `cont`: resumes the VM (emits `RESUME`).
  public func cont() async throws(QMPError) {
    try await execute("cont")
  }

  /// `system_reset`: resets the VM (emits `RESET`; a VM reset from `guest-panicked` goes to `prelaunch`).
  public func systemReset() async throws(QMPError) {
    try await execute("system_reset")
  }

  /// `quit`: asks QEMU to exit. Succeeds when QEMU acknowledges it or closes the connection
  /// while the command is in flight.
  public func quit() async throws(QMPError) {
    let wasConnected = isConnected
    do {
      try await execute("quit")
    } catch  where wasConnected && error.code == .connectionClosed {
      return
    }
  }

  /// `query-cpus-fast`: one entry per vCPU with its index, host thread id, QOM path and topology.
  public func queryCPUsFast() async throws(QMPError) -> [QMPCPUInfo] {
    let reply = try await execute("query-cpus-fast")
    guard let elements = reply.arrayValue else {
      throw QMPError(.unexpectedReply, "expected an array, got \(reply)", command: "query-cpus-fast")
    }
    var cpus: [QMPCPUInfo] = []
    for element in elements { cpus.append(try QMPCPUInfo(element)) }
    return cpus
  }

  /// `x-query-virtio`: the virtio devices and the QOM paths to query them with.
  public func queryVirtio() async throws(QMPError) -> [VirtioDeviceInfo] {
    let reply = try await execute("x-query-virtio")
    guard let elements = reply.arrayValue else {
      throw QMPError(.unexpectedReply, "expected an array, got \(reply)", command: "x-query-virtio")
    }
    var devices: [VirtioDeviceInfo] = []
    for element in elements { devices.append(try VirtioDeviceInfo(element)) }
    return devices
  }

  /// `x-query-virtio-status`: device status, feature bits and queue count of the device at `path`.
  public func virtioStatus(path: String) async throws(QMPError) -> VirtioStatus {
    try VirtioStatus(await execute("x-query-virtio-status", arguments: ["path": .string(path)]))
  }

  /// `x-query-virtio-queue-status`: the device model's indices and ring addresses of one queue.
  public func virtioQueueStatus(path: String, queue: Int) async throws(QMPError) -> VirtioQueueStatus {
    try VirtioQueueStatus(
      await execute(
        "x-query-virtio-queue-status", arguments: ["path": .string(path), "queue": .int(Int64(queue))]))
  }

  /// `human-monitor-command`: runs an HMP command line (e.g. `info registers -a`) and returns its text.
  /// - Parameter cpuIndex: The vCPU HMP commands such as `info registers` refer to.
  public func humanMonitorCommand(_ commandLine: String, cpuIndex: Int? = nil) async throws(QMPError)
    -> String
  {
    var arguments: [String: JSONValue] = ["command-line": .string(commandLine)]
    if let cpuIndex { arguments["cpu-index"] = .int(Int64(cpuIndex)) }
    let reply = try await execute("human-monitor-command", arguments: arguments)
    guard let text = reply.stringValue else {
      throw QMPError(.unexpectedReply, "expected a string, got \(reply)", command: "human-monitor-command")
    }
    return text
  }

  // MARK: Events

  /// A stream of every event received from now on. Each call makes an independent subscriber;
  /// a slow subscriber keeps the newest `bufferingNewest` events. The stream ends when the
  /// connection closes.
  public func events(bufferingNewest limit: Int = 1024) -> AsyncStream<QMPEvent> {
    connection.subscribe(bufferingNewest: limit)
  }

  /// Takes the oldest queued event, waiting up to `timeout` for one.
  /// - Returns: The event, or nil if none arrived in time.
  /// - Throws: `.connectionClosed` once the connection is closed and the queue is empty.
  public func nextEvent(timeout: Duration) async throws(QMPError) -> QMPEvent? {
    try await connection.nextEvent(timeout: timeout).get()
  }

  /// Takes every queued event without waiting (oldest first).
  public func drainEvents() -> [QMPEvent] {
    connection.drainEvents()
  }
}
