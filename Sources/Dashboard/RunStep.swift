/// Why the run loop ended.
public enum RunOutcome: Sendable, Equatable {
  /// The user quit (q, F10, Ctrl-C).
  case quit
  /// SIGINT, SIGTERM or SIGHUP arrived (the signal number).
  case signal(Int32)
  /// `maxFrames` frames were presented.
  case frameLimit
}

/// What the run loop remembers between two events: the dashboard's state and when to draw.
public struct RunLoopState: Sendable, Equatable {
  /// The dashboard's state.
  public var dashboard: DashboardState
  /// The generation of the data drawn last (nil before the first frame).
  public var lastGeneration: UInt64?
  /// A frame is due at the next tick.
  public var needsRedraw = true
  /// The next frame repaints every cell (Ctrl-L).
  public var fullRedraw = false
  /// Frames presented.
  public var frames = 0
  /// Stop after this many frames (`--frames N`); nil runs until quit.
  public var maxFrames: Int?

  /// The state before the first event.
  public init(_ dashboard: DashboardState, maxFrames: Int? = nil) {
    self.dashboard = dashboard
    self.maxFrames = maxFrames
  }
}

/// Something the run loop saw.
public enum RunLoopEvent: Sendable {
  /// A tick: the newest data, and the terminal's size now.
  case tick(DashboardData, width: Int, height: Int)
  /// A key (a resize arrives as `.resize`).
  case key(Key)
  /// SIGINT, SIGTERM or SIGHUP asked the program to stop.
  case signal(Int32)
  /// The backend carried out a `.perform` effect; its status-line message, if any.
  case performed(String?)
}

/// What the backend does for the run loop, in order.
public enum RunLoopEffect: Sendable, Equatable {
  /// Show this grid (every cell when `full`).
  case present(Grid, full: Bool)
  /// Use this colour scheme from now on.
  case applyColors(ColorSchemeName)
  /// Carry out the reaction's effects on the target (pause, resume, step, continue, new
  /// interval, fetch a detail), then report with `.performed`.
  case perform(Reaction)
  /// Stop the loop.
  case finish(RunOutcome)
}

/// The reactions the backend carries out (on the target, or by telling the sampler); the rest are
/// the dashboard's own.
public let targetReactions: Reaction = [
  .pauseVM, .resumeVM, .stepSelected, .stepLineSelected, .continueVM, .changeInterval, .openDetail,
  .toggleTrace, .freezeTimeline,
]

/// The run loop's decisions: one event in, the new state and the effects out. Pure: the backend
/// only reads keys and the clock, and carries out the effects.
///
/// A tick draws when a key asked for it, the data's generation changed, or an effect finished;
/// the frame's layout is fed back (`.sync`) and, when syncing moved the selection, the frame is
/// drawn again from the synced state.
public func runStep(_ state: RunLoopState, _ event: RunLoopEvent, symbolize: Symbolizer)
  -> (RunLoopState, [RunLoopEffect])
{
  var s = state
  switch event {
  case .signal(let number):
    return (s, [.finish(.signal(number))])

  case .performed(let message):
    if let message { s.dashboard = reduce(s.dashboard, .status(message)).0 }
    return (s, [])

  case .tick(let data, let width, let height):
    if data.generation != s.lastGeneration {
      s.lastGeneration = data.generation
      s.needsRedraw = true
    }
    if let effect = data.effect, effect.sequence > s.dashboard.lastEffect {
      s.dashboard = reduce(s.dashboard, .effectFinished(effect)).0
      s.needsRedraw = true
    }
    guard s.needsRedraw else { return (s, []) }
    var frame = renderFrame(
      state: s.dashboard, data: data, symbolize: symbolize, width: width, height: height)
    var synced = reduce(s.dashboard, .sync(frame.layout)).0
    // Syncing can move the selection (first frame, a row vanished): draw what the state now says.
    var comparable = synced
    comparable.layout = s.dashboard.layout
    if comparable != s.dashboard {
      frame = renderFrame(state: synced, data: data, symbolize: symbolize, width: width, height: height)
      synced = reduce(synced, .sync(frame.layout)).0
    }
    s.dashboard = synced
    var effects: [RunLoopEffect] = [.present(frame.grid, full: s.fullRedraw)]
    s.frames += 1
    s.needsRedraw = false
    s.fullRedraw = false
    if let limit = s.maxFrames, s.frames >= limit { effects.append(.finish(.frameLimit)) }
    return (s, effects)

  case .key(let key):
    guard let action = action(for: key, in: s.dashboard) else { return (s, []) }
    let (next, reaction) = reduce(s.dashboard, action)
    s.dashboard = next
    if reaction.contains(.quit) { return (s, [.finish(.quit)]) }
    var effects: [RunLoopEffect] = []
    if reaction.contains(.changeColors) { effects.append(.applyColors(s.dashboard.colorScheme)) }
    if reaction.contains(.fullRedraw) { s.fullRedraw = true }
    if !reaction.isDisjoint(with: targetReactions) { effects.append(.perform(reaction)) }
    if reaction.contains(.redraw) { s.needsRedraw = true }
    return (s, effects)
  }
}
