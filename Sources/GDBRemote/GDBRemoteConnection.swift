/// A client connection to a gdbstub speaking the GDB remote serial protocol, tuned for
/// QEMU 7.2's system-mode stub (one thread per vCPU, all-stop only).
///
/// ## Threading
///
/// A connection is **not** `Sendable` and has no locks: use it from one thread, task or
/// actor at a time (for example, own it inside an actor). Every call is synchronous and
/// bounded by a timeout; nothing blocks forever.
///
/// ## What it handles for you
///
/// * Framing, checksums and acknowledgements. QEMU 7.2 has no `QStartNoAckMode`, so the
///   stub's `+` is consumed (it tells which request a reply belongs to), every packet
///   received is acknowledged (by the `++` that starts the next burst, see `ackOwed`),
///   a `-` makes us resend (a bounded number of times), and a reply with a bad checksum
///   is answered with `-` when it is the last one due, or repeated on its own otherwise.
/// * Unsolicited stop replies (`T02` when the VM stops behind our back) are recorded in
///   ``stopReplies`` and never taken for a command's reply; `O` console output is
///   collected (``takeConsoleOutput()``).
/// * Pipelining: independent requests go out in one write and their replies are read in
///   order (``pipeline(_:timeout:)``, ``readBatch(registersOf:memory:timeout:)``).
/// * Run state: commands that need a stopped target refuse to run while the target is
///   believed running, because QEMU 7.2 stops the VM on any byte and discards it.
public final class GDBRemoteConnection {
  /// Limits and timeouts of a connection.
  public struct Options: Sendable, Equatable {
    /// How long to wait for the replies of one request or pipeline.
    public var replyTimeout: Duration = .seconds(3)
    /// How long a single step may take before it is interrupted.
    public var stepTimeout: Duration = .seconds(1)
    /// How long to wait for the stop reply after `\x03`.
    public var interruptTimeout: Duration = .seconds(3)
    /// How long connecting may take.
    public var connectTimeout: Duration = .seconds(5)
    /// How long to wait for the stub's `+` for a lone request before sending it again.
    public var acknowledgementTimeout: Duration = .milliseconds(500)
    /// How often a packet is resent after a `-`, and how often a corrupt reply is
    /// requested again.
    public var maximumRetransmissions: Int = 3
    /// The largest packet accepted from the stub; a longer one is an error value.
    public var maximumPacketSize: Int = 64 * 1024

    /// Default options.
    public init() {}
  }

  /// What the connection believes about the target.
  public enum RunState: Sendable, Equatable {
    /// Stopped: registers and memory can be read.
    case stopped
    /// Running after `continue()` (or a step that did not finish).
    case running
    /// Unknown, for instance after an interrupt that got no answer.
    case unknown
    /// The stub reported that the process exited (`W`/`X`).
    case exited
    /// Detached, closed, or the peer went away.
    case disconnected
  }

  /// Counters of protocol events, for diagnostics and tests.
  public struct Statistics: Sendable, Equatable {
    /// Packets written, retransmissions included.
    public var packetsSent = 0
    /// Well-formed packets received.
    public var packetsReceived = 0
    /// Our packets resent after a `-` or a missing `+`.
    public var retransmissions = 0
    /// `-` sent for corrupt packets.
    public var naksSent = 0
    /// Packets received with a bad checksum or a broken encoding.
    public var corruptPackets = 0
    /// Packets that exceeded the size bound.
    public var oversizedPackets = 0
    /// Well-formed packets that answered no request and were not stop replies or output.
    public var strayPackets = 0
    /// Bytes outside packets that meant nothing.
    public var garbageBytes = 0
    /// Stop replies that arrived without being asked for.
    public var unsolicitedStopReplies = 0
    /// `O` console packets.
    public var consolePackets = 0

    /// Zero counters.
    public init() {}
  }

