// DashboardDemo: the real Terminal backend driven by synthetic snapshots (the fixtures of
// Tests/DashboardTests/Support, linked here), no QEMU. Only the tmux end-to-end script
// (Tests/DashboardTests/e2e/terminal-tmux.sh) runs it; it is built with the package, so the
// script needs no build of its own.
import Dashboard
import Foundation
import Inspector
import Terminal

// Drives the real Terminal backend with synthetic snapshots. Options:
//   --frames N        stop after N presented frames      --lcpus N       4 (fixture) or N generated
//   --no-color        ColorChoice.never                   --live          a sampler thread publishes every 100 ms
//   --crash-after N   fatalError in the data hook         --pid-file P    write the pid (for kill by id)
//   --effects-log P   append each effect request          --bench         print render µs/frame and exit
var frames: Int?
var lcpus = 4
var color = ColorChoice.auto
var live = false
var crashAfter: Int?
var effectsLog: String?
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
  switch a {
  case "--frames": frames = args.popFirst().flatMap { Int($0) }
  case "--lcpus": lcpus = args.popFirst().flatMap { Int($0) } ?? 4
  case "--no-color": color = .never
  case "--live": live = true
  case "--crash-after": crashAfter = args.popFirst().flatMap { Int($0) }
  case "--effects-log": effectsLog = args.popFirst()
  case "--pid-file":
    if let p = args.popFirst() { try "\(getpid())\n".write(toFile: p, atomically: true, encoding: .utf8) }
  case "--bench":
    for count in [256, 1024] {
      let (snap, rates) = try Fixtures.manyLocks(lcpus: 64, locks: count)
      let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
      for pane in [Pane.lcpus, .locks] {
        for (w, h) in [(200, 50), (80, 24)] {
          let r = benchmarkRender(
            state: DashboardState(pane: pane), data: data, symbolize: Fixtures.symbolize, width: w, height: h,
            frames: 1000)
          print(
            "render 64 lcpus + \(count) locks, \(pane.title(generic: false)) pane \(w)x\(h): "
              + "\(Int(r.microsecondsPerFrame.rounded())) µs/frame over \(r.frames) frames")
        }
      }
    }
    exit(0)
  default:
    FileHandle.standardError.write(Data("demo: unknown option \(a)\n".utf8))
    exit(2)
  }
}
let (snap, rates) = try lcpus == 4 ? Fixtures.fourLCPUs() : Fixtures.manyLCPUs(lcpus)
let latest = Latest(DashboardData(snapshot: snap, rates: rates, target: Fixtures.target))
if live {
  Thread.detachNewThread {
    var n: UInt64 = 0
    while true {
      Thread.sleep(forTimeInterval: 0.1)
      n += 1
      latest.update { $0.snapshot?.costNanoseconds = 1000 * n }
    }
  }
}
var calls = 0
let hooks = DashboardHooks(
  data: { _ in
    calls += 1
    if let c = crashAfter, calls > c { fatalError("deliberate crash for the terminal-restore test") }
    var (d, generation) = latest.read()
    d.generation = generation
    return d
  },
  perform: { reaction, state in
    if let path = effectsLog, let h = FileHandle(forWritingAtPath: path) {
      h.seekToEndOfFile()
      h.write(Data("reaction \(reaction.rawValue) target \(state.targetLCPU.map(String.init) ?? "-")\n".utf8))
    }
    return reaction.contains(.pauseVM) ? "VM paused (demo)" : nil
  },
  symbolize: Fixtures.symbolize)
do {
  let result = try runDashboard(hooks: hooks, color: color, options: RunOptions(maxFrames: frames))
  let selected = result.state.current.selectedID.map(String.init) ?? "-"
  print("outcome \(result.outcome) frames \(result.frames) pane \(result.state.pane) selected \(selected)")
  if case .signal(let s) = result.outcome { exit(128 + s) }
} catch {
  FileHandle.standardError.write(Data("demo: \(error)\n".utf8))
  exit(3)
}
