import Foundation
import Glibc
import NIOConcurrencyHelpers
import Transport

/// The socket, the reader thread and the table of waiters behind a `QMPClient`.
///
/// Concurrency model: all mutable state lives in one `NIOLockedValueBox<State>`; completions (which resume
/// continuations) and `AsyncStream` yields always run *after* the lock is released. Each waiter
/// is removed from the table under the lock by whoever completes it (reply, timeout, cancel,
/// close), so it is completed exactly once. One background thread owns reading: it polls the
/// socket and a wake-up pipe, splits the stream into messages, matches replies to requests by
/// id, delivers events and expires deadlines. Writers take the `socket` mutex, which also guards
/// closing the descriptor, so a closed descriptor number is never written to.
final class QMPConnection: Sendable {
  typealias Completion<T> = @Sendable (Result<T, QMPError>) -> Void

  struct Waiter<T> {
    var deadline: ContinuousClock.Instant
    var complete: Completion<T>
  }

  struct State {
    var nextID: Int64 = 1
    var closedError: QMPError?
    var greeting: QMPGreeting?
    var greetingWaiter: Waiter<QMPGreeting>?
    var greetingWaiterID: Int64?
    var sawFirstMessage = false
    var pending: [Int64: (command: String, timeout: Duration, waiter: Waiter<JSONValue>)] = [:]
    var eventQueue: [QMPEvent] = []
    var eventQueueLimit: Int
    var droppedEvents = 0
    var eventWaiters: [(id: Int64, waiter: Waiter<QMPEvent?>)] = []
    var subscribers: [Int64: AsyncStream<QMPEvent>.Continuation] = [:]
    /// When the reader plans to wake up next; a waiter with an earlier deadline pokes the pipe.
    var readerWakeAt: ContinuousClock.Instant?
    var unmatchedReplies = 0
    /// Messages that framed correctly but did not decode as JSON (dropped, not fatal).
    var undecodableMessages = 0

    func nextDeadline() -> ContinuousClock.Instant? {
      var next = greetingWaiter?.deadline
      for deadline in pending.values.map(\.waiter.deadline) + eventWaiters.map(\.waiter.deadline) {
        if let current = next, current <= deadline { continue }
        next = deadline
      }
      return next
    }

    /// Records that a new deadline exists; returns true when the reader must be woken for it.
    mutating func noteDeadline(_ deadline: ContinuousClock.Instant) -> Bool {
      if let wake = readerWakeAt, wake <= deadline { return false }
      readerWakeAt = deadline
      return true
    }
  }

  let address: QMPAddress
  let connectTimeout: Duration
  let writeTimeout: Duration
  let state: NIOLockedValueBox<State>
  /// The socket descriptor: -1 until the reader thread has connected, and again once closed.
  /// Held while writing and while closing.
  let socket: NIOLockedValueBox<Int32>
  let wake: WakePipe

  init(address: QMPAddress, eventQueueLimit: Int, connectTimeout: Duration, writeTimeout: Duration)
    throws(QMPError)
  {
    self.address = address
    self.connectTimeout = connectTimeout
    self.writeTimeout = writeTimeout
    self.socket = NIOLockedValueBox(-1)
    self.state = NIOLockedValueBox(State(eventQueueLimit: max(1, eventQueueLimit)))
    self.wake = try WakePipe()
  }

  deinit {
    socket.withLockedValue { fd in
      if fd >= 0 { Glibc.close(fd) }
      fd = -1
    }
    wake.close()
  }

  /// Starts the reader thread, which connects the socket and then reads it; the thread keeps
  /// the connection alive until the connection is closed. Connecting on this dedicated thread
  /// keeps the blocking `connect` off Swift's cooperative thread pool.
  func start() {
    let thread = Thread { [self] in runReader() }
    thread.name = "smptop.qmp-reader"
    thread.start()
  }

  // MARK: Closing

  var closedError: QMPError? { state.withLockedValue { $0.closedError } }

  /// Closes the connection with `error`: every waiter fails with it, every event stream ends,
  /// and the reader thread exits and closes the socket. Idempotent (the first error wins).
  func finish(with error: QMPError) {
    let taken = state.withLockedValue { state -> State? in
      if state.closedError != nil { return nil }
      state.closedError = error
      let snapshot = state
      state.greetingWaiter = nil
      state.pending = [:]
      state.eventWaiters = []
      state.subscribers = [:]
      return snapshot
    }
    guard let snapshot = taken else { return }
    wake.wake()
    snapshot.greetingWaiter?.complete(.failure(error))
    for (_, entry) in snapshot.pending.sorted(by: { $0.key < $1.key }) {
      entry.waiter.complete(.failure(error.with(command: entry.command)))
    }
    for entry in snapshot.eventWaiters { entry.waiter.complete(.failure(error)) }
    for subscriber in snapshot.subscribers.values { subscriber.finish() }
  }

