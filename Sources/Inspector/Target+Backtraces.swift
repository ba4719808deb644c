// Where: every thread's and stopped vCPU's backtrace (the frame walk) and the source location of
// every frame, lock acquire site and panic frame.
extension Target {
  /// Adds where everything is to a snapshot: every thread's backtrace (walked within its own
  /// stack, see ``BacktraceWalker/thread(_:vcpu:text:read:)``), each stopped vCPU's backtrace,
  /// and, with `locate`, the source location of every frame, lock acquire site and panic frame,
  /// and where each lock waiter waits (``WaiterSites``).
  ///
  /// Reads guest memory from shared RAM (no pause) or, without it, through the gdbstub while
  /// the VM is stopped (the walk then runs on the gdbstub client's queue).
  public func addBacktraces(to snap: inout Snapshot, locate: Bool = true) async {
    if sharedMemory == nil, let gdb, let gdbMemory {
      await gdb.perform { connection in
        let stopped = connection.runState == .stopped
        walkBacktraces(&snap) { address, count in stopped ? try? gdbMemory.read(address, count: count) : nil }
      }
    } else {
      walkBacktraces(&snap) { address, count in
        self.sharedMemory.flatMap { try? $0.read(address, count: count) }
      }
    }
    guard locate else { return }
    locateAll(in: &snap)
  }

  /// Every thread's and every stopped vCPU's backtrace, read through `read`.
  private func walkBacktraces(_ snap: inout Snapshot, read: BacktraceWalker.Reader) {
    let text = snap.guest.flatMap { $0.textStart < $0.textEnd ? $0.textStart..<$0.textEnd : nil }
    let isr = snap.guest?.isrReturn
    // Which vCPU runs which thread (a stopped snapshot has registers).
    var vcpuOfThread: [UInt64: VCPUState] = [:]
    for lcpu in snap.lcpus where lcpu.currentThread != 0 {
      if let vcpu = snap.vcpus?.first(where: { $0.index == Int(lcpu.apicID) }), !vcpu.registers.isEmpty {
        vcpuOfThread[lcpu.currentThread] = vcpu
      }
    }
    for i in snap.threads.indices {
      let t = snap.threads[i]
      if t.state == .running, let vcpu = vcpuOfThread[t.id] {
        snap.threads[i].backtrace = BacktraceWalker.thread(
          t, vcpu: vcpu, text: text, interruptReturn: isr, read: read)
      } else {
        snap.threads[i].backtrace = BacktraceWalker.liveThread(
          t, text: text, interruptReturn: isr, read: read)
      }
    }
    if var vcpus = snap.vcpus {
      for i in vcpus.indices {
        let v = vcpus[i]
        guard let rip = v.value(of: "rip"), let rbp = v.value(of: "rbp") else { continue }
        let rsp = v.value(of: "rsp")
        let lcpu = snap.lcpus.first { Int($0.apicID) == v.index }
        // The stack it runs on: the current thread's, else its lcpu's own (idle context).
        var stacks: [Range<UInt64>] = []
        if let lcpu, let t = snap.threads.first(where: { $0.id == lcpu.currentThread && $0.id != 0 }),
          t.stackBottom < t.stackTop
        {
          stacks.append(t.stackBottom..<t.stackTop)
        }
        if let lcpu, lcpu.stackBottom < lcpu.stackTop { stacks.append(lcpu.stackBottom..<lcpu.stackTop) }
        let stack = rsp.flatMap { r in stacks.first { $0.contains(r) } }
        if let stack {
          vcpus[i].backtrace = BacktraceWalker.walk(
            origin: .registers, pc: rip, rbp: rbp, rsp: rsp, stack: stack, text: text, interruptReturn: isr,
            read: read)
        } else {
          vcpus[i].backtrace = Backtrace(
            origin: .registers, frames: [BacktraceFrame(address: rip, isReturnAddress: false)],
            stop: "the stack pointer is in no known stack (thread or lcpu)")
        }
      }
      snap.vcpus = vcpus
    }
  }

  /// The source location of every frame, lock acquire site and panic frame, and where each
  /// lock waiter waits.
  private func locateAll(in snap: inout Snapshot) {
    // Locations: one batch for every address not cached yet.
    var addresses = Set<UInt64>()
    for t in snap.threads { for f in t.backtrace?.frames ?? [] { addresses.insert(f.lookupAddress) } }
    for v in snap.vcpus ?? [] { for f in v.backtrace?.frames ?? [] { addresses.insert(f.lookupAddress) } }
    for l in snap.locks where l.acquireSite != 0 { addresses.insert(l.acquireSite - 1) }
    let display = symbolDisplay()
    let missing = addresses.filter { !display.hasLocation($0) }
    if !missing.isEmpty, let locator = try? sourceLocator() { _ = locator.frames(at: Array(missing)) }
    func locateFrames(_ bt: inout Backtrace?) {
      guard var b = bt else { return }
      for j in b.frames.indices { b.frames[j].location = location(of: b.frames[j].lookupAddress) }
      bt = b
    }
    for i in snap.threads.indices { locateFrames(&snap.threads[i].backtrace) }
    if var vcpus = snap.vcpus {
      for i in vcpus.indices { locateFrames(&vcpus[i].backtrace) }
      snap.vcpus = vcpus
    }
    for i in snap.locks.indices where snap.locks[i].acquireSite != 0 {
      snap.locks[i].acquireSiteLocation = location(of: snap.locks[i].acquireSite - 1)
    }
    for i in snap.lcpus.indices {
      guard let panic = snap.lcpus[i].panic else { continue }
      var bt: Backtrace? = Backtrace(
        origin: .panic,
        frames: [BacktraceFrame(address: panic.rip, isReturnAddress: false)]
          + panic.backtrace.map { BacktraceFrame(address: $0, isReturnAddress: true) })
      locateFrames(&bt)
      snap.lcpus[i].panic?.frames = bt
    }
    WaiterSites.add(to: &snap)
  }
}
