import Dashboard
import Testing

/// The `n` key: step the detail view's lcpu one source line.
@Suite struct StepKeyTests {
  /// A state whose last frame listed lcpus 0…3.
  func listed() -> DashboardState {
    reduce(DashboardState(), .sync(ViewLayout(rowIDs: [0, 1, 2, 3], pageRows: 4))).0
  }

  /// Maps a key and reduces, like the run loop.
  func press(_ key: Key, _ state: DashboardState) -> (DashboardState, Reaction) {
    guard let a = action(for: key, in: state) else { return (state, []) }
    return reduce(state, a)
  }

  @Test func nInTheDetailViewStepsItsLCPUOneLineAndStopsTheVM() {
    let opened = press(.enter, press(.down, press(.down, listed()).0).0).0
    #expect(opened.detail == 2)
    #expect(action(for: .character("n"), in: opened) == .stepLine)
    let (s, r) = press(.character("n"), opened)
    #expect(r.contains(.stepLineSelected))
    #expect(!r.contains(.stepSelected))
    #expect(r.contains(.redraw))
    #expect(s.vmPaused)
    #expect(s.detail == 2)
    #expect(s.statusMessage == "stepping lcpu 2 to the next source line...")
    // The sampler's result replaces the progress message; it is a status, not a problem.
    let done = reduce(
      s, .effectFinished(EffectResult(sequence: 1, message: "stepped lcpu 2 to Mutex.swift:27"))
    ).0
    #expect(done.statusMessage == "stepped lcpu 2 to Mutex.swift:27")
  }

  @Test func nOutsideTheDetailViewDoesNothing() {
    let state = press(.down, listed()).0
    #expect(action(for: .character("n"), in: state) == nil)
    #expect(reduce(state, .stepLine).1 == [])
  }

  @Test func nWhileEditingTheFilterIsTyped() {
    var state = press(.enter, listed()).0
    state = press(.escape, state).0
    state = press(.character("/"), state).0
    #expect(action(for: .character("n"), in: state) == .filterInput("n"))
  }
}
