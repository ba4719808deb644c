import Dashboard
import Inspector
import Testing

/// What the sampler is told for each reaction (`samplerCommands`), from real keys through
/// `runStep`, with no terminal and no target.
@Suite struct SamplerCommandsTests {
  /// Steps the loop with `key` and returns the sampler commands its `.perform` effect asks for.
  static func press(_ s: inout RunLoopState, _ key: Key) -> [SamplerCommand] {
    let effects: [RunLoopEffect]
    (s, effects) = runStep(s, .key(key), symbolize: Fixtures.symbolize)
    return effects.flatMap { effect -> [SamplerCommand] in
      guard case .perform(let reaction) = effect else { return [] }
      return samplerCommands(for: reaction, in: s.dashboard)
    }
  }

  /// A loop that drew one frame of four lcpus (so a row is selected).
  static func started(_ state: DashboardState = DashboardState()) throws -> RunLoopState {
    let (snap, rates) = try Fixtures.fourLCPUs()
    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target, generation: 1)
    return runStep(RunLoopState(state), .tick(data, width: 120, height: 30), symbolize: Fixtures.symbolize).0
  }

  @Test func pauseStepContinueAndResume() throws {
    var s = try Self.started()
    let selected = try #require(s.dashboard.targetLCPU, "the first frame selects an lcpu")
    #expect(Self.press(&s, .character(" ")) == [.pause])
    #expect(Self.press(&s, .character("s")) == [.step(lcpu: selected)])
    #expect(Self.press(&s, .character("c")) == [.resume])
    #expect(Self.press(&s, .character(" ")) == [.pause])
    #expect(Self.press(&s, .character(" ")) == [.resume], "space again resumes")
  }

  /// Negative control: before any frame no lcpu is selected, so `s` steps nothing (the reducer
  /// says so on the status line instead).
  @Test func aStepWithNoLCPUSendsNothing() {
    var s = RunLoopState(DashboardState())
    #expect(s.dashboard.targetLCPU == nil)
    #expect(Self.press(&s, .character("s")).isEmpty)
    #expect(s.dashboard.statusMessage == "select an lcpu to step")
  }

  @Test func panesTellTheSamplerWhatTheyNeed() throws {
    var s = try Self.started()
    #expect(
      Self.press(&s, .tab) == [.detail(lcpu: nil), .whereViews(open: false), .profileShown(false)],
      "the locks pane needs no backtraces until a view opens")
    #expect(
      Self.press(&s, .character("5")) == [.detail(lcpu: nil), .whereViews(open: true), .profileShown(false)],
      "the timers pane places timer owners by backtrace")
    #expect(
      Self.press(&s, .character("7")) == [.detail(lcpu: nil), .whereViews(open: false), .profileShown(true)],
      "the profile pane's data is published only while it shows")
  }

  @Test func theDetailViewAsksForItsLCPUAndStepsByLine() throws {
    var s = try Self.started()
    let selected = try #require(s.dashboard.targetLCPU)
    #expect(
      Self.press(&s, .enter) == [.detail(lcpu: selected), .whereViews(open: false), .profileShown(false)])
    #expect(Self.press(&s, .character("n")) == [.stepLine(lcpu: selected)])
  }

  @Test func intervalAndTimelineKeys() throws {
    var s = try Self.started()
    #expect(Self.press(&s, .character("-")) == [.interval(milliseconds: s.dashboard.intervalMilliseconds)])
    #expect(s.dashboard.intervalMilliseconds < 1000)
    _ = Self.press(&s, .character("6"))
    #expect(Self.press(&s, .character("t")) == [.trace(on: true)])
    #expect(Self.press(&s, .character("t")) == [.trace(on: false)])
    #expect(Self.press(&s, .character(" ")) == [.freezeTimeline(true)], "space freezes the timeline")
    #expect(Self.press(&s, .character(" ")) == [.freezeTimeline(false)])
  }

  /// Every reaction the backend performs maps to at least one command; the dashboard's own
  /// reactions (draw, quit, colours) map to none.
  @Test func exactlyTheTargetReactionsBecomeCommands() {
    var state = DashboardState()
    state.detail = 2
    for bit in 0..<32 {
      let reaction = Reaction(rawValue: 1 << UInt32(bit))
      let commands = samplerCommands(for: reaction, in: state)
      if targetReactions.contains(reaction) {
        #expect(!commands.isEmpty, "reaction bit \(bit) is performed but sends nothing")
      } else {
        #expect(commands.isEmpty, "reaction bit \(bit) is the dashboard's own")
      }
    }
  }
}
