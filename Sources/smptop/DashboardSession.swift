import Dashboard
import Disassembly
import ELFSymbols
import Foundation
import Inspector
import NIOConcurrencyHelpers
import Synchronization
import Terminal

/// Commands posted by the UI thread and taken by the sampler.
final class Mailbox: Sendable {
  private let queue = NIOLockedValueBox<[SamplerCommand]>([])

  func post(_ command: SamplerCommand) { queue.withLockedValue { $0.append(command) } }
  func take() -> [SamplerCommand] {
    queue.withLockedValue { q in
      defer { q = [] }; return q
    }
  }
}

/// The interactive dashboard over a target: ncurses on its own thread, sampling in this task.
///
/// The UI never blocks on QEMU: it renders whatever the sampler last published (`Latest`) and
/// turns keys into `SamplerCommand`s; the sampler performs them between snapshots.
enum DashboardSession {
  /// Runs until the user quits. Returns false when there is no usable terminal (the caller
  /// then falls back to batch text output).
  static func run(
    target: Target, info: TargetInfo, interval: Double, color: ColorChoice, frames: Int?
  ) async throws -> Bool {
    let latest = Latest(DashboardData(snapshot: nil, target: info))
    let mailbox = Mailbox()
    let symbolize = target.makeSymbolizer()
    let uiResult = NIOLockedValueBox<Result<RunResult, TerminalError>?>(nil)
    let uiDone = Atomic<Bool>(false)
    var state = DashboardState()
    state.intervalMilliseconds = Int(interval * 1000)
    state.staticLockFindings = ISRCheckCommand.lockSummary(elf: target.elf, path: target.options.kernel)
    let initial = state

    let thread = Thread {
      let hooks = DashboardHooks(
        data: { _ in latest.read().value },
        perform: { reaction, state in perform(reaction, state, mailbox) },
        symbolize: symbolize)
      let result = Result { () throws(TerminalError) -> RunResult in
        try runDashboard(initial, hooks: hooks, color: color, options: RunOptions(maxFrames: frames))
      }
      uiResult.withLockedValue { $0 = result }
      mailbox.post(.quit)
      uiDone.store(true, ordering: .releasing)
    }
    thread.stackSize = 8 << 20
    thread.start()

    await sample(target: target, info: info, interval: interval, latest: latest, mailbox: mailbox)
    while !uiDone.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(10)) }
    switch uiResult.withLockedValue({ $0 }) {
    case .failure(let error) where error.code == .notATerminal || error.code == .unknownTerminal:
      return false
    case .failure(let error):
      throw CLIError("the terminal failed: \(error)", code: .usage)
    default:
      return true
    }
  }

  /// Posts the sampler commands that carry out a reaction (`samplerCommands(for:in:)`).
  private static func perform(_ reaction: Reaction, _ state: DashboardState, _ mailbox: Mailbox) -> String? {
    for command in samplerCommands(for: reaction, in: state) { mailbox.post(command) }
    return nil
  }

  /// The sampler: snapshots at the chosen interval, runs commands, publishes to the UI.
  private static func sample(
    target: Target, info: TargetInfo, interval: Double, latest: Latest<DashboardData>, mailbox: Mailbox
  ) async {
    var intervalMs = Int(interval * 1000)
    var previous: Snapshot?
    var detailLCPU: Int?
    var whereViewsOpen = false
    var effect: EffectResult?
    var lastGood: Snapshot?
    var virtio: [VirtioDeviceState]?
    var virtioAt = ContinuousClock.now - .seconds(60)
    let disassembler = try? Disassembler()
    var trace = TimelineFeed(target: target)
    trace.names = target.traceNames(snapshot: nil)
    var profile = ProfileFeed(target: target)
    // The profile pane's data is published only while it is shown (the rings are drained and
    // counted regardless): publishing redraws the dashboard.
    var profileShown = false
    /// Publishes the outcome of a pause, resume or step for the status line.
    func finished(_ message: String) {
      effect = EffectResult(sequence: (effect?.sequence ?? 0) + 1, message: message)
    }
    loop: while true {
      for command in mailbox.take() {
        switch command {
        case .quit: break loop
        case .pause:
          do {
            try await target.pause()
            finished("VM paused")
          } catch { finished("pause failed: " + error.message) }
        case .resume:
          do {
            try await target.resume()
            finished("VM running")
          } catch { finished("resume failed: " + error.message) }
        case .interval(let ms): intervalMs = max(50, ms)
        case .trace(let on): finished(trace.setTracing(on))
        case .freezeTimeline(let frozen): trace.frozen = frozen
        case .profileShown(let shown): profileShown = shown
        case .detail(let lcpu): detailLCPU = lcpu
        case .whereViews(let open): whereViewsOpen = open
        case .step(let lcpu):
          do {
            let vcpu = vcpuIndex(of: lcpu, in: lastGood)
            let steps = try await target.step(vcpu: vcpu, count: 1, restore: false)
            if let s = steps.last {
              let place = s.symbol ?? "0x" + String(s.rip, radix: 16)
              finished(
                s.woke ? "lcpu \(lcpu) woke by an interrupt at \(place)" : "stepped lcpu \(lcpu) to \(place)")
            } else {
              finished("stepped lcpu \(lcpu)")
            }
          } catch { finished("lcpu \(lcpu): " + error.message) }
        case .stepLine(let lcpu):
          do {
            let vcpu = vcpuIndex(of: lcpu, in: lastGood)
            let r = try await target.stepLine(vcpu: vcpu, restore: false)
            let place =
              r.to.location?.shortLocation ?? r.to.symbol ?? "0x" + String(r.to.rip, radix: 16)
            finished(
              r.lineChanged
                ? "stepped lcpu \(lcpu) to \(place) (\(r.instructions) instructions)"
                : "lcpu \(lcpu) still on its line after \(r.instructions) instructions, at \(place)")
          } catch { finished("lcpu \(lcpu): " + error.message) }
        }
      }
      do throws(TargetError) {
        // While the user holds the VM paused the gdbstub costs no extra pause: take stopped
        // snapshots then, which carry every register for the detail view.
        let paused = !target.wantsRunning
        // Shared RAM outlives QEMU: without this check a dead VM's frozen memory would read as
        // a running guest with zero rates.
        if let qmp = target.qmp, !qmp.isConnected {
          throw TargetError(.connect, "QEMU went away (QMP connection closed); showing the last picture read")
        }
        // The run state is QMP's (query-status after an event, or when 5 s old): asked here so its
        // time shows as QMP's; the snapshot then finds it cached.
        let qmpStart = monotonicNanoseconds()
        if target.qmp != nil { _ = await target.runState() }
        var qmp = target.qmp == nil ? 0 : monotonicNanoseconds() - qmpStart
        var snap = try await target.snapshot(preferStopped: paused && target.options.gdb != nil)
        // QEMU's device-side view of the virtqueues costs a few QMP round trips: every 2 s,
        // and at every snapshot while paused (then the two sides are compared exactly).
        if !snap.virtqueues.isEmpty || !target.speaksABI, target.qmp != nil {
          if paused || ContinuousClock.now - virtioAt > .seconds(2) {
            let virtioStart = monotonicNanoseconds()
            virtio = await target.virtioState()
            qmp += monotonicNanoseconds() - virtioStart
            virtioAt = .now
          }
          snap.virtio = snap.virtio ?? virtio
        }
        let rates = paused ? nil : previous.flatMap { SnapshotRates(from: $0, to: snap) }
        let detailStart = monotonicNanoseconds()
        // The detail view shows where every thread of its lcpu is; lock and thread views too.
        if detailLCPU != nil || whereViewsOpen { await target.addBacktraces(to: &snap) }
        var detail: DetailData?
        if let detailLCPU {
          detail = await makeDetail(
            lcpu: detailLCPU, snapshot: snap, target: target, disassembler: disassembler)
        }
        let cost = SampleCost(
          qmpNanoseconds: qmp,
          detailNanoseconds: detailLCPU == nil ? 0 : monotonicNanoseconds() - detailStart)
        latest.update { data in
          let (timeline, profile) = (data.timeline, data.profile)
          data = DashboardData(
            snapshot: snap, rates: rates, detail: detail, target: info, effect: effect, cost: cost,
            generation: data.generation + 1)
          data.timeline = timeline
          data.profile = profile
        }
        previous = paused ? nil : snap
        lastGood = snap
        trace.names.add(snap)
        trace.lcpus = snap.lcpus.count
      } catch {
        // QEMU went away or the guest cannot be read: keep the last picture, say why.
        latest.update { data in
          var snap = lastGood
          snap?.problems = [error.message]
          snap?.runState = .unreachable
          let (timeline, profile) = (data.timeline, data.profile)
          data = DashboardData(
            snapshot: snap, rates: nil, detail: data.detail, target: info, effect: effect,
            generation: data.generation + 1)
          data.timeline = timeline
          data.profile = profile
        }
      }
      let deadline = ContinuousClock.now + .milliseconds(intervalMs)
      while ContinuousClock.now < deadline {
        // The trace rings are drained at 10 Hz whatever the snapshot interval.
        if trace.due, let timeline = trace.drain() {
          latest.update { data in
            data.timeline = timeline
            data.generation += 1
          }
        }
        // So are the profile rings.
        if profile.due, let data = profile.drain(), profileShown {
          latest.update { d in
            d.profile = data
            d.generation += 1
          }
        }
        try? await Task.sleep(for: .milliseconds(10))
        if mailbox.peekNonEmpty { break }
      }
    }
  }

  /// The vCPU that runs lcpu `lcpu` (QEMU numbers vCPUs by APIC id on pc and q35).
  static func vcpuIndex(of lcpu: Int, in snapshot: Snapshot?) -> Int {
    guard let record = snapshot?.lcpus.first(where: { Int($0.index) == lcpu }) else { return lcpu }
    return Int(record.apicID)
  }

  /// Registers, backtrace (with source lines) and disassembly around RIP for one lcpu.
  ///
  /// The backtrace is the vCPU's when the snapshot has registers (walked within the stack it
  /// runs on: its thread's, or the lcpu's own), else the running thread's as of its latest
  /// timer tick; a panic shows the guest's own frames.
  static func makeDetail(lcpu: Int, snapshot: Snapshot, target: Target, disassembler: Disassembler?) async
    -> DetailData
  {
    var snap = snapshot
    if snap.threads.allSatisfy({ $0.backtrace == nil }) { await target.addBacktraces(to: &snap) }
    let record = snap.lcpus.first { Int($0.index) == lcpu }
    let vcpu = snap.vcpus?.first { $0.index == vcpuIndex(of: lcpu, in: snap) }
    var note: String?
    var rip = vcpu?.value(of: "rip")
    var backtrace: Backtrace?
    if let panic = record?.panic {
      rip = panic.rip
      backtrace = panic.frames
    } else if let vcpu, vcpu.backtrace != nil {
      backtrace = vcpu.backtrace
    } else if let record, record.currentThread != 0,
      let thread = snap.threads.first(where: { $0.id == record.currentThread }), let bt = thread.backtrace
    {
      backtrace = bt
      rip = rip ?? bt.frames.first?.address
      note =
        "backtrace of thread \(thread.id) as of its latest timer tick; exact registers need a stopped VM (space)"
    } else if rip == nil {
      rip = record?.lastTickRIP
      note = "RIP of the latest timer tick; registers and the backtrace need a stopped VM (press space)"
    }
    var lines: [DisassemblyLine] = []
    if let rip, let disassembler {
      // Decode from the function's start when it is near, so instructions line up exactly.
      let start = target.symbols?.lookup(rip).map { rip - $0.offset }.flatMap { rip - $0 <= 512 ? $0 : nil }
      let base = start ?? (rip >= 64 ? rip - 64 : 0)
      if let bytes = await target.readMemory(base, count: Int(rip - base) + 96) {
        lines = disassembler.window(around: rip, bytes: bytes, base: base).map {
          DisassemblyLine(address: $0.address, bytes: $0.bytes, mnemonic: $0.mnemonic, operands: $0.operands)
        }
        markSourceLines(&lines, target: target)
      }
    }
    let frames = backtrace.map { Array($0.frames.dropFirst().map(\.address)) }
    var detail = DetailData(lcpu: lcpu, frames: frames, disassembly: lines, rip: rip, note: note)
    detail.backtrace = backtrace
    return detail
  }

  /// Marks each instruction that starts a new source line with that line.
  static func markSourceLines(_ lines: inout [DisassemblyLine], target: Target) {
    guard let locator = try? target.sourceLocator() else { return }
    _ = locator.frames(at: lines.map(\.address))
    var previous: String?
    for i in lines.indices {
      let text = SymbolDisplay.location(of: lines[i].address, locator: locator).flatMap { loc in
        loc.shortFileLine.map { "\($0) in \(loc.function)" + (loc.inlined ? " [inlined]" : "") }
      }
      if let text, text != previous { lines[i].source = text }
      previous = text ?? previous
    }
  }
}

