extension GDBRemoteConnection {
  // MARK: Raw requests

  /// Sends one request and returns the reply payload as received (not interpreted).
  ///
  /// Stop replies and console output that arrive meanwhile are recorded, not returned.
  public func request(_ payload: String, timeout: Duration? = nil) throws(GDBRemoteError) -> [UInt8] {
    try requireStopped("send \(payload.prefix(20))")
    switch try exchangeOne(payload, .reply, timeout: timeout) {
    case .packet(let reply): return reply
    case .stop(let stop): return Array(stop.raw.utf8)
    case .acknowledged: return []
    }
  }

  /// Sends all `payloads` in one write, then reads the replies in order.
  ///
  /// - Returns: One result per request, in order. A request whose reply stayed corrupt
  ///   fails on its own; a closed connection or a timeout throws.
  public func pipeline(_ payloads: [String], timeout: Duration? = nil) throws(GDBRemoteError)
    -> [Result<[UInt8], GDBRemoteError>]
  {
    try requireStopped("send requests")
    let answers = try exchange(payloads.map { ($0, .reply) }, timeout: timeout)
    return answers.map { answer in
      answer.map { a in
        switch a {
        case .packet(let p): return p
        case .stop(let s): return Array(s.raw.utf8)
        case .acknowledged: return []
        }
      }
    }
  }

  /// Turns an `Exx` or empty reply into an error, for requests whose reply has content.
  static func checkContent(_ reply: [UInt8], for request: String, address: UInt64? = nil)
    throws(GDBRemoteError)
  {
    if reply.isEmpty {
      throw GDBRemoteError(
        .unsupported, "the stub does not support this request", sent: Printable.excerpt(request))
    }
    if let number = errorNumber(reply) {
      throw GDBRemoteError(
        address == nil ? .errorReply : .memoryFault,
        address == nil ? "the stub answered E\(Hex.byte(number))" : "the stub could not access memory",
        sent: Printable.excerpt(request), received: Printable.excerpt(reply), address: address,
        stubErrorNumber: number)
    }
  }

  /// Requires an `OK` reply.
  static func checkOK(_ reply: [UInt8], for request: String) throws(GDBRemoteError) {
    guard reply == Array("OK".utf8) else {
      try checkContent(reply, for: request)
      throw GDBRemoteError(
        .protocolViolation, "expected OK", sent: Printable.excerpt(request),
        received: Printable.excerpt(reply))
    }
  }

  /// The number of an `Exx` reply (also `E.text`, as error 0), or nil.
  static func errorNumber(_ reply: [UInt8]) -> UInt8? {
    guard reply.first == UInt8(ascii: "E") else { return nil }
    if reply.count == 3, let n = Hex.decode(reply[1...]) { return n.first }
    if reply.count >= 2, reply[1] == UInt8(ascii: ".") { return 0 }
    return nil
  }

  func answerPayload(_ answer: Answer) -> [UInt8] {
    switch answer {
    case .packet(let p): return p
    case .stop(let s): return Array(s.raw.utf8)
    case .acknowledged: return []
    }
  }

  // MARK: Handshake

  /// Negotiates features (`qSupported`, with multiprocess thread ids) and fetches the
  /// target description. Called by ``connect(to:options:)``.
  public func handshake() throws(GDBRemoteError) {
    try requireUsable()
    let query = "qSupported:multiprocess+;vContSupported+"
    let reply = answerPayload(try exchangeOne(query))
    try GDBRemoteConnection.checkContent(reply, for: query)
    var features: [String: String] = [:]
    for item in String(decoding: reply, as: UTF8.self).split(separator: ";") {
      if let eq = item.firstIndex(of: "=") {
        features[String(item[..<eq])] = String(item[item.index(after: eq)...])
      } else if let last = item.last, last == "+" || last == "-" || last == "?" {
        features[String(item.dropLast())] = String(last)
      }
    }
    supportedFeatures = features
    usesMultiprocess = features["multiprocess"] == "+"
    physicalMode = nil
    if features["qXfer:features:read"] == "+" {
      targetDescription = try fetchTargetDescription()
    }
  }

