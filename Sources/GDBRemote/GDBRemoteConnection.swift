import Transport

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
///   received is acknowledged (by the `++` that starts the next burst, see `ackOwed`), a
///   `-` for the last request of a burst makes us resend it (a bounded number of times), and
///   a reply with a bad checksum is answered with `-` when it is the only one due.
///   Nothing is ever resent because an answer is slow: TCP loses nothing, and a request
///   such as `c`, `vCont;s` or `qRcmd` must not run twice.
/// * Every result belongs to its request. The stub answers in order, so replies are matched
///   to requests by position while the stream is *aligned*. Whatever makes the position
///   uncertain (a timeout, a damaged or oversized packet where a reply was due, a stop reply
///   that arrives while requests are still unacknowledged, which on QEMU 7.2 means the VM
///   was resumed behind our back and may have swallowed one of them) fails the requests
///   still unanswered with a typed error, and the next burst starts with a probe whose
///   reply is unique (see ``ResyncProbe``): everything before that reply is dropped.
/// * Unsolicited stop replies (`T02` when the VM stops behind our back) are recorded in
///   ``stopReplies`` and never taken for a command's reply; `O` console output is
///   collected (``takeConsoleOutput()``); `F` (File-I/O) requests are counted and ignored.
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
    /// Unused: requests are never resent because their `+` is slow (TCP loses nothing, and
    /// resending `c`, `vCont;s` or `qRcmd` would run it twice). Kept for source compatibility.
    public var acknowledgementTimeout: Duration = .milliseconds(500)
    /// How often the last packet of a burst is resent after a `-`, and how often a corrupt
    /// lone reply is requested again.
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
    /// Our packets resent after a `-` (never after a missing `+`).
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
    /// `F` File-I/O requests from the stub (ignored: this client serves no host files).
    public var syscallRequests = 0
    /// Exchanges whose remaining requests failed because the stream lost its alignment.
    public var misalignments = 0
    /// Probes sent to find the start of a clean stream again, and how many were found.
    public var probesSent = 0
    /// Probes whose unique reply arrived (the stream was aligned again).
    public var probesMatched = 0

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

  let socket: any ByteTransport
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
  /// Console output that arrived inside the current monitor command's answer.
  var commandOutput: [UInt8] = []
  var stopCount = 0
  /// Whether bytes of earlier requests may still arrive (or their position is unknown): the
  /// next burst then starts with a probe and drops everything before its reply.
  var needsResync = false
  /// Probes sent since the stream was last known to be aligned; each one asks for a reply
  /// of a different length, so an older probe's late reply never matches a newer one.
  var unmatchedProbes = 0
  /// The raw `target.xml` the stub served during the handshake (the probe's expected reply
  /// is cut from it).
  var targetXML: [UInt8]?
  /// Whether `Qqemu.PhyMemMode` is on, if known (the stub keeps it across connections and
  /// no stop changes it). Cleared before any burst that changes it, set after its `OK`.
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
    do { self.socket = SocketTransport(try StreamSocket(adopting: descriptor)) } catch {
      throw GDBRemoteError(error)
    }
    self.decoder = PacketDecoder(maximumPacketSize: options.maximumPacketSize)
  }

  /// Runs the protocol over any transport (a scripted peer with a virtual clock in tests).
  init(transport: any ByteTransport, options: Options = Options()) {
    self.options = options
    self.socket = transport
    self.decoder = PacketDecoder(maximumPacketSize: options.maximumPacketSize)
  }

  /// Connects to a gdbstub and performs the handshake (features and target description).
  ///
  /// Connecting to QEMU stops the VM; if it was running, the stub's `T02` is recorded.
  public static func connect(to address: GDBAddress, options: Options = Options()) throws(GDBRemoteError)
    -> GDBRemoteConnection
  {
    let socket: StreamSocket
    do { socket = try StreamSocket.connect(to: address, deadline: .now + options.connectTimeout) } catch {
      throw GDBRemoteError(error)
    }
    let connection = GDBRemoteConnection(transport: SocketTransport(socket), options: options)
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
  }

  // MARK: Exchanging packets

  /// What a request is answered with.
  enum Expectation {
    /// An ordinary reply packet.
    case reply
    /// A stop reply (the answer to a resume or step).
    case stopReply
    /// Only the stub's `+` (as for `c`).
    case acknowledgement
  }

  /// How a request was answered.
  enum Answer {
    case packet([UInt8])
    case stop(StopReply)
    case acknowledged
  }

  /// One request of an exchange and what has arrived for it.
  struct Slot {
    var text: String
    var framed: [UInt8]
    var expectation: Expectation
    var retransmissions = 0
    var naks = 0
    var result: Result<Answer, GDBRemoteError>?
  }

  /// A request sent at the head of a burst when the stream's position is unknown, whose
  /// reply no earlier request can have produced: everything that arrives before it is
  /// dropped, everything after it answers the burst.
  ///
  /// The probe reads a slice of `target.xml` that starts at a `<` (so no hex, `OK`, `Exx` or
  /// thread-list reply can equal it) and is shorter than any chunk the handshake reads; each
  /// probe sent since the stream was last aligned asks for a different length, so a late
  /// reply of an older probe never matches. Without a target description the probe is `qC`
  /// (its `QC` reply is unique to it), which can be used only once per loss of alignment.
  struct ResyncProbe {
    var text: String
    var framed: [UInt8]
    /// The exact reply, or its first bytes when `prefixOnly`.
    var expected: [UInt8]
    var prefixOnly: Bool
    var matched = false

    /// Whether `payload` is this probe's reply.
    func matches(_ payload: [UInt8]) -> Bool {
      prefixOnly ? payload.starts(with: expected) : payload == expected
    }
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
    /// The probe at the head of this burst, if the stream had to be found again.
    var probe: ResyncProbe?
    /// Whether the stub has begun answering this burst (a `+` of it, or the probe's reply).
    var answering = false
    /// Set once the position of the replies is uncertain: nothing more is attributed.
    var misaligned = false
    /// A `-` of ours may bring a second copy of a packet after the exchange ends.
    var mayLeaveStrays = false

    var nextAck: Int? { ackHead < awaitingAck.count ? awaitingAck[ackHead] : nil }
    var nextReply: Int? { replyHead < awaitingReply.count ? awaitingReply[replyHead] : nil }
    var pendingAcks: Int { awaitingAck.count - ackHead }
    var pendingReplies: Int { awaitingReply.count - replyHead }
    /// Whether input is still being dropped until the probe's reply.
    var draining: Bool { probe.map { !$0.matched } ?? false }

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
  /// reply that stayed corrupt, a reply lost to a misaligned stream) is that request's
  /// result. A result is only ever the answer of its own request.
  ///
  /// With `between`, the last `holdBack` requests are written only after `between` ran, which
  /// happens right after the others were written (their answers are read afterwards).
  func exchange(
    _ requests: [(String, Expectation)], timeout: Duration? = nil, holdBack: Int = 0,
    between: (() -> Void)? = nil
  ) throws(GDBRemoteError) -> [Result<Answer, GDBRemoteError>] {
    try requireUsable()
    if requests.isEmpty { return [] }
    let deadline = socket.now + (timeout ?? options.replyTimeout)
    var x = Exchange()
    // Two leading `+`: harmless when the VM is stopped (they acknowledge the stub's last
    // packet). If the VM was resumed behind our back (QMP `cont`), QEMU 7.2 consumes one
    // byte to clear an unacknowledged packet and one to stop the VM (sending `T02`), so
    // the requests after them are not lost.
    var burst: [UInt8] = [UInt8(ascii: "+"), UInt8(ascii: "+")]
    for (text, expectation) in requests {
      let payload = Array(text.utf8)
      guard payload.count < 4095 else {
        throw GDBRemoteError(
          .invalidArgument, "request of \(payload.count) characters: QEMU drops requests of 4095 or more",
          sent: Printable.excerpt(payload))
      }
      x.slots.append(Slot(text: text, framed: PacketEncoder.frame(payload), expectation: expectation))
      x.awaitingAck.append(x.slots.count - 1)
    }
    if needsResync {
      let probe = try makeProbe()
      x.probe = probe
      burst += probe.framed
      unmatchedProbes += 1
      statistics.probesSent += 1
      statistics.packetsSent += 1
    }
    let split = x.slots.count - min(max(holdBack, 0), x.slots.count)
    for slot in x.slots[..<split] { burst += slot.framed }
    let rest = x.slots[split...].flatMap(\.framed)
    ackOwed = false
    x.unresolved = x.slots.count
    statistics.packetsSent += x.slots.count
    do throws(GDBRemoteError) {
      try write(burst, deadline: deadline, &x)
      between?()
      if !rest.isEmpty { try write(rest, deadline: deadline, &x) }
      try pump(&x, deadline: deadline) { $0.unresolved == 0 }
    } catch {
      settle(x)
      throw error
    }
    settle(x)
    return x.slots.map { slot in slot.result ?? .failure(GDBRemoteError(.timeout, "no answer")) }
  }

  /// Records whether bytes of this exchange may still arrive: then the next burst probes.
  func settle(_ x: Exchange) {
    if x.draining { return }  // still set from before
    if x.misaligned || x.pendingAcks > 0 || x.pendingReplies > 0 || x.mayLeaveStrays || x.unresolved > 0 {
      needsResync = true
    }
  }

  /// The probe for the next burst (see ``ResyncProbe``).
  func makeProbe() throws(GDBRemoteError) -> ResyncProbe {
    let length = 8 + unmatchedProbes
    if let xml = targetXML, let start = xml.firstIndex(of: UInt8(ascii: "<")), length < 64,
      start + length < xml.count
    {
      let text = "qXfer:features:read:target.xml:\(Hex.string(UInt64(start))),\(Hex.string(UInt64(length)))"
      return ResyncProbe(
        text: text, framed: PacketEncoder.frame(text),
        expected: [UInt8(ascii: "m")] + xml[start..<(start + length)], prefixOnly: false)
    }
    guard targetXML == nil, unmatchedProbes == 0 else {
      close()
      throw GDBRemoteError(
        .connectionClosed,
        "the stream could not be realigned: \(unmatchedProbes) probes got no recognisable reply; closed")
    }
    return ResyncProbe(
      text: "qC", framed: PacketEncoder.frame("qC"), expected: Array("QC".utf8), prefixOnly: true)
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
      let outcome: TransportReadOutcome
      do throws(GDBRemoteError) {
        outcome = try socket.read(until: deadline)
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
        if socket.now >= deadline {
          let message =
            x.draining
            ? "no answer from the stub in time (the stream is being realigned and its probe got no reply)"
            : "no answer from the stub in time"
          throw fail(GDBRemoteError(.timeout, message), x)
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
      // Before the probe's reply, `+` belongs to earlier requests or to the probe.
      if x.draining || x.misaligned { return }
      if let waiting = x.nextReply, x.slots[waiting].expectation == .reply {
        // A stub finishes one request before it acknowledges the next, so this request's
        // reply will never come (QEMU 7.2 answers qThreadExtraInfo for an unknown thread
        // with `+` alone).
        x.replyHead += 1
        x.resolve(
          waiting,
          .failure(
            GDBRemoteError(
              .protocolViolation, "the stub acknowledged the request but sent no reply",
              sent: Printable.excerpt(x.slots[waiting].text))))
      }
      guard let index = x.nextAck else {
        statistics.garbageBytes += 1
        return
      }
      x.ackHead += 1
      x.answering = true
      switch x.slots[index].expectation {
      case .acknowledgement:
        // A resume: the target runs from here on, until a stop reply says otherwise.
        runState = .running
        x.resolve(index, .success(.acknowledged))
      case .stopReply:
        runState = .running
        x.awaitingReply.append(index)
      case .reply:
        x.awaitingReply.append(index)
      }

    case .nak:
      if x.draining || x.misaligned { return }
      guard let index = x.nextAck else { return }
      x.ackHead += 1
      x.answering = true
      let text = x.slots[index].text
      if index == x.slots.count - 1, x.slots[index].retransmissions < options.maximumRetransmissions {
        // The last request of the burst: resending it keeps the order of execution.
        x.slots[index].retransmissions += 1
        statistics.retransmissions += 1
        statistics.packetsSent += 1
        x.awaitingAck.append(index)
        outbox += x.slots[index].framed
        return
      }
      var rejected = GDBRemoteError(
        .checksumMismatch, "the stub rejected the packet \(x.slots[index].retransmissions + 1) times",
        sent: Printable.excerpt(text))
      if index != x.slots.count - 1 {
        // Resent now, it would run after the requests behind it, which may depend on it
        // (`g` after `Hg`): fail it and them instead; their answers are still consumed.
        rejected.message = "the stub rejected the packet in the middle of a burst"
        rejected.isTransient = true
        for later in (index + 1)..<x.slots.count where x.slots[later].result == nil {
          var skipped = GDBRemoteError(
            .replyLost, "an earlier request of the same burst was rejected by the stub",
            sent: Printable.excerpt(x.slots[later].text))
          skipped.isTransient = true
          x.resolve(later, .failure(skipped))
        }
      }
      x.resolve(index, .failure(rejected))

    case .packet(let packet):
      statistics.packetsReceived += 1
      ackOwed = true
      dispatch(packet.payload, &x)

    case .checksumMismatch(let received, let computed, let wire):
      statistics.corruptPackets += 1
      ackOwed = true
      damaged(
        GDBRemoteError(
          .checksumMismatch,
          "reply checksum \(Hex.byte(received)) but the content sums to \(Hex.byte(computed))",
          received: Printable.excerpt(wire)), canAskAgain: true, &x)

    case .malformed(let kind):
      statistics.corruptPackets += 1
      ackOwed = true
      damaged(
        GDBRemoteError(.checksumMismatch, "garbled reply (\(kind))"),
        canAskAgain: kind != .restartedByNewPacket, &x)

    case .oversized(let length):
      statistics.oversizedPackets += 1
      ackOwed = true
      damaged(
        GDBRemoteError(
          .packetTooLarge,
          "a packet of more than \(options.maximumPacketSize) bytes (\(length) so far) arrived where the reply was due; discarded"
        ), canAskAgain: false, &x)

    case .garbage(let bytes):
      statistics.garbageBytes += bytes.count

    case .interrupt:
      statistics.garbageBytes += 1
    }
  }

  /// Handles a packet that arrived damaged (bad checksum, broken encoding, cut short by a
  /// new `$`, or too large to keep): its content, and so whose reply it was, is unknown.
  func damaged(_ error: GDBRemoteError, canAskAgain: Bool, _ x: inout Exchange) {
    if x.draining || x.misaligned { return }
    // Replies follow their `+`: with none due, the damaged packet was unsolicited. It may
    // have been a stop reply, though, which (as any stop in the middle of a burst) may have
    // cost a request and reset the `Hg` selection of those not yet run.
    guard let index = x.nextReply else {
      if x.pendingAcks > 0, x.answering { misalign(&x, error) }
      return
    }
    let text = x.slots[index].text
    if x.pendingReplies == 1, x.pendingAcks == 0 {
      if canAskAgain, x.slots[index].naks < options.maximumRetransmissions {
        // Nothing else is due from the stub, so its last packet is this reply or one sent
        // after it; no `+` of ours has cleared it (they are deferred): `-` makes it send it
        // again. A copy that arrives after the reply is dropped by the next probe.
        x.slots[index].naks += 1
        statistics.naksSent += 1
        x.mayLeaveStrays = true
        outbox.append(UInt8(ascii: "-"))
        return
      }
      // The only request due fails on its own; should the damaged packet have been
      // something else, its real reply is dropped by the next probe.
      x.replyHead += 1
      x.mayLeaveStrays = true
      var failure = error.sending(text)
      failure.isTransient = true
      x.resolve(index, .failure(failure))
      return
    }
    misalign(&x, error)
  }

  /// Gives up matching replies to requests for the rest of this exchange: every request
  /// without a result fails (transient: it may be repeated after the next probe).
  func misalign(_ x: inout Exchange, _ error: GDBRemoteError) {
    x.misaligned = true
    statistics.misalignments += 1
    let head = x.nextReply
    for i in x.slots.indices where x.slots[i].result == nil {
      var failure =
        i == head
        ? error.sending(x.slots[i].text)
        : GDBRemoteError(
          .replyLost, "the replies lost their order (\(error.message))",
          sent: Printable.excerpt(x.slots[i].text))
      failure.isTransient = true
      x.resolve(i, .failure(failure))
    }
  }

  /// Routes a verified packet: console output, File-I/O, stop reply, the probe's reply, or
  /// the next request's reply.
  func dispatch(_ payload: [UInt8], _ x: inout Exchange) {
    if GDBRemoteConnection.isConsoleOutput(payload) {
      statistics.consolePackets += 1
      if let text = Hex.decode(payload.dropFirst()) {
        // Output between a monitor command's `+` and its reply is that command's (QEMU 7.2
        // sends it there); any other output, late output of an earlier command included,
        // is general console output.
        if !x.draining, !x.misaligned, let index = x.nextReply, x.slots[index].text.hasPrefix("qRcmd,") {
          if commandOutput.count + text.count <= 1 << 20 { commandOutput += text }
        } else if console.count + text.count <= 1 << 20 {
          console += text
        }
      }
      return
    }
    if GDBRemoteConnection.isSyscallRequest(payload) {
      statistics.syscallRequests += 1
      return
    }
    let stop = GDBRemoteConnection.stopReply(payload)
    if x.draining {
      if let probe = x.probe, probe.matches(payload) {
        x.probe?.matched = true
        x.answering = true
        needsResync = false
        unmatchedProbes = 0
        statistics.probesMatched += 1
      } else if let stop {
        statistics.unsolicitedStopReplies += 1
        record(stop, solicited: false)
      } else {
        statistics.strayPackets += 1
      }
      return
    }
    if !x.misaligned, let index = x.nextReply {
      switch x.slots[index].expectation {
      case .stopReply:
        x.replyHead += 1
        if let stop {
          record(stop, solicited: true)
          x.resolve(index, .success(.stop(stop)))
        } else {
          // A resume answered with anything but a stop reply (an error) did not resume.
          if runState == .running { runState = .stopped }
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
    guard let stop else {
      statistics.strayPackets += 1
      return
    }
    statistics.unsolicitedStopReplies += 1
    record(stop, solicited: false)
    if !x.misaligned, x.pendingAcks > 0, x.answering {
      // The VM ran during the burst (say, a QMP `cont` from someone else) and stopped again.
      // QEMU 7.2 stops a running VM on the next byte it receives and drops that byte, so a
      // request not yet acknowledged may be lost; and every stop resets the `Hg` selection.
      // Which reply answers which request is no longer known.
      misalign(
        &x,
        GDBRemoteError(
          .replyLost, "a stop reply (\(stop.raw)) arrived in the middle of the burst",
          received: Printable.excerpt(stop.raw)))
    }
  }

  static func isConsoleOutput(_ payload: [UInt8]) -> Bool {
    guard payload.first == UInt8(ascii: "O"), payload.count != 2 || payload[1] != UInt8(ascii: "K") else {
      return false
    }
    return payload.count % 2 == 1 && payload.dropFirst().allSatisfy { Hex.value(of: $0) != nil }
  }

  /// Whether `payload` is a File-I/O request (`Fwrite,1,2,3`): `F`, a lowercase call name
  /// that is not all hex digits, then the end or a comma.
  static func isSyscallRequest(_ payload: [UInt8]) -> Bool {
    guard payload.first == UInt8(ascii: "F") else { return false }
    let name = payload.dropFirst().prefix { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
    guard !name.isEmpty, !name.allSatisfy({ Hex.value(of: $0) != nil }) else { return false }
    let rest = payload.dropFirst(1 + name.count)
    return rest.isEmpty || rest.first == UInt8(ascii: ",")
  }

  /// The stop reply in `payload`, if it is one (`T`, `S`, `W`, `X` and two hex digits).
  static func stopReply(_ payload: [UInt8]) -> StopReply? {
    guard let first = payload.first,
      first == UInt8(ascii: "T") || first == UInt8(ascii: "S") || first == UInt8(ascii: "W")
        || first == UInt8(ascii: "X")
    else { return nil }
    return StopReply(parsing: payload)
  }

  func record(_ stop: StopReply, solicited: Bool) {
    stopCount += 1
    lastStopReply = stop
    stopReplies.append(stop)
    if stopReplies.count > 256 { stopReplies.removeFirst(stopReplies.count - 256) }
    runState = stop.isExit ? .exited : .stopped
  }

  /// Reads input until a new stop reply has been recorded or the deadline passes.
  /// Returns whether one arrived.
  func awaitStop(after count: Int, deadline: ContinuousClock.Instant) throws(GDBRemoteError) -> Bool {
    var x = Exchange()
    do throws(GDBRemoteError) {
      try pump(&x, deadline: deadline) { _ in self.stopCount > count }
    } catch  where error.code == .timeout {
      return false
    }
    return true
  }
}
