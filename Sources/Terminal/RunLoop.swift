import Dashboard

/// What the run loop needs from the program: data in, effects out. Called on the UI thread only.
public struct DashboardHooks {
  /// The latest data for a frame. Called every tick, so it must not block: read a `Latest` box.
  /// Bump `DashboardData.generation` whenever anything in it changes; the loop redraws when it does.
  public var data: (DashboardState) -> DashboardData
  /// Performs a reaction's effects (pause, resume, step, continue, new interval, fetch detail, trace
  /// on/off, freeze the timeline: `targetReactions`) and returns a message for the status line. Hand
  /// slow work (QMP, gdbstub) to the sampler thread.
  public var perform: (Reaction, DashboardState) -> String?
  /// Address to "symbol+0x1a"; called for every visible RIP, so cache.
  public var symbolize: Symbolizer

  /// Creates the hooks.
  public init(
    data: @escaping (DashboardState) -> DashboardData,
    perform: @escaping (Reaction, DashboardState) -> String? = { _, _ in nil },
    symbolize: @escaping Symbolizer = { _ in nil }
  ) {
    self.data = data
    self.perform = perform
    self.symbolize = symbolize
  }
}

/// How the loop runs.
public struct RunOptions: Sendable, Equatable {
  /// Stop after presenting this many frames (`--frames N`, for scripted tests); nil runs until quit.
  public var maxFrames: Int?
  /// How long to wait for a key before looking for new data, in milliseconds.
  public var tickMilliseconds: Int

  /// Creates options.
  public init(maxFrames: Int? = nil, tickMilliseconds: Int = 50) {
    self.maxFrames = maxFrames
    self.tickMilliseconds = tickMilliseconds
  }
}

/// The end state of a run: why it ended, the last state, and how many frames were shown.
public struct RunResult: Sendable, Equatable {
  /// Why it ended.
  public var outcome: RunOutcome
  /// The dashboard state at the end.
  public var state: DashboardState
  /// Frames presented.
  public var frames: Int
}

extension Screen {
  /// Runs the dashboard until the user quits: reads keys and the terminal's size, and carries out
  /// what `runStep` (the loop's decisions, in Dashboard) asks for: present a grid, apply colours,
  /// perform a reaction through `hooks.perform`, finish.
  ///
  /// Single-threaded (htop's shape): each turn is one tick (newest data, maybe a frame), then up to
  /// one tick's wait for a key.
  public func run(_ initial: DashboardState, hooks: DashboardHooks, options: RunOptions = RunOptions())
    -> RunResult
  {
    var loop = RunLoopState(initial, maxFrames: options.maxFrames)
    apply(loop.dashboard.colorScheme)
    /// Feeds one event to the step function and carries out its effects; the outcome once it finishes.
    func handle(_ event: RunLoopEvent) -> RunOutcome? {
      let (next, effects) = runStep(loop, event, symbolize: hooks.symbolize)
      loop = next
      for effect in effects {
        switch effect {
        case .present(let grid, let full): present(grid, full: full)
        case .applyColors(let scheme): apply(scheme)
        case .perform(let reaction):
          if let outcome = handle(.performed(hooks.perform(reaction, loop.dashboard))) { return outcome }
        case .finish(let outcome): return outcome
        }
      }
      return nil
    }
    while true {
      var outcome: RunOutcome?
      if let sig = stopRequestedBySignal {
        // Ends here, not through `handle`: a release build returns nil from `handle` for the
        // `.signal` outcome (debug builds do not), which would keep the loop running after
        // SIGTERM, SIGINT or SIGHUP, at full speed once the terminal is gone.
        outcome = .signal(sig)
      } else {
        let (width, height) = size
        outcome = handle(.tick(hooks.data(loop.dashboard), width: width, height: height))
        if outcome == nil, let key = readKey(timeoutMilliseconds: options.tickMilliseconds) {
          outcome = handle(.key(key))
        }
      }
      if let outcome { return RunResult(outcome: outcome, state: loop.dashboard, frames: loop.frames) }
    }
  }
}

/// Opens the terminal, runs the dashboard, and restores the terminal on every path out.
///
/// - Throws: `TerminalError` when there is no usable terminal (the caller can fall back to text output).
public func runDashboard(
  _ initial: DashboardState = DashboardState(), hooks: DashboardHooks, color: ColorChoice = .auto,
  asciiOnly: Bool = false, options: RunOptions = RunOptions()
) throws(TerminalError) -> RunResult {
  let screen = try Screen(color: color, asciiOnly: asciiOnly)
  defer { screen.close() }
  var state = initial
  state.charset = screen.charset
  if !screen.colors { state.colorScheme = .monochrome }
  return screen.run(state, hooks: hooks, options: options)
}