  /// The options this connection was created with.
  public let options: Options
  /// What the connection believes about the target.
  public internal(set) var runState: RunState = .stopped
  /// The most recent stop reply, solicited or not.
  public internal(set) var lastStopReply: StopReply?
  /// Recent stop replies in arrival order (at most 256; older ones are dropped).
  public internal(set) var stopReplies: [StopReply] = []
  /// Protocol counters.
  public internal(set) var statistics = Statistics()
  /// The `qSupported` reply as name → value (`+`, `-`, `?` or the value after `=`).
  public internal(set) var supportedFeatures: [String: String] = [:]
  /// Whether multiprocess thread ids (`p1.2`) were negotiated.
  public internal(set) var usesMultiprocess = false
  /// The target description fetched during the handshake.
  public internal(set) var targetDescription: TargetDescription?

  let socket: StreamSocket
  var decoder: PacketDecoder
  var outbox: [UInt8] = []
  /// A packet arrived that we have not acknowledged yet.
  ///
  /// QEMU 7.2's system-mode stub never waits for `+`, and a `+` that reaches it after it
  /// sent a newer packet would clear the copy that a `-` resends. So no `+` is written on
  /// its own: the `++` that starts every burst acknowledges everything before it, and
  /// ``interrupt(timeout:)`` sends `+` before `\x03` when one is owed (with a packet
  /// unacknowledged, QEMU would swallow the `\x03`). One write per exchange, not two.
  var ackOwed = false
  var console: [UInt8] = []
  var stopCount = 0
  var consecutiveUnsolicitedNaks = 0
  var needsResync = false
  /// The thread selected with `Hg`, if known.
  var selectedThread: ThreadID?
  /// Whether `Qqemu.PhyMemMode` is on, if known (the stub keeps it across connections).
  var physicalMode: Bool?
  /// A thread whose step timed out: QEMU 7.2 leaves its single-step flag set, so the next
  /// resume stops at once with `T05` for it.
  var staleStepThread: ThreadID?

  // MARK: Creating

  /// Adopts an already connected stream socket; the connection owns and closes it.
  ///
  /// No packet is exchanged; call ``handshake()`` next (``connect(to:options:)`` does both).
  public init(adoptingSocket descriptor: Int32, options: Options = Options()) throws(GDBRemoteError) {
    self.options = options
    self.socket = try StreamSocket(adopting: descriptor)
    self.decoder = PacketDecoder(maximumPacketSize: options.maximumPacketSize)
  }

  private init(socket: StreamSocket, options: Options) {
    self.options = options
    self.socket = socket
    self.decoder = PacketDecoder(maximumPacketSize: options.maximumPacketSize)
  }

  /// Connects to a gdbstub and performs the handshake (features and target description).
  ///
  /// Connecting to QEMU stops the VM; if it was running, the stub's `T02` is recorded.
  public static func connect(to address: GDBAddress, options: Options = Options()) throws(GDBRemoteError)
    -> GDBRemoteConnection
  {
    let socket = try StreamSocket.connect(to: address, deadline: .now + options.connectTimeout)
    let connection = GDBRemoteConnection(socket: socket, options: options)
    try connection.handshake()
    return connection
  }

  deinit { socket.close() }

  /// Closes the socket without detaching (QEMU leaves the VM paused).
  public func close() {
    socket.close()
    runState = .disconnected
  }

  /// Whether the socket is still open.
  public var isConnected: Bool { socket.isOpen && runState != .disconnected }

  /// Returns and clears the console output (`O` packets) received so far.
  public func takeConsoleOutput() -> String {
    defer { console.removeAll() }
    return String(decoding: console, as: UTF8.self)
  }

  /// Tells the connection that something else (for example QMP `cont`) resumed the VM.
  ///
  /// Commands then refuse to run until ``interrupt(timeout:)`` has stopped it again.
  public func assumeRunning() {
    if runState == .stopped || runState == .unknown { runState = .running }
    selectedThread = nil
  }