  // MARK: Waiting

  func allocateID() -> Int64 {
    state.withLockedValue { state in
      defer { state.nextID += 1 }
      return state.nextID
    }
  }

  /// Suspends until `register` has arranged for the completion to be called, handling task
  /// cancellation through `cancel(id)`.
  private func wait<T: Sendable>(
    id: Int64, register: (@escaping Completion<T>) -> Void
  ) async -> Result<T, QMPError> {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, QMPError>, Never>) in
        register { continuation.resume(returning: $0) }
        if Task.isCancelled { cancel(id: id) }
      }
    } onCancel: {
      cancel(id: id)
    }
  }

  /// Fails the waiter `id` (request or event waiter) with `.cancelled`, if it is still waiting.
  private func cancel(id: Int64) {
    let error = QMPError(.cancelled, "the waiting task was cancelled")
    let removed = state.withLockedValue {
      state -> (Completion<JSONValue>?, Completion<QMPEvent?>?, Completion<QMPGreeting>?) in
      if let entry = state.pending.removeValue(forKey: id) { return (entry.waiter.complete, nil, nil) }
      if let index = state.eventWaiters.firstIndex(where: { $0.id == id }) {
        return (nil, state.eventWaiters.remove(at: index).waiter.complete, nil)
      }
      if state.greetingWaiterID == id, let waiter = state.greetingWaiter {
        state.greetingWaiter = nil
        return (nil, nil, waiter.complete)
      }
      return (nil, nil, nil)
    }
    removed.0?(.failure(error))
    removed.1?(.failure(error))
    removed.2?(.failure(error))
  }

  /// Waits for the greeting (the first message QEMU sends).
  func awaitGreeting(timeout: Duration) async -> Result<QMPGreeting, QMPError> {
    let id = allocateID()
    return await wait(id: id) { (complete: @escaping Completion<QMPGreeting>) in
      // The reader connects first (bounded by connectTimeout), then the greeting has `timeout`.
      let deadline = ContinuousClock.now + connectTimeout + timeout
      let immediate = state.withLockedValue { state -> Result<QMPGreeting, QMPError>? in
        if let greeting = state.greeting { return .success(greeting) }
        if let error = state.closedError { return .failure(error) }
        state.greetingWaiter = Waiter(deadline: deadline, complete: complete)
        state.greetingWaiterID = id
        return nil
      }
      if let immediate { complete(immediate) } else { wake.wake() }
    }
  }

  /// Sends one command and waits for the reply with the same id.
  func execute(_ command: String, arguments: JSONValue?, timeout: Duration) async -> Result<
    JSONValue, QMPError
  > {
    let id = allocateID()
    var message: [String: JSONValue] = ["execute": .string(command), "id": .int(id)]
    if let arguments { message["arguments"] = arguments }
    var bytes = [UInt8](JSONValue.object(message).jsonText())
    bytes.append(0x0A)
    return await wait(id: id) { (complete: @escaping Completion<JSONValue>) in
      let deadline = ContinuousClock.now + timeout
      let registered = state.withLockedValue { state -> (error: QMPError?, wake: Bool) in
        if let error = state.closedError { return (error.with(command: command), false) }
        state.pending[id] = (command, timeout, Waiter(deadline: deadline, complete: complete))
        return (nil, state.noteDeadline(deadline))
      }
      if let error = registered.error {
        complete(.failure(error))
        return
      }
      if registered.wake { wake.wake() }
      let failure = socket.withLockedValue { fd -> Int32? in
        guard fd >= 0 else { return EBADF }
        do throws(TransportError) {
          try SocketIO.writeAll(fd, bytes, deadline: ContinuousClock.now + writeTimeout)
          return nil
        } catch {
          return error.errno ?? (error.code == .timedOut ? ETIMEDOUT : EPIPE)
        }
      }
      if let failure {
        // A partly written command leaves the stream unusable: close everything.
        finish(with: QMPError(.connectionClosed, "writing to the QMP socket failed", errno: failure))
      }
    }
  }

  /// Returns the next queued event, waiting up to `timeout`; nil on timeout.
  func nextEvent(timeout: Duration) async -> Result<QMPEvent?, QMPError> {
    let id = allocateID()
    return await wait(id: id) { (complete: @escaping Completion<QMPEvent?>) in
      let deadline = ContinuousClock.now + timeout
      let immediate = state.withLockedValue { state -> (Result<QMPEvent?, QMPError>?, Bool) in
        if !state.eventQueue.isEmpty { return (.success(state.eventQueue.removeFirst()), false) }
        if let error = state.closedError { return (.failure(error), false) }
        if timeout <= .zero { return (.success(nil), false) }
        state.eventWaiters.append((id, Waiter(deadline: deadline, complete: complete)))
        return (nil, state.noteDeadline(deadline))
      }
      if let result = immediate.0 { complete(result) }
      if immediate.1 { wake.wake() }
    }
  }

  /// Removes and returns every queued event without waiting.
  func drainEvents() -> [QMPEvent] {
    state.withLockedValue { state in
      defer { state.eventQueue.removeAll() }
      return state.eventQueue
    }
  }

  /// A new stream of every event from now on; it ends when the connection closes.
  func subscribe(bufferingNewest limit: Int) -> AsyncStream<QMPEvent> {
    let (stream, continuation) = AsyncStream.makeStream(
      of: QMPEvent.self, bufferingPolicy: .bufferingNewest(max(1, limit)))
    let id = allocateID()
    continuation.onTermination = { [weak self] _ in
      _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
    }
    let closed = state.withLockedValue { state -> Bool in
      if state.closedError != nil { return true }
      state.subscribers[id] = continuation
      return false
    }
    if closed { continuation.finish() }
    return stream
  }

  // MARK: The reader thread

  private func runReader() {
    var splitter = JSONStreamSplitter()
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    let fd: Int32
    do {
      fd = try SocketIO.connect(to: address, deadline: ContinuousClock.now + connectTimeout)
    } catch {
      finish(with: QMPError(error))
      return
    }
    socket.withLockedValue { $0 = fd }
    while true {
      let plan = state.withLockedValue { state -> Int32? in
        if state.closedError != nil { return nil }
        let next = state.nextDeadline()
        state.readerWakeAt = next
        return next.map { SocketIO.milliseconds(until: $0) } ?? 1000
      }
      guard let timeout = plan else { break }
      var fds = [
        pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
        pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0),
      ]
      let ready = poll(&fds, 2, min(timeout, 1000))
      if ready < 0 && errno != EINTR {
        finish(with: QMPError(.connectionClosed, "poll() on the QMP socket failed", errno: errno))
        break
      }
      if ready > 0 && fds[1].revents != 0 { wake.drain() }
      if ready > 0 && fds[0].revents != 0 {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
          do {
            for message in try splitter.append(buffer[0..<count]) { process(message) }
          } catch {
            finish(with: error)
          }
        } else if count == 0 {
          let partial = splitter.incompleteByteCount
          finish(
            with: QMPError(
              .connectionClosed,
              partial > 0
                ? "QEMU closed the QMP connection in the middle of a message (\(partial) bytes discarded)"
                : "QEMU closed the QMP connection"))
        } else if errno == ECONNRESET {
          // QEMU died with unread input (our command) in its socket: the kernel sent a reset.
          finish(with: QMPError(.connectionClosed, "QEMU closed the QMP connection", errno: errno))
        } else if errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK {
          finish(with: QMPError(.connectionClosed, "reading the QMP socket failed", errno: errno))
        }
      }
      expireDeadlines()
    }
    socket.withLockedValue { fd in
      if fd >= 0 { Glibc.close(fd) }
      fd = -1
    }
  }

  /// Handles one complete message from the stream.
  private func process(_ data: Data) {
    let value: JSONValue
    do {
      value = try JSONValue(jsonText: data)
    } catch {
      dropUndecodable(data)
      return
    }
    guard let object = value.objectValue, closedError == nil else { return }

    let first = state.withLockedValue { state -> Bool in
      defer { state.sawFirstMessage = true }
      return !state.sawFirstMessage
    }
    if first {
      guard let body = object["QMP"] else {
        finish(with: QMPError(.protocolViolation, "expected the QMP greeting first, got \(value)"))
        return
      }
      let greeting: QMPGreeting
      do {
        greeting = try QMPGreeting(body)
      } catch {
        finish(with: QMPError(.protocolViolation, "malformed QMP greeting: \(error.message)"))
        return
      }
      let waiter = state.withLockedValue { state in
        state.greeting = greeting
        defer { state.greetingWaiter = nil }
        return state.greetingWaiter
      }
      waiter?.complete(.success(greeting))
      return
    }

    if object["event"] != nil {
      let event: QMPEvent
      do {
        event = try QMPEvent(message: object)
      } catch {
        finish(with: error)
        return
      }
      deliver(event)
      return
    }

    guard object["return"] != nil || object["error"] != nil else { return }  // unknown: ignore
    let entry = state.withLockedValue {
      state -> (command: String, timeout: Duration, waiter: Waiter<JSONValue>)? in
      guard let id = object["id"]?.int64Value, let entry = state.pending.removeValue(forKey: id) else {
        state.unmatchedReplies += 1
        return nil
      }
      return entry
    }
    guard let entry else { return }
    if let result = object["return"] {
      entry.waiter.complete(.success(result))
    } else {
      let error = object["error"]
      entry.waiter.complete(
        .failure(
          QMPError(
            .commandFailed, error?["desc"]?.stringValue ?? "\(error ?? .null)", command: entry.command,
            errorClass: QMPErrorClass(rawValue: error?["class"]?.stringValue ?? "GenericError"))))
    }
  }

  /// Drops one framed message that is not valid JSON (QEMU prints doubles with `%.17g`, so a
  /// statistic can arrive as `inf` or `nan`) and counts it. The stream stays usable: the
  /// splitter already found where the message ends. When the message names the id of a
  /// pending command (QEMU writes `"id"` last), that command fails at once with
  /// `.protocolViolation` instead of waiting for its deadline.
  private func dropUndecodable(_ data: Data) {
    let preview = String(decoding: data.prefix(80), as: UTF8.self)
    let id = QMPConnection.trailingID(in: data)
    let entry = state.withLockedValue {
      state -> (command: String, timeout: Duration, waiter: Waiter<JSONValue>)? in
      state.undecodableMessages += 1
      guard state.sawFirstMessage, let id else { return nil }
      return state.pending.removeValue(forKey: id)
    }
    guard let entry else { return }
    entry.waiter.complete(
      .failure(
        QMPError(
          .protocolViolation, "the reply is malformed JSON and was dropped: \(preview.debugDescription)",
          command: entry.command)))
  }

  /// The integer after the last `"id":` of a message, if any.
  static func trailingID(in data: Data) -> Int64? {
    let bytes = Array(data)
    let key = Array(#""id""#.utf8)
    guard bytes.count >= key.count else { return nil }
    var start = bytes.count - key.count
    while start >= 0 {
      if Array(bytes[start..<(start + key.count)]) == key { break }
      start -= 1
    }
    guard start >= 0 else { return nil }
    var i = start + key.count
    while i < bytes.count, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: ":") { i += 1 }
    var digits = ""
    while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9"), digits.count < 18 {
      digits.unicodeScalars.append(Unicode.Scalar(bytes[i]))
      i += 1
    }
    return Int64(digits)
  }

  private func deliver(_ event: QMPEvent) {
    let (waiter, subscribers) = state.withLockedValue {
      state -> (Waiter<QMPEvent?>?, [AsyncStream<QMPEvent>.Continuation]) in
      var waiter: Waiter<QMPEvent?>?
      if !state.eventWaiters.isEmpty {
        waiter = state.eventWaiters.removeFirst().waiter
      } else {
        if state.eventQueue.count >= state.eventQueueLimit {
          state.eventQueue.removeFirst()
          state.droppedEvents += 1
        }
        state.eventQueue.append(event)
      }
      return (waiter, Array(state.subscribers.values))
    }
    waiter?.complete(.success(event))
    for subscriber in subscribers { subscriber.yield(event) }
  }

  private func expireDeadlines() {
    let now = ContinuousClock.now
    let expired = state.withLockedValue {
      state -> (Waiter<QMPGreeting>?, [(String, Duration, Waiter<JSONValue>)], [Waiter<QMPEvent?>]) in
      var greeting: Waiter<QMPGreeting>?
      if let waiter = state.greetingWaiter, waiter.deadline <= now {
        greeting = waiter
        state.greetingWaiter = nil
      }
      var requests: [(String, Duration, Waiter<JSONValue>)] = []
      for (id, entry) in state.pending where entry.waiter.deadline <= now {
        state.pending[id] = nil
        requests.append((entry.command, entry.timeout, entry.waiter))
      }
      var events: [Waiter<QMPEvent?>] = []
      state.eventWaiters.removeAll { entry in
        guard entry.waiter.deadline <= now else { return false }
        events.append(entry.waiter)
        return true
      }
      return (greeting, requests, events)
    }
    expired.0?.complete(
      .failure(
        QMPError(
          .timedOut,
          "no QMP greeting from \(address) (is another client connected? QEMU serves one client "
            + "per QMP socket)")))
    for (command, timeout, waiter) in expired.1 {
      waiter.complete(.failure(QMPError(.timedOut, "no reply within \(timeout)", command: command)))
    }
    for waiter in expired.2 { waiter.complete(.success(nil)) }
  }

  /// Counters for diagnostics.
  var counters: (droppedEvents: Int, unmatchedReplies: Int) {
    state.withLockedValue { ($0.droppedEvents, $0.unmatchedReplies) }
  }

  /// Messages dropped because they were not valid JSON.
  var undecodableMessages: Int { state.withLockedValue { $0.undecodableMessages } }
}