  /// The largest `qXfer` chunk to ask for, from the stub's `PacketSize`.
  var transferChunkSize: Int {
    let packetSize = supportedFeatures["PacketSize"].flatMap { Hex.number($0) }.map { Int($0) } ?? 0x1000
    return max(64, min(packetSize, options.maximumPacketSize) - 5)
  }

  /// Reads a whole `qXfer:features:read` annex (a target description file).
  public func readFeatureFile(_ annex: String) throws(GDBRemoteError) -> [UInt8] {
    try requireStopped("read \(annex)")
    guard !annex.contains(":"), !annex.contains("#"), !annex.contains("$") else {
      throw GDBRemoteError(.invalidArgument, "bad annex name \(annex)")
    }
    var data: [UInt8] = []
    let chunk = transferChunkSize
    for _ in 0..<4096 {
      let query =
        "qXfer:features:read:\(annex):\(Hex.string(UInt64(data.count))),\(Hex.string(UInt64(chunk)))"
      let reply = answerPayload(try exchangeOne(query))
      try GDBRemoteConnection.checkContent(reply, for: query)
      guard let kind = reply.first, kind == UInt8(ascii: "m") || kind == UInt8(ascii: "l") else {
        throw GDBRemoteError(
          .protocolViolation, "a qXfer reply must start with m or l", sent: Printable.excerpt(query),
          received: Printable.excerpt(reply))
      }
      data += reply.dropFirst()
      if kind == UInt8(ascii: "l") { return data }
      guard reply.count > 1 else {
        throw GDBRemoteError(
          .protocolViolation, "qXfer reply without data and without end", sent: Printable.excerpt(query))
      }
      guard data.count <= 4 << 20 else {
        throw GDBRemoteError(.packetTooLarge, "\(annex) is larger than 4 MiB", sent: Printable.excerpt(query))
      }
    }
    throw GDBRemoteError(.protocolViolation, "\(annex) did not end after 4096 chunks")
  }

  /// Fetches and parses `target.xml` and the files it includes.
  public func fetchTargetDescription() throws(GDBRemoteError) -> TargetDescription {
    let main = try readFeatureFile("target.xml")
    targetXML = main
    return try TargetDescription.parse(xml: main, name: "target.xml") { href throws(GDBRemoteError) in
      try self.readFeatureFile(href)
    }
  }

  // MARK: Threads

  /// Lists the target's threads (`qfThreadInfo`/`qsThreadInfo`): one per vCPU in QEMU.
  public func threads() throws(GDBRemoteError) -> [ThreadID] {
    try requireStopped("list threads")
    var result: [ThreadID] = []
    var query = "qfThreadInfo"
    for _ in 0..<65536 {
      let reply = answerPayload(try exchangeOne(query))
      if let n = GDBRemoteConnection.errorNumber(reply) {
        throw GDBRemoteError(
          .errorReply, "thread list failed", sent: Printable.excerpt(query),
          received: Printable.excerpt(reply), stubErrorNumber: n)
      }
      guard let kind = reply.first else {
        throw GDBRemoteError(.unsupported, "the stub does not list threads", sent: Printable.excerpt(query))
      }
      if kind == UInt8(ascii: "l") { return result }
      guard kind == UInt8(ascii: "m") else {
        throw GDBRemoteError(
          .protocolViolation, "bad thread list reply", sent: Printable.excerpt(query),
          received: Printable.excerpt(reply))
      }
      for item in reply.dropFirst().split(separator: UInt8(ascii: ",")) {
        guard let id = ThreadID(parsing: String(decoding: item, as: UTF8.self)) else {
          throw GDBRemoteError(
            .protocolViolation, "bad thread id", sent: Printable.excerpt(query),
            received: Printable.excerpt(reply))
        }
        result.append(id)
      }
      query = "qsThreadInfo"
    }
    throw GDBRemoteError(.protocolViolation, "the thread list did not end")
  }

  /// The protocol spelling of `thread` for this connection (with or without `pP.`).
  func spelling(_ thread: ThreadID) -> String {
    var t = thread
    if usesMultiprocess {
      if t.pid == nil && t.tid > 0 { t.pid = 1 }
    } else {
      t.pid = nil
    }
    return t.protocolText
  }