  // MARK: Exchanging packets

  enum Expectation {
    /// An ordinary reply packet.
    case reply
    /// A stop reply (the answer to a resume or step).
    case stopReply
    /// Only the stub's `+` (as for `c`).
    case acknowledgement
  }

  enum Answer {
    case packet([UInt8])
    case stop(StopReply)
    case acknowledged
  }

  struct Slot {
    var text: String
    var framed: [UInt8]
    var expectation: Expectation
    var sentAt: ContinuousClock.Instant = .now
    var retransmissions = 0
    var naks = 0
    var result: Result<Answer, GDBRemoteError>?
  }

  /// The bookkeeping of one write-then-read-replies round.
  struct Exchange {
    var slots: [Slot] = []
    /// Slots whose `+`/`-` is still due, in the order the stub will send them.
    var awaitingAck: [Int] = []
    var ackHead = 0
    /// Slots acknowledged and waiting for their reply, in reply order.
    var awaitingReply: [Int] = []
    var replyHead = 0
    var unresolved = 0

    var nextAck: Int? { ackHead < awaitingAck.count ? awaitingAck[ackHead] : nil }
    var nextReply: Int? { replyHead < awaitingReply.count ? awaitingReply[replyHead] : nil }
    var pendingAcks: Int { awaitingAck.count - ackHead }
    var pendingReplies: Int { awaitingReply.count - replyHead }

    mutating func resolve(_ index: Int, _ result: Result<Answer, GDBRemoteError>) {
      guard slots[index].result == nil else { return }
      slots[index].result = result
      unresolved -= 1
    }

    /// The first request without a result, for error context.
    var firstUnresolved: Slot? { slots.first { $0.result == nil } }
  }

  func requireUsable() throws(GDBRemoteError) {
    guard socket.isOpen, runState != .disconnected else {
      throw GDBRemoteError(.notConnected, "the connection is closed")
    }
  }

  func requireStopped(_ what: String) throws(GDBRemoteError) {
    try requireUsable()
    switch runState {
    case .running:
      throw GDBRemoteError(
        .targetRunning,
        "cannot \(what) while the target runs: QEMU would stop the VM and discard the request; call interrupt() first"
      )
    case .exited:
      throw GDBRemoteError(.targetRunning, "cannot \(what): the target has exited")
    default:
      break
    }
  }

  /// Sends `requests` in one write and reads their answers in order.
  ///
  /// Connection-level failures (closed, timeout, I/O) throw; a per-request failure (a
  /// reply that stayed corrupt) is that request's result.
  func exchange(
    _ requests: [(String, Expectation)], timeout: Duration? = nil
  ) throws(GDBRemoteError) -> [Result<Answer, GDBRemoteError>] {
    try requireUsable()
    if requests.isEmpty { return [] }
    if needsResync { try resynchronize() }
    let deadline = ContinuousClock.now + (timeout ?? options.replyTimeout)
    var x = Exchange()
    // Two leading `+`: harmless when the VM is stopped (they acknowledge the stub's last
    // packet). If the VM was resumed behind our back (QMP `cont`), QEMU 7.2 consumes one
    // byte to clear an unacknowledged packet and one to stop the VM (sending `T02`), so
    // the requests after them are not lost.
    var burst: [UInt8] = [UInt8(ascii: "+"), UInt8(ascii: "+")]
    ackOwed = false
    for (text, expectation) in requests {
      let payload = Array(text.utf8)
      guard payload.count < 4095 else {
        throw GDBRemoteError(
          .invalidArgument, "request of \(payload.count) characters: QEMU drops requests of 4095 or more",
          sent: Printable.excerpt(payload))
      }
      let framed = PacketEncoder.frame(payload)
      x.slots.append(Slot(text: text, framed: framed, expectation: expectation))
      x.awaitingAck.append(x.slots.count - 1)
      burst += framed
    }
    x.unresolved = x.slots.count
    statistics.packetsSent += x.slots.count
    try write(burst, deadline: deadline, &x)
    try pump(&x, deadline: deadline) { $0.unresolved == 0 }
    return x.slots.map { slot in slot.result ?? .failure(GDBRemoteError(.timeout, "no answer")) }
  }