extension Mailbox {
  /// True when a command is waiting (the sampler wakes early for it).
  var peekNonEmpty: Bool { queue.withLockedValue { !$0.isEmpty } }
}

/// The timeline pane's feed: drains the trace rings live at 10 Hz (or, replaying, takes the
/// recorded trace up to the frame shown), keeps the last seconds as spans, and holds a frozen
/// copy while the user has frozen the view.
struct TimelineFeed {
  /// The target whose shared RAM holds the rings.
  let target: Target
  /// The drain (nil without shared RAM or ABI: then the pane says so).
  var drainer: TraceDrain?
  /// The recording replayed, whose frames carry the trace.
  let recording: RecordedMemory?
  /// The last recorded frame whose trace was fed.
  var fed = -1
  /// The guest's TSC rate from the recorded trace.
  var recordedTSCPerMs: UInt64 = 0
  /// Records lost, as the recording says.
  var recordedLost: UInt64 = 0
  /// Everything recent.
  var model = TraceModel()
  /// The copy shown while frozen.
  var frozenModel: TraceModel?
  /// Lock, thread and site names from the latest snapshot.
  var names = TraceNames()
  /// lcpus present.
  var lcpus = 0
  /// Latest problems.
  var problems: [String] = []
  /// The classes the guest traced at the last drain.
  var enabled = TraceClasses()
  /// When the last drain ran.
  var last = ContinuousClock.now - .seconds(1)