  /// The `qThreadExtraInfo` text of each of `threads`, in one pipelined round.
  public func threadInfo(_ threads: [ThreadID]) throws(GDBRemoteError) -> [ThreadInfo] {
    try requireStopped("query threads")
    let queries = threads.map { "qThreadExtraInfo,\(spelling($0))" }
    let answers = try exchange(queries.map { ($0, .reply) })
    var infos: [ThreadInfo] = []
    for (i, answer) in answers.enumerated() {
      let reply = answerPayload(try answer.get())
      try GDBRemoteConnection.checkContent(reply, for: queries[i])
      guard let text = Hex.decode(reply) else {
        throw GDBRemoteError(
          .protocolViolation, "thread info is not hex", sent: queries[i], received: Printable.excerpt(reply))
      }
      infos.append(ThreadInfo(thread: threads[i], text: String(decoding: text, as: UTF8.self)))
    }
    return infos
  }

  /// The `qThreadExtraInfo` text of `thread` (`CPU#1 [halted ]`).
  public func threadInfo(_ thread: ThreadID) throws(GDBRemoteError) -> ThreadInfo {
    let infos = try threadInfo([thread])
    guard let first = infos.first else { throw GDBRemoteError(.protocolViolation, "no thread info") }
    return first
  }

  /// Selects `thread` for register and memory access (`Hg`).
  ///
  /// The selection lasts only until the VM next stops (QEMU 7.2 then selects the stopping
  /// vCPU, and a QMP `stop`/`cont` by anyone counts): the reads of this module send their own
  /// `Hg` in the same write as the requests that depend on it.
  public func selectThread(_ thread: ThreadID) throws(GDBRemoteError) {
    try requireStopped("select a thread")
    let query = "Hg\(spelling(thread))"
    let reply = answerPayload(try exchangeOne(query))
    try GDBRemoteConnection.checkOK(reply, for: query)
  }

  // MARK: Registers

  func requireTarget() throws(GDBRemoteError) -> TargetDescription {
    guard let targetDescription else {
      throw GDBRemoteError(
        .invalidTargetDescription, "the stub offered no target description (qXfer:features:read)")
    }
    return targetDescription
  }

  /// Reads all registers of `thread` (`Hg` + `g`).
  public func readRegisters(of thread: ThreadID, timeout: Duration? = nil) throws(GDBRemoteError)
    -> RegisterSet
  {
    let result = try readBatch(registersOf: [thread], memory: [], timeout: timeout)
    guard let set = result.registers[thread] else {
      throw GDBRemoteError(.protocolViolation, "no registers for \(thread)")
    }
    return try set.get()
  }

  /// Reads one register of `thread` by name (`Hg` + `p n`).
  public func readRegister(_ name: String, of thread: ThreadID) throws(GDBRemoteError) -> RegisterValue {
    let target = try requireTarget()
    guard let register = target.register(named: name) else {
      throw GDBRemoteError(.unknownRegister, "the target description has no register \(name)")
    }
    return try readRegister(number: register.number, of: thread)
  }

  /// Reads one register of `thread` by number (`Hg` + `p n`).
  public func readRegister(number: Int, of thread: ThreadID) throws(GDBRemoteError) -> RegisterValue {
    let target = try requireTarget()
    guard let register = target.register(number: number) else {
      throw GDBRemoteError(.unknownRegister, "the target description has no register number \(number)")
    }
    try requireStopped("read a register")
    // `Hg` and `p` in one write: a stop between two writes would reset the selection.
    let select = "Hg\(spelling(thread))"
    let query = "p\(Hex.string(UInt64(number)))"
    let answers = try exchange([(select, .reply), (query, .reply)])
    try GDBRemoteConnection.checkOK(answerPayload(try answers[0].get()), for: select)
    let reply = answerPayload(try answers[1].get())
    try GDBRemoteConnection.checkContent(reply, for: query)
    if reply.allSatisfy({ $0 == UInt8(ascii: "x") }) {
      throw GDBRemoteError(
        .unsupported, "register \(register.name) is unavailable", sent: Printable.excerpt(query))
    }
    guard let bytes = Hex.decode(reply), bytes.count == register.byteSize else {
      throw GDBRemoteError(
        .protocolViolation, "register \(register.name) should be \(register.byteSize) bytes",
        sent: Printable.excerpt(query),
        received: Printable.excerpt(reply))
    }
    return RegisterValue(bytes: bytes)
  }