  /// Sends one request and returns its answer.
  func exchangeOne(_ text: String, _ expectation: Expectation = .reply, timeout: Duration? = nil)
    throws(GDBRemoteError) -> Answer
  {
    let results = try exchange([(text, expectation)], timeout: timeout)
    guard let first = results.first else {
      throw GDBRemoteError(.protocolViolation, "no result", sent: Printable.excerpt(text))
    }
    return try first.get()
  }

  func write(_ bytes: [UInt8], deadline: ContinuousClock.Instant, _ x: inout Exchange) throws(GDBRemoteError)
  {
    do throws(GDBRemoteError) {
      try socket.write(bytes, until: deadline) { outcome in
        if case .data(let data) = outcome { process(data, &x) }
      }
    } catch  where error.code == .connectionClosed {
      throw fail(peerClosed(error), x)
    } catch {
      throw fail(error, x)
    }
  }

  /// Reads and dispatches input until `done` holds or the deadline passes.
  func pump(
    _ x: inout Exchange, deadline: ContinuousClock.Instant, until done: (Exchange) -> Bool
  ) throws(GDBRemoteError) {
    try flushOutbox(deadline: deadline, &x)
    while !done(x) {
      let now = ContinuousClock.now
      var readDeadline = deadline
      // A lone request whose `+` is overdue was probably lost (for example eaten by a
      // running VM): send it again. With several outstanding we cannot tell which one
      // was lost, so only the overall deadline applies.
      if x.pendingAcks == 1, x.pendingReplies == 0, let index = x.nextAck {
        let due = x.slots[index].sentAt + options.acknowledgementTimeout
        if due <= now {
          if x.slots[index].retransmissions < options.maximumRetransmissions {
            x.slots[index].retransmissions += 1
            x.slots[index].sentAt = now
            statistics.retransmissions += 1
            // Should the first copy be answered after all, its reply is a stray.
            needsResync = true
            statistics.packetsSent += 1
            outbox += x.slots[index].framed
            try flushOutbox(deadline: deadline, &x)
            continue
          }
        } else if due < readDeadline {
          readDeadline = due
        }
      }
      let outcome: StreamSocket.ReadOutcome
      do throws(GDBRemoteError) {
        outcome = try socket.read(until: readDeadline)
      } catch {
        throw fail(error, x)
      }
      switch outcome {
      case .data(let bytes):
        process(bytes, &x)
        try flushOutbox(deadline: deadline, &x)
      case .endOfFile:
        throw fail(peerClosed(), x)
      case .timedOut:
        if ContinuousClock.now >= deadline {
          needsResync = true
          throw fail(GDBRemoteError(.timeout, "no answer from the stub in time"), x)
        }
      }
    }
  }

  /// Marks the connection dead after the peer closed it and describes how it happened.
  func peerClosed(_ underlying: GDBRemoteError? = nil) -> GDBRemoteError {
    let midPacket = decoder.isInsidePacket
    socket.close()
    runState = .disconnected
    var error = GDBRemoteError(
      .connectionClosed,
      midPacket
        ? "the stub closed the connection in the middle of a packet" : "the stub closed the connection")
    error.errno = underlying?.errno
    return error
  }

  /// Adds the first unanswered request to an error's context.
  func fail(_ error: GDBRemoteError, _ x: Exchange) -> GDBRemoteError {
    guard let slot = x.firstUnresolved else { return error }
    return error.sending(slot.text)
  }

