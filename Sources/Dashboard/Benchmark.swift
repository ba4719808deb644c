/// How long rendering takes, for `smptop bench` (not a timed test).
public struct RenderBenchmark: Sendable, Equatable {
  /// Frames rendered.
  public var frames: Int
  /// Mean time per frame in microseconds.
  public var microsecondsPerFrame: Double
  /// Non-blank cells of the last frame, so the work cannot be optimised away (and as a sanity check).
  public var filledCells: Int
}

/// Renders the same full frame `frames` times and reports the mean time per frame.
///
/// Use a snapshot with 64 lcpus and 256 locks at 200x50, on the lcpus and the locks pane, to measure the
/// worst realistic case (target: ≤ 1 ms/frame in release).
public func benchmarkRender(
  state: DashboardState = DashboardState(), data: DashboardData, symbolize: Symbolizer, width: Int = 200,
  height: Int = 50, frames: Int = 1000
) -> RenderBenchmark {
  let clock = ContinuousClock()
  var last = Grid(width: 0, height: 0)
  let elapsed = clock.measure {
    for _ in 0..<max(1, frames) {
      last = renderFrame(state: state, data: data, symbolize: symbolize, width: width, height: height).grid
    }
  }
  let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  return RenderBenchmark(
    frames: max(1, frames), microsecondsPerFrame: seconds * 1e6 / Double(max(1, frames)),
    filledCells: last.cells.reduce(0) { $0 + ($1.scalar == " " ? 0 : 1) })
}