  // MARK: Memory

  /// Reads `count` bytes of guest memory at `address`.
  ///
  /// The range is split at 4 KiB pages and into requests of at most 2048 bytes (QEMU's
  /// limit), all sent in one write.
  ///
  /// - Parameters:
  ///   - physical: Guest-physical addressing (`Qqemu.PhyMemMode:1`); otherwise virtual
  ///     addresses are translated by the MMU of `thread` (or of the selected thread).
  /// - Throws: ``GDBRemoteError/Code-swift.enum/memoryFault`` with the address of the
  ///   first chunk the stub refused (QEMU answers `E14` for unmapped pages).
  public func readMemory(
    address: UInt64, count: Int, physical: Bool = false, thread: ThreadID? = nil, timeout: Duration? = nil
  ) throws(GDBRemoteError) -> [UInt8] {
    let range = MemoryRange(address: address, count: count, space: physical ? .physical : .virtual(thread))
    let result = try readBatch(registersOf: [], memory: [range], timeout: timeout)
    guard let first = result.memory.first else {
      throw GDBRemoteError(.protocolViolation, "no memory result")
    }
    return try first.get()
  }

  /// Writes `bytes` to guest memory at `address` (`M`, in chunks at page boundaries).
  public func writeMemory(
    address: UInt64, bytes: [UInt8], physical: Bool = false, thread: ThreadID? = nil, timeout: Duration? = nil
  ) throws(GDBRemoteError) {
    try requireStopped("write memory")
    guard !bytes.isEmpty else { return }
    guard bytes.count <= GDBRemoteConnection.maximumReadSize, address <= UInt64.max - UInt64(bytes.count - 1)
    else {
      throw GDBRemoteError(.invalidArgument, "the range wraps around the address space", address: address)
    }
    var queries: [(String, Expectation)] = []
    var prerequisites = 0
    let switchesMode = physicalMode != physical
    if switchesMode {
      queries.append(("Qqemu.PhyMemMode:\(physical ? 1 : 0)", .reply))
      prerequisites += 1
      // Unknown until its `OK` arrives.
      physicalMode = nil
    }
    if !physical, let thread {
      // Led by its own `Hg` in the same write: a stop since any earlier one resets it.
      queries.append(("Hg\(spelling(thread))", .reply))
      prerequisites += 1
    }
    var chunks: [(UInt64, ArraySlice<UInt8>)] = []
    for (start, length) in MemoryRange.chunks(address: address, count: bytes.count, limit: 1024) {
      let offset = Int(start - address)
      chunks.append((start, bytes[offset..<(offset + length)]))
    }
    for (start, data) in chunks {
      queries.append(("M\(Hex.string(start)),\(Hex.string(UInt64(data.count))):\(Hex.string(data))", .reply))
    }
    // Each window repeats the prerequisites, so every `M` is led by its own `Hg` in the
    // same write.
    let head = Array(queries[0..<prerequisites])
    var answers: [Result<Answer, GDBRemoteError>] = []
    var start = prerequisites
    let window = max(1, GDBRemoteConnection.pipelineWindow - prerequisites)
    while start < queries.count {
      let end = min(queries.count, start + window)
      let round = try exchange(head + Array(queries[start..<end]), timeout: timeout)
      for i in 0..<prerequisites {
        let reply = answerPayload(try round[i].get())
        try GDBRemoteConnection.checkOK(reply, for: queries[i].0)
        if switchesMode && i == 0 { physicalMode = physical }
      }
      answers += round[prerequisites...]
      start = end
    }
    for (i, (start, data)) in chunks.enumerated() {
      let q = queries[prerequisites + i].0
      var result = answers[i]
      if case .failure(let e) = result, e.isTransient {
        // Repeated with its prerequisites (the failure may have reset the selection).
        result = Result { () throws(GDBRemoteError) in
          let again = try exchange(head + [(q, .reply)], timeout: timeout)
          for j in 0..<prerequisites {
            try GDBRemoteConnection.checkOK(answerPayload(try again[j].get()), for: queries[j].0)
          }
          guard let last = again.last else { throw GDBRemoteError(.protocolViolation, "no result") }
          return try last.get()
        }
      }
      let reply = answerPayload(try result.get())
      if reply != Array("OK".utf8) {
        try GDBRemoteConnection.checkContent(reply, for: q, address: start)
        throw GDBRemoteError(
          .protocolViolation, "expected OK after writing \(data.count) bytes", sent: Printable.excerpt(q),
          received: Printable.excerpt(reply), address: start)
      }
    }
  }