  func flushOutbox(deadline: ContinuousClock.Instant, _ x: inout Exchange) throws(GDBRemoteError) {
    while !outbox.isEmpty {
      let bytes = outbox
      outbox.removeAll()
      try write(bytes, deadline: deadline, &x)
    }
  }

  /// Feeds input to the decoder and dispatches the events.
  func process(_ bytes: [UInt8], _ x: inout Exchange) {
    for event in decoder.feed(bytes) { handle(event, &x) }
  }

  func handle(_ event: PacketDecoder.Event, _ x: inout Exchange) {
    switch event {
    case .ack:
      guard let index = x.nextAck else { return }
      x.ackHead += 1
      switch x.slots[index].expectation {
      case .acknowledgement:
        // A resume: the target runs from here on, until a stop reply says otherwise.
        runState = .running
        selectedThread = nil
        x.resolve(index, .success(.acknowledged))
      case .stopReply:
        runState = .running
        selectedThread = nil
        x.awaitingReply.append(index)
      case .reply:
        x.awaitingReply.append(index)
      }

    case .nak:
      guard let index = x.nextAck else { return }
      x.ackHead += 1
      if x.slots[index].retransmissions < options.maximumRetransmissions {
        x.slots[index].retransmissions += 1
        x.slots[index].sentAt = .now
        statistics.retransmissions += 1
        statistics.packetsSent += 1
        x.awaitingAck.append(index)
        outbox += x.slots[index].framed
      } else {
        x.resolve(
          index,
          .failure(
            GDBRemoteError(
              .checksumMismatch,
              "the stub rejected the packet \(x.slots[index].retransmissions + 1) times",
              sent: Printable.excerpt(x.slots[index].text))))
      }

    case .packet(let packet):
      statistics.packetsReceived += 1
      consecutiveUnsolicitedNaks = 0
      ackOwed = true
      dispatch(packet.payload, &x)

    case .checksumMismatch(let received, let computed, let wire):
      statistics.corruptPackets += 1
      corrupt(
        GDBRemoteError(
          .checksumMismatch,
          "reply checksum \(Hex.byte(received)) but the content sums to \(Hex.byte(computed))",
          received: Printable.excerpt(wire)), &x)

    case .malformed(let kind):
      switch kind {
      case .restartedByNewPacket:
        // A fragment followed by a new packet: the fragment is dropped; if it was a
        // reply, the deadline will say so.
        statistics.corruptPackets += 1
      case .invalidChecksumDigits, .invalidRunLength:
        statistics.corruptPackets += 1
        corrupt(GDBRemoteError(.checksumMismatch, "garbled reply (\(kind))"), &x)
      }

    case .oversized(let length):
      statistics.oversizedPackets += 1
      ackOwed = true
      if let index = x.nextReply {
        x.replyHead += 1
        x.resolve(
          index,
          .failure(
            GDBRemoteError(
              .packetTooLarge,
              "the reply exceeded \(options.maximumPacketSize) bytes (\(length) so far) and was discarded",
              sent: Printable.excerpt(x.slots[index].text))))
      }

    case .garbage(let bytes):
      statistics.garbageBytes += bytes.count

    case .interrupt:
      statistics.garbageBytes += 1
    }
  }

  /// Handles a reply that arrived damaged.
  func corrupt(_ error: GDBRemoteError, _ x: inout Exchange) {
    if let index = x.nextReply {
      if x.pendingReplies == 1, x.pendingAcks == 0, x.slots[index].naks < options.maximumRetransmissions {
        // Nothing else is due from the stub, so its last packet is this reply and no `+`
        // of ours has cleared it (they are deferred): `-` makes it send it again. Should
        // the damaged packet have been output rather than the reply, the resent copy is
        // a stray: drain before the next exchange.
        x.slots[index].naks += 1
        statistics.naksSent += 1
        needsResync = true
        outbox.append(UInt8(ascii: "-"))
      } else {
        // In a pipeline a `-` would fetch the stub's latest reply, not this one; fail
        // this request (callers retry it on its own) and keep the order.
        x.replyHead += 1
        ackOwed = true
        var failure = error.sending(x.slots[index].text)
        failure.isTransient = true
        x.resolve(index, .failure(failure))
      }
    } else if consecutiveUnsolicitedNaks < options.maximumRetransmissions {
      // Nothing asked for: most likely a damaged stop reply. Ask for it again.
      consecutiveUnsolicitedNaks += 1
      statistics.naksSent += 1
      outbox.append(UInt8(ascii: "-"))
    } else {
      ackOwed = true
    }
  }