  /// Creates a feed; it drains only when the target has shared RAM and the ABI, or replays a recording.
  init(target: Target) {
    self.target = target
    recording = target.recording
    if recording == nil, let root = target.rootAddress, target.sharedMemory != nil {
      drainer = TraceDrain(rootAddress: root)
    }
  }

  /// Whether the view is frozen (new events are still drained, not shown).
  var frozen = false {
    didSet { frozenModel = frozen ? model : nil }
  }

  /// Whether 100 ms passed since the last drain (live), or a new frame was shown (replay).
  var due: Bool {
    if let recording { return recording.played > fed }
    return drainer != nil && ContinuousClock.now - last >= .milliseconds(100)
  }

  /// Drains once; the pane's data.
  mutating func drain() -> TimelineData? {
    if let recording { return replay(recording) }
    guard var d = drainer, let memory = target.sharedMemory else { return nil }
    last = .now
    let batch = d.drain(memory)
    drainer = d
    enabled = batch.enabled
    problems = batch.problems.map(\.description)
    return show(batch.events, tscPerMs: d.tscPerMs, lost: d.totalLost)
  }

  /// Feeds the recorded trace of the frames shown since the last call.
  mutating func replay(_ recording: RecordedMemory) -> TimelineData? {
    let upTo = min(recording.played, recording.frames.count - 1)
    guard upTo > fed else { return nil }
    var events: [TraceEvent] = []
    var any = false
    for frame in recording.frames[(fed + 1)...upTo] {
      guard let t = frame.trace else { continue }
      any = true
      events += t.events
      recordedLost &+= t.totalLost
      enabled = t.enabled
      if t.tscPerMs != 0 { recordedTSCPerMs = t.tscPerMs }
    }
    fed = upTo
    if !any && !recording.hasTrace {
      problems = [
        recording.formatVersion == 1
          ? "this recording has no trace (format 1, made before recordings carried it)"
          : "this recording has no trace (recorded with --no-trace)"
      ]
    }
    return show(events, tscPerMs: recordedTSCPerMs, lost: recordedLost)
  }