  /// Switches `m`/`M` between guest-physical and virtual addressing
  /// (`Qqemu.PhyMemMode`), unless already in that mode.
  public func setPhysicalMemoryMode(_ on: Bool) throws(GDBRemoteError) {
    try requireStopped("switch the memory mode")
    if physicalMode == on { return }
    let query = "Qqemu.PhyMemMode:\(on ? 1 : 0)"
    physicalMode = nil
    try GDBRemoteConnection.checkOK(try request(query), for: query)
    physicalMode = on
  }

  // MARK: Monitor

  /// Runs a QEMU monitor (HMP) command through `qRcmd` and returns its output, which the
  /// stub sends as `O` packets before the final `OK`.
  public func monitorCommand(_ command: String, timeout: Duration? = nil) throws(GDBRemoteError) -> String {
    try requireStopped("run a monitor command")
    commandOutput.removeAll()
    let query = "qRcmd,\(Hex.string(command.utf8))"
    let reply = try request(query, timeout: timeout)
    let output = String(decoding: commandOutput, as: UTF8.self)
    commandOutput.removeAll()
    if reply == Array("OK".utf8) { return output }
    try GDBRemoteConnection.checkContent(reply, for: query)
    // Some stubs answer with the hex output itself instead of `O` packets.
    if let text = Hex.decode(reply) { return output + String(decoding: text, as: UTF8.self) }
    throw GDBRemoteError(
      .protocolViolation, "unexpected qRcmd reply", sent: Printable.excerpt(query),
      received: Printable.excerpt(reply))
  }

  // MARK: Run control

  /// Stops a running target with `\x03` and waits for its stop reply.
  ///
  /// - Returns: The stop reply, or nil if the target was already stopped (when believed
  ///   stopped nothing is sent: QEMU 7.2 does not answer `\x03` when the VM is stopped).
  /// - Throws: ``GDBRemoteError/Code-swift.enum/timeout`` if no stop reply arrives; the
  ///   run state is then ``RunState/unknown``.
  @discardableResult
  public func interrupt(timeout: Duration? = nil) throws(GDBRemoteError) -> StopReply? {
    try requireUsable()
    if runState == .stopped || runState == .exited { return nil }
    let before = stopCount
    let deadline = socket.now + (timeout ?? options.interruptTimeout)
    // A stop reply may already be waiting (a breakpoint, a QMP stop).
    if try awaitStop(after: before, deadline: socket.now) { return lastStopReply }
    var x = Exchange()
    // With a packet of the stub's unacknowledged, QEMU 7.2 would drop the `\x03`.
    try write(ackOwed ? [UInt8(ascii: "+"), 0x03] : [0x03], deadline: deadline, &x)
    ackOwed = false
    guard try awaitStop(after: before, deadline: deadline) else {
      // QEMU does not answer `\x03` when the VM is already stopped (say, by a QMP `stop`
      // that newer QEMU does not report). A harmless query tells: if it is answered,
      // the VM is stopped (a running one would have been stopped by its leading `+`).
      runState = .unknown
      let probe = Result { () throws(GDBRemoteError) in
        try exchangeOne("qAttached", timeout: .milliseconds(500))
      }
      if case .success = probe {
        if runState == .unknown { runState = .stopped }
        return stopCount > before ? lastStopReply : nil
      }
      throw GDBRemoteError(.timeout, "no stop reply after an interrupt", sent: "\"\\x03\"")
    }
    return lastStopReply
  }