  /// Routes a verified packet: console output, stop reply, or the next request's reply.
  func dispatch(_ payload: [UInt8], _ x: inout Exchange) {
    if GDBRemoteConnection.isConsoleOutput(payload) {
      statistics.consolePackets += 1
      if let text = Hex.decode(payload.dropFirst()) {
        if console.count + text.count <= 1 << 20 { console += text }
      }
      return
    }
    var stop: StopReply? = nil
    if let first = payload.first,
      first == UInt8(ascii: "T") || first == UInt8(ascii: "S") || first == UInt8(ascii: "W")
        || first == UInt8(ascii: "X")
    {
      stop = StopReply(parsing: payload)
    }
    if let index = x.nextReply {
      switch x.slots[index].expectation {
      case .stopReply:
        x.replyHead += 1
        if let stop {
          record(stop, solicited: true)
          x.resolve(index, .success(.stop(stop)))
        } else {
          x.resolve(index, .success(.packet(payload)))
        }
        return
      case .reply, .acknowledgement:
        if stop == nil {
          x.replyHead += 1
          x.resolve(index, .success(.packet(payload)))
          return
        }
      }
    }
    if let stop {
      statistics.unsolicitedStopReplies += 1
      record(stop, solicited: false)
    } else {
      statistics.strayPackets += 1
    }
  }

  static func isConsoleOutput(_ payload: [UInt8]) -> Bool {
    guard payload.first == UInt8(ascii: "O"), payload.count != 2 || payload[1] != UInt8(ascii: "K") else {
      return false
    }
    return payload.count % 2 == 1 && payload.dropFirst().allSatisfy { Hex.value(of: $0) != nil }
  }

  func record(_ stop: StopReply, solicited: Bool) {
    stopCount += 1
    lastStopReply = stop
    stopReplies.append(stop)
    if stopReplies.count > 256 { stopReplies.removeFirst(stopReplies.count - 256) }
    runState = stop.isExit ? .exited : .stopped
    // QEMU selects the stopping CPU for `g` on a debug stop; forget our selection.
    selectedThread = nil
  }

  /// Reads whatever arrives for a short quiet period and records or drops it, so that
  /// late replies of a timed-out request cannot be taken for the next request's replies.
  func resynchronize() throws(GDBRemoteError) {
    needsResync = false
    var x = Exchange()
    let hardDeadline = ContinuousClock.now + .seconds(1)
    while ContinuousClock.now < hardDeadline {
      let quiet = min(hardDeadline, .now + .milliseconds(50))
      let outcome = try socket.read(until: quiet)
      switch outcome {
      case .data(let bytes):
        process(bytes, &x)
        try flushOutbox(deadline: hardDeadline, &x)
      case .endOfFile:
        throw peerClosed()
      case .timedOut:
        return
      }
    }
  }

  /// Reads input until a new stop reply has been recorded or the deadline passes.
  /// Returns whether one arrived.
  func awaitStop(after count: Int, deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> Bool {
    var x = Exchange()
    let resyncWanted = needsResync
    do throws(GDBRemoteError) {
      try pump(&x, deadline: deadline) { _ in self.stopCount > count }
    } catch  where error.code == .timeout {
      // Waiting for a stop that does not come is not a lost reply.
      needsResync = resyncWanted
      return false
    }
    return true
  }
}