  /// Adds events to the model and returns what the pane shows.
  mutating func show(_ events: [TraceEvent], tscPerMs: UInt64, lost: UInt64) -> TimelineData {
    model.append(events)
    // Keep the widest window (10 s), fewer seconds when that is too many spans to redraw.
    let perMs = max(tscPerMs, 1)
    model.forget(before: model.lastTSC &- min(model.lastTSC, 10_000 * perMs))
    if model.spans.count + model.instants.count > 200_000 {
      model.forget(before: model.lastTSC &- min(model.lastTSC, 1_000 * perMs))
    }
    return TimelineData(
      model: frozenModel ?? model, tscPerMs: tscPerMs, names: names, enabled: enabled, lost: lost,
      problems: problems, lcpus: lcpus)
  }

  /// Writes the guest's trace control word: every class on, or off. The status line's text.
  mutating func setTracing(_ on: Bool) -> String {
    if recording != nil { return "a recording's trace cannot be switched" }
    guard let file = target.options.memoryFile, let root = target.rootAddress else {
      return "tracing needs the shared RAM file (--memory-file) and the inspection ABI"
    }
    do {
      try TraceControl.write(
        on ? .all : [], memoryFile: file, machine: target.options.machine, rootAddress: root)
      return on ? "tracing switched on (all classes)" : "tracing switched off"
    } catch {
      return "cannot switch tracing: \(error.description)"
    }
  }
}