  /// Waits for the running target to stop (breakpoint, watchpoint, QMP `stop`).
  ///
  /// - Returns: The stop reply, the last one if the target is already stopped, or nil if
  ///   none arrived in time.
  public func waitForStop(timeout: Duration) throws(GDBRemoteError) -> StopReply? {
    try requireUsable()
    if runState == .stopped || runState == .exited { return lastStopReply }
    let before = stopCount
    return try awaitStop(after: before, deadline: socket.now + timeout) ? lastStopReply : nil
  }

  /// Resumes all vCPUs (`c`). There is no reply until the target stops again.
  public func `continue`() throws(GDBRemoteError) {
    try requireUsable()
    if runState == .running { return }
    try requireStopped("continue")
    let before = stopCount
    // The stub's `+` switches the run state to running (see `handle(_:_:)`).
    _ = try exchangeOne("c", .acknowledgement)
    if let stale = staleStepThread {
      // QEMU 7.2 leaves the single-step flag of a vCPU whose step we interrupted; the
      // first resume stops at once with T05 for it. Absorb that stop and resume again.
      staleStepThread = nil
      if try awaitStop(after: before, deadline: socket.now + .milliseconds(300)),
        let stop = lastStopReply, stop.thread?.tid == stale.tid, stop.signal == 5
      {
        _ = try exchangeOne("c", .acknowledgement)
      }
    }
  }

  /// QEMU's single-step flags (`qqemu.sstep`): bit 0 ENABLE, bit 1 NOIRQ (interrupts are
  /// masked while stepping), bit 2 NOTIMER (timers do not run while stepping). QEMU 7.2's
  /// default is 0x7.
  public func singleStepFlags() throws(GDBRemoteError) -> UInt32 {
    let query = "qqemu.sstep"
    let reply = try request(query)
    try GDBRemoteConnection.checkContent(reply, for: query)
    var text = Substring(String(decoding: reply, as: UTF8.self))
    if text.hasPrefix("0x") { text = text.dropFirst(2) }
    guard let flags = UInt32(text, radix: 16) else {
      throw GDBRemoteError(
        .protocolViolation, "expected hexadecimal single-step flags", sent: query,
        received: Printable.excerpt(reply))
    }
    return flags
  }

  /// Sets QEMU's single-step flags (`Qqemu.sstep=`); they apply to every later step.
  public func setSingleStepFlags(_ flags: UInt32) throws(GDBRemoteError) {
    let query = "Qqemu.sstep=0x\(String(flags, radix: 16))"
    try GDBRemoteConnection.checkOK(try request(query), for: query)
  }

  /// How ``step(thread:timeout:mode:)`` treats interrupts and a halted vCPU.
  public enum StepMode: Sendable, Equatable {
    /// QEMU's default flags (interrupts and timers masked); a vCPU the stub reports halted is
    /// refused without stepping, since nothing could wake it.
    case masked
    /// As `masked`, but a halted vCPU steps with interrupts and timers on, so the step ends
    /// at the first instruction of the handler of the interrupt that wakes it.
    case wakeIfHalted
    /// Interrupts and timers on for this step whatever the vCPU's state (say, when the next
    /// instruction is `hlt`, which halts the vCPU until an interrupt).
    case interruptsOn
    /// QEMU's default flags even on a halted vCPU: the step times out unless something
    /// else wakes it; for experiments and tests of the recovery path.
    case forceMasked
  }

