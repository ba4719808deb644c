import Dashboard

/// What the run loop needs from the program: data in, effects out. Called on the UI thread only.
public struct DashboardHooks {
  /// The latest data for a frame. Called every tick, so it must not block: read a `Latest` box.
  /// Bump `DashboardData.generation` whenever anything in it changes; the loop redraws when it does.
  public var data: (DashboardState) -> DashboardData
  /// Performs a reaction's effects (pause, resume, step, continue, new interval, fetch detail) and returns
  /// a message for the status line. Hand slow work (QMP, gdbstub) to the sampler thread.
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

/// Why the loop ended.
public enum RunOutcome: Sendable, Equatable {
  /// The user quit (q, F10, Ctrl-C).
  case quit
  /// SIGINT, SIGTERM or SIGHUP arrived (the signal number).
  case signal(Int32)
  /// `maxFrames` frames were presented.
  case frameLimit
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
  /// Runs the dashboard until the user quits: read keys, reduce, ask for data, render, present.
  ///
  /// The loop is single-threaded (htop's shape): it waits for a key for up to one tick, then redraws if
  /// a key asked for it, the data's generation changed, or the terminal was resized. Effects are the
  /// caller's (`hooks.perform`); the reducer never does I/O.
  public func run(_ initial: DashboardState, hooks: DashboardHooks, options: RunOptions = RunOptions())
    -> RunResult
  {
    var state = initial
    apply(state.colorScheme)
    var lastGeneration: UInt64?
    var redraw = true
    var full = false
    var frames = 0
    while true {
      if let sig = stopRequestedBySignal {
        return RunResult(outcome: .signal(sig), state: state, frames: frames)
      }
      let data = hooks.data(state)
      if data.generation != lastGeneration {
        lastGeneration = data.generation
        redraw = true
      }
      if let effect = data.effect, effect.sequence > state.lastEffect {
        state = reduce(state, .effectFinished(effect)).0
        redraw = true
      }
      if redraw {
        let (width, height) = size
        var frame = renderFrame(
          state: state, data: data, symbolize: hooks.symbolize, width: width, height: height)
        var (synced, _) = reduce(state, .sync(frame.layout))
        // Syncing can move the selection (first frame, a row vanished): draw what the state now says.
        var comparable = synced
        comparable.layout = state.layout
        if comparable != state {
          frame = renderFrame(
            state: synced, data: data, symbolize: hooks.symbolize, width: width, height: height)
          synced = reduce(synced, .sync(frame.layout)).0
        }
        state = synced
        present(frame.grid, full: full)
        frames += 1
        redraw = false
        full = false
        if let limit = options.maxFrames, frames >= limit {
          return RunResult(outcome: .frameLimit, state: state, frames: frames)
        }
      }
      guard let key = readKey(timeoutMilliseconds: options.tickMilliseconds),
        let action = action(for: key, in: state)
      else { continue }
      let (next, reaction) = reduce(state, action)
      state = next
      if reaction.contains(.quit) { return RunResult(outcome: .quit, state: state, frames: frames) }
      if reaction.contains(.changeColors) { apply(state.colorScheme) }
      if reaction.contains(.fullRedraw) { full = true }
      let effects: Reaction = [.pauseVM, .resumeVM, .stepSelected, .continueVM, .changeInterval, .openDetail]
      if !reaction.isDisjoint(with: effects), let message = hooks.perform(reaction, state) {
        state = reduce(state, .status(message)).0
      }
      if reaction.contains(.redraw) { redraw = true }
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
