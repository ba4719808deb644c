/// A request from the UI to the sampler, which owns the target and carries it out between
/// snapshots.
public enum SamplerCommand: Sendable, Equatable {
  /// Stop the VM.
  case pause
  /// Let the VM run (after a pause or steps).
  case resume
  /// Step this lcpu by one instruction.
  case step(lcpu: Int)
  /// Step this lcpu until its source line changes.
  case stepLine(lcpu: Int)
  /// Take snapshots at this interval.
  case interval(milliseconds: Int)
  /// Fetch detail data (registers, disassembly, backtrace) for this lcpu; nil: none.
  case detail(lcpu: Int?)
  /// Add backtraces to every snapshot (a lock or thread view is open, or the timers pane shows).
  case whereViews(open: Bool)
  /// Switch the guest's tracing on or off.
  case trace(on: Bool)
  /// Freeze the timeline's view (true) or follow the guest again (false).
  case freezeTimeline(Bool)
  /// Publish the profile pane's data (only while it is shown).
  case profileShown(Bool)
  /// Stop sampling: the UI has ended.
  case quit
}

/// The sampler commands that carry out `reaction`'s effects on the target, in the order the
/// sampler performs them, with their arguments read from `state` (the state after the key).
///
/// The reducer has already put the effect's progress on the status line; the sampler reports
/// the result (`DashboardData.effect`). A step with no lcpu to step (no row selected, no detail
/// open) sends nothing.
public func samplerCommands(for reaction: Reaction, in state: DashboardState) -> [SamplerCommand] {
  var commands: [SamplerCommand] = []
  if reaction.contains(.pauseVM) { commands.append(.pause) }
  if reaction.contains(.resumeVM) || reaction.contains(.continueVM) { commands.append(.resume) }
  if reaction.contains(.stepSelected), let lcpu = state.targetLCPU { commands.append(.step(lcpu: lcpu)) }
  if reaction.contains(.stepLineSelected), let lcpu = state.detail { commands.append(.stepLine(lcpu: lcpu)) }
  if reaction.contains(.changeInterval) {
    commands.append(.interval(milliseconds: state.intervalMilliseconds))
  }
  if reaction.contains(.openDetail) {
    commands.append(.detail(lcpu: state.detail))
    commands.append(.whereViews(open: state.whereView != nil || state.pane == .timers))
    commands.append(.profileShown(state.pane == .profile))
  }
  if reaction.contains(.toggleTrace) { commands.append(.trace(on: state.timeline.traceOn)) }
  if reaction.contains(.freezeTimeline) { commands.append(.freezeTimeline(state.timeline.frozen)) }
  return commands
}
