import Dashboard
import Inspector
import Testing

/// The run loop's decisions (`runStep`), event by event, with no terminal.
@Suite struct RunStepTests {
  static func data(generation: UInt64, effect: EffectResult? = nil) throws -> DashboardData {
    let (snap, rates) = try Fixtures.fourLCPUs()
    return DashboardData(
      snapshot: snap, rates: rates, target: Fixtures.target, effect: effect, generation: generation)
  }

  static func step(_ s: RunLoopState, _ e: RunLoopEvent) -> (RunLoopState, [RunLoopEffect]) {
    runStep(s, e, symbolize: Fixtures.symbolize)
  }

  /// The grids presented among `effects`.
  static func presented(_ effects: [RunLoopEffect]) -> [Grid] {
    effects.compactMap { if case .present(let g, _) = $0 { return g } else { return nil } }
  }

  @Test func aTickDrawsOnlyWhenSomethingChanged() throws {
    var s = RunLoopState(DashboardState())
    var effects: [RunLoopEffect]
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    let first = try #require(Self.presented(effects).first, "the first tick draws")
    #expect(first.text.contains("RIP (last tick)"))
    #expect(s.frames == 1 && !s.needsRedraw)
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    #expect(effects.isEmpty, "same generation, no key: nothing to draw")
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 2), width: 100, height: 30))
    #expect(Self.presented(effects).count == 1, "new data draws")
    #expect(s.frames == 2)
  }

  @Test func keysDecideQuitPerformAndRedraw() throws {
    var s = RunLoopState(DashboardState())
    var effects: [RunLoopEffect]
    (s, _) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    // Space on the lcpus pane: pause the VM (the backend performs it), then draw.
    (s, effects) = Self.step(s, .key(.character(" ")))
    let reaction = try #require(
      effects.compactMap { if case .perform(let r) = $0 { return r } else { return nil } }.first)
    #expect(reaction.contains(.pauseVM))
    #expect(s.needsRedraw)
    (s, effects) = Self.step(s, .performed("pausing"))
    #expect(effects.isEmpty && s.dashboard.statusMessage == "pausing")
    // Tab changes the pane and tells the sampler what the pane needs (no pause, no step).
    (s, effects) = Self.step(s, .key(.tab))
    #expect(s.dashboard.pane == .locks && s.needsRedraw)
    #expect(effects == [.perform([.redraw, .openDetail])])
    // Down only moves the selection: nothing for the backend to do.
    (s, effects) = Self.step(s, .key(.down))
    #expect(effects.isEmpty && s.needsRedraw)
    // Ctrl-L repaints every cell at the next tick.
    (s, _) = Self.step(s, .key(.control("l")))
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    #expect(effects.contains { if case .present(_, true) = $0 { return true } else { return false } })
    (s, effects) = Self.step(s, .key(.character("q")))
    #expect(effects == [.finish(.quit)])
  }

  @Test func signalsFrameLimitsAndFinishedEffectsEndOrUpdateTheLoop() throws {
    var s = RunLoopState(DashboardState(), maxFrames: 2)
    var effects: [RunLoopEffect]
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    #expect(!effects.contains(.finish(.frameLimit)))
    // An effect the sampler finished shows its message and draws, even with the same data generation.
    let done = EffectResult(sequence: 7, message: "paused the VM")
    (s, effects) = Self.step(s, .tick(try Self.data(generation: 1, effect: done), width: 100, height: 30))
    #expect(s.dashboard.lastEffect == 7 && s.dashboard.statusMessage == "paused the VM")
    #expect(effects.last == .finish(.frameLimit), "the second frame reaches --frames 2")
    (_, effects) = Self.step(s, .signal(15))
    #expect(effects == [.finish(.signal(15))])
  }

  /// The timeline's keys reach the sampler: t writes the trace control word, space freezes the view
  /// (the backend's old filter dropped both).
  @Test func timelineKeysArePerformed() throws {
    var s = RunLoopState(DashboardState(pane: .timeline))
    var effects: [RunLoopEffect]
    (s, _) = Self.step(s, .tick(try Self.data(generation: 1), width: 120, height: 30))
    (s, effects) = Self.step(s, .key(.character("t")))
    #expect(
      effects.contains {
        if case .perform(let r) = $0 { return r.contains(.toggleTrace) } else { return false }
      })
    (s, effects) = Self.step(s, .key(.character(" ")))
    #expect(
      effects.contains {
        if case .perform(let r) = $0 { return r.contains(.freezeTimeline) } else { return false }
      })
  }

  /// Negative control: a key the dashboard does not bind changes nothing.
  @Test func anUnboundKeyDoesNothing() throws {
    var s = RunLoopState(DashboardState())
    (s, _) = Self.step(s, .tick(try Self.data(generation: 1), width: 100, height: 30))
    let (after, effects) = Self.step(s, .key(.function(12)))
    #expect(effects.isEmpty && after == s)
  }
}