/// The profile pane's feed: drains the guest's profile rings live at 10 Hz into running counts
/// over the pane's windows (the longest, 30 s, is kept) and names every new address once, by
/// function and by source line, before it counts it.
struct ProfileFeed {
  /// The target whose shared RAM holds the rings.
  let target: Target
  /// The drain (nil without shared RAM or ABI: then the pane says so).
  var drainer: ProfileDrain?
  /// The counts the pane reads.
  let live = ProfileLive()
  /// Address to function name.
  let functionNamer: @Sendable (UInt64) -> String
  /// Address to source line; nil without a source locator.
  let lineNamer: (@Sendable (UInt64) -> String)?
  /// When the last drain ran.
  var last = ContinuousClock.now - .seconds(1)

  /// Creates a feed; it drains only when the target has shared RAM and the ABI.
  init(target: Target) {
    self.target = target
    if target.recording == nil, let root = target.rootAddress, target.sharedMemory != nil {
      drainer = ProfileDrain(rootAddress: root)
    }
    functionNamer = target.makeFunctionNamer()
    lineNamer = (try? target.sourceLocator()) == nil ? nil : target.makeLineNamer()
  }

  /// Whether 100 ms passed since the last drain.
  var due: Bool { drainer != nil && ContinuousClock.now - last >= .milliseconds(100) }

  /// Drains once, names what is new and counts it; the pane's data.
  mutating func drain() -> ProfileData? {
    guard var d = drainer, let memory = target.sharedMemory else { return nil }
    last = .now
    let batch = d.drain(memory)
    drainer = d
    // One symbolizer round trip for all new addresses (outside the lock the pane reads under),
    // then each name from the namers' caches.
    let fresh = live.withCounts { $0.unnamed(in: batch.samples) }
    if lineNamer != nil, !fresh.isEmpty, let locator = try? target.sourceLocator() {
      _ = locator.frames(at: fresh)
    }
    let (function, line) = (functionNamer, lineNamer ?? functionNamer)
    live.withCounts {
      $0.add(samples: batch.samples, lost: batch.lost, tscPerMs: d.tscPerMs) { address, lines in
        lines ? line(address) : function(address)
      }
    }
    return ProfileData(
      live: live, hz: batch.hz, present: batch.present, problems: batch.problems.map(\.description))
  }
}