  /// Single-steps one vCPU while all others stay stopped (`vCont;s:pP.T`) and returns the
  /// stop reply.
  ///
  /// Never uses gdb's default `vCont;s:…;c`, which lets the other vCPUs run. When the step
  /// runs with interrupts on, the single-step flags are cleared of NOIRQ and NOTIMER for
  /// this step only and set back to what they were afterwards, also when the step fails.
  ///
  /// - Throws: ``GDBRemoteError/Code-swift.enum/threadHalted`` without stepping if the mode
  ///   is `masked` and `qThreadExtraInfo` says the vCPU is halted (its step could never
  ///   finish); ``GDBRemoteError/Code-swift.enum/stepTimedOut`` if the step did not finish
  ///   in time, after stopping the VM again with `\x03`.
  /// - Parameters:
  ///   - timeout: The bound on the step (``Options/stepTimeout`` when nil).
  ///   - mode: Interrupts during the step and what a halted vCPU gets.
  /// - Returns: The stop reply.
  @discardableResult
  public func step(thread: ThreadID, timeout: Duration? = nil, mode: StepMode = .masked)
    throws(GDBRemoteError)
    -> StopReply
  {
    try requireStopped("step")
    guard thread.tid > 0 else {
      throw GDBRemoteError(.invalidArgument, "step needs one specific thread, not \(thread)")
    }
    var interruptsOn = mode == .interruptsOn
    if mode != .interruptsOn {
      let info = try threadInfo(thread)
      if info.isHalted == true {
        switch mode {
        case .masked:
          throw GDBRemoteError(
            .threadHalted,
            "\(thread) is halted (\(info.text)); a step would never finish, so it was not started")
        case .wakeIfHalted: interruptsOn = true
        case .forceMasked, .interruptsOn: break
        }
      }
    }
    guard interruptsOn else { return try stepOnce(thread, timeout: timeout) }
    let saved = try singleStepFlags()
    // ENABLE alone: interrupts are delivered and timers run during the step.
    try setSingleStepFlags(saved & ~0x6)
    let result = Result { () throws(GDBRemoteError) in try stepOnce(thread, timeout: timeout) }
    if runState == .stopped {
      try setSingleStepFlags(saved)
    } else if case .success = result {
      throw GDBRemoteError(
        .protocolViolation, "the VM is not stopped after the step; single-step flags not restored")
    }
    return try result.get()
  }

  /// Sends one `vCont;s` for `thread` and waits for its stop reply within the bound,
  /// interrupting the VM when it does not come.
  private func stepOnce(_ thread: ThreadID, timeout: Duration?) throws(GDBRemoteError) -> StopReply {
    let query = "vCont;s:\(spelling(thread))"
    let limit = timeout ?? options.stepTimeout
    do throws(GDBRemoteError) {
      switch try exchangeOne(query, .stopReply, timeout: limit) {
      case .stop(let stop):
        return stop
      case .packet(let reply):
        try GDBRemoteConnection.checkContent(reply, for: query)
        throw GDBRemoteError(
          .protocolViolation, "expected a stop reply", sent: Printable.excerpt(query),
          received: Printable.excerpt(reply))
      case .acknowledged:
        throw GDBRemoteError(.protocolViolation, "expected a stop reply", sent: Printable.excerpt(query))
      }
    } catch  where error.code == .timeout {
      // The vCPU is running (alone) and its step is not finishing: stop it. Once the `+`
      // has arrived (the run state says running) only the stop reply is still owed, and a
      // stop reply is never taken for another request's reply: no probe is needed.
      if runState == .running { needsResync = false }
      if runState == .stopped { runState = .running }
      let stop: StopReply?
      do throws(GDBRemoteError) {
        stop = try interrupt()
      } catch {
        throw GDBRemoteError(
          .stepTimedOut,
          "the step of \(thread) did not finish within \(limit) and the interrupt got no answer; state unknown",
          sent: Printable.excerpt(query))
      }
      staleStepThread = thread
      throw GDBRemoteError(
        .stepTimedOut,
        "the step of \(thread) did not finish within \(limit); interrupted, the VM is stopped",
        sent: Printable.excerpt(query), received: stop.map { Printable.excerpt($0.raw) })
    }
  }

  /// Detaches (`D;1`): QEMU resumes the VM when no debugger is left. The connection is
  /// closed afterwards.
  public func detach() throws(GDBRemoteError) {
    try requireUsable()
    if runState == .running { try interrupt() }
    let query = usesMultiprocess ? "D;1" : "D"
    let reply = answerPayload(try exchangeOne(query))
    try GDBRemoteConnection.checkOK(reply, for: query)
    close()
  }
}
