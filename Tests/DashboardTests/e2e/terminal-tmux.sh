#!/bin/bash
# End-to-end test of the Terminal backend (ncurses) in tmux, against the golden files.
#
# The manifest has no demo executable, so this builds a scratch package outside the repository whose
# targets are symlinks to the repository's sources plus a small driver (synthetic snapshots from
# Tests/DashboardTests/Support/Fixtures.swift, no QEMU). Once `smptop` has a `--frames N` dashboard
# mode, point BIN at it and drop the scratch package.
#
# Usage: Tests/DashboardTests/e2e/terminal-tmux.sh        (prints PASS/FAIL lines, exits 1 on failure)
# `swift test` runs it (Tests/CommandTests/TerminalScriptTests.swift).
set -u
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
GOLD="$REPO/Tests/DashboardTests/__Snapshots__"
# The scratch package stays in .build-e2e (gitignored) so that a second run builds incrementally;
# the files one run writes (pid, effects log) go to a temporary directory of its own.
PKG="$REPO/.build-e2e/package"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smptop-dash-e2e.XXXXXX")
TM="tmux -L smptop-dash-e2e-$$ -f /dev/null"   # a private tmux server: never touches the user's
S=e2e
trap '$TM kill-server 2>/dev/null; rm -rf "$WORK"' EXIT

mkdir -p "$PKG/Sources/demo"
for d in InspectABI Model GDBRemote QMP ELFSymbols QEMULaunch Inspector CNcurses CCapstone Disassembly Dashboard Terminal; do
  ln -sfn "$REPO/Sources/$d" "$PKG/Sources/$d"
done
ln -sfn "$REPO/Tests/DashboardTests/Support/Fixtures.swift" "$PKG/Sources/demo/Fixtures.swift"
ln -sfn "$REPO/Tests/DashboardTests/Support/FixturesV2.swift" "$PKG/Sources/demo/FixturesV2.swift"
cat > "$PKG/Package.swift" <<'EOF'
// swift-tools-version: 6.1
import PackageDescription
let package = Package(
  name: "dashdemo",
  targets: [
    .target(name: "InspectABI"), .target(name: "Model"),
    .target(name: "GDBRemote"), .target(name: "QMP"), .target(name: "ELFSymbols"), .target(name: "QEMULaunch"),
    .target(name: "Inspector", dependencies: ["Model", "InspectABI", "GDBRemote", "QMP", "ELFSymbols", "QEMULaunch"]),
    .systemLibrary(name: "CNcurses"), .systemLibrary(name: "CCapstone"),
    .target(name: "Disassembly", dependencies: ["CCapstone"]),
    .target(name: "Dashboard", dependencies: ["Model", "Inspector"]),
    .target(name: "Terminal", dependencies: ["CNcurses", "Dashboard"]),
    .executableTarget(name: "demo", dependencies: ["Dashboard", "Terminal", "Inspector", "Disassembly"]),
  ])
EOF
cat > "$PKG/Sources/demo/main.swift" <<'EOF'
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
    let (snap, rates) = try Fixtures.manyLocks(lcpus: 64, locks: 256)
    let data = DashboardData(snapshot: snap, rates: rates, target: Fixtures.target)
    for pane in [Pane.lcpus, .locks] {
      for (w, h) in [(200, 50), (80, 24)] {
        let r = benchmarkRender(
          state: DashboardState(pane: pane), data: data, symbolize: Fixtures.symbolize, width: w, height: h,
          frames: 1000)
        print(
          "render 64 lcpus + 256 locks, \(pane.title(generic: false)) pane \(w)x\(h): "
            + "\(Int(r.microsecondsPerFrame.rounded())) µs/frame over \(r.frames) frames")
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
EOF

echo "building the demo driver in $PKG"
(cd "$PKG" && swift build 2>&1 | grep -E "error|Compiling demo|Build complete") || exit 1
BIN="$PKG/.build/debug/demo"
# swift test exports NO_COLOR=1 to its children; the default-scheme checks need it unset.
ENV="env -u NO_COLOR SWIFT_BACKTRACE=interactive=no TERM=tmux-256color"

pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }
# start WIDTH HEIGHT COMMAND: the pane reports the exit status and the tty modes afterwards.
# A placeholder session keeps the server up between tests: killing its last session would make
# the server exit, and a new-session racing that exit fails with "server exited unexpectedly".
$TM new-session -d -s keep "sleep 3600"
start() {
  $TM kill-session -t $S 2>/dev/null
  $TM new-session -d -s $S -x $1 -y $2 \
    "$3; echo EXIT=\$?; stty -a | grep -o ' -\?icanon'; stty -a | grep -o ' -\?echo '; sleep 60"
}
waitfor() { # TEXT [TENTHS]: poll the screen, no fixed sleeps
  for _ in $(seq 1 ${2:-100}); do
    $TM capture-pane -p -t $S 2>/dev/null | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  return 1
}
cap() { $TM capture-pane -p -t $S | sed 's/ *$//'; }
golden() { sed 's/ *$//' "$GOLD/$1.txt"; }
restored() { cap | grep -q "^ icanon" && cap | grep -q "^ echo"; }
colours() { $TM capture-pane -e -p -t $S | grep -q $'\e\\[3[0-7]m\|\e\\[4[0-7]m\|;3[0-7]m\|;4[0-7]m'; }

start 80 24 "$ENV LANG=C.UTF-8 $BIN"
waitfor "F10Quit" && diff <(cap) <(golden lcpus-80x24) && ok "80x24 UTF-8 screen == golden lcpus-80x24" || bad "80x24 golden"
$TM send-keys -t $S q
waitfor "EXIT=" && cap | grep -q "EXIT=0" && cap | grep -q "outcome quit" && ok "q quits with status 0" || bad "q"
restored && ok "tty back in cooked mode after q" || bad "tty after q"

start 80 24 "$ENV LANG=C LC_ALL=C $BIN"
waitfor "F10Quit" && diff <(cap) <(golden lcpus-ascii-80x24) && ok "LANG=C screen == golden lcpus-ascii-80x24" || bad "ascii golden"
$TM send-keys -t $S F10
waitfor "EXIT=0" && ok "F10 quits" || bad "F10"

start 80 24 "$ENV LANG=C.UTF-8 $BIN"
waitfor "F10Quit"; $TM send-keys -t $S C-c
waitfor "EXIT=" && cap | grep -q "EXIT=0" && restored && ok "Ctrl-C quits through the clean path" || bad "Ctrl-C"

start 80 24 "$ENV LANG=C.UTF-8 $BIN --pid-file $WORK/pid"
waitfor "F10Quit" && kill -TERM "$(cat "$WORK/pid")"
waitfor "EXIT=" && cap | grep -q "EXIT=143" && restored && ok "SIGTERM: exit 143, tty restored" || bad "SIGTERM"

start 80 24 "$ENV LANG=C.UTF-8 $BIN --effects-log $WORK/effects"
: > "$WORK/effects"
waitfor "F10Quit"; $TM resize-window -t $S -x 20 -y 5
waitfor "terminal too small" 50 && ok "20x5 shows 'terminal too small'" || bad "tiny"
$TM resize-window -t $S -x 80 -y 24
waitfor "F10Quit" 50 && diff <(cap) <(golden lcpus-80x24) >/dev/null && ok "resized back: == golden" || bad "resize back"
$TM send-keys -t $S '?'; waitfor "smptop keys" && ok "? opens help" || bad "help"
$TM send-keys -t $S x; waitfor "RIP (last tick)" && ok "any key closes help" || bad "help close"
$TM send-keys -t $S Tab; waitfor "no locks published by this guest" && ok "Tab: locks pane" || bad "tab"
$TM send-keys -t $S 1 Down Down Enter; waitfor "lcpu 2 │ BUSY 2" && ok "Down Down Enter: lcpu 2 detail" || bad "detail"
$TM send-keys -t $S Escape; waitfor "RIP (last tick)" && ok "Esc closes the detail (25 ms ESC delay)" || bad "esc"
$TM send-keys -t $S ' '; waitfor "VM paused (demo)" && ok "space: effect requested, status shown" || bad "pause"
grep -q "reaction 5 target 2" "$WORK/effects" && ok "effect = pauseVM|redraw for lcpu 2" || bad "effects log"
$TM send-keys -t $S / h a l; waitfor "Filter: hal_" && ok "/ edits the filter" || bad "filter edit"
$TM send-keys -t $S Enter; waitfor "filter: hal" && ! cap | grep -qE '^ +[0-9]+.? +(BUSY|IDLE)' \
  && cap | grep -qE '^ +3 +HALTED' && ok "filter keeps only the halted lcpu" || bad "filter apply"
$TM send-keys -t $S q; waitfor "EXIT=0" && cap | grep -q "pane lcpus selected 3" && ok "final state returned" || bad "result"

start 80 24 "env TERM=bogus-term $BIN"
waitfor "EXIT=" && cap | grep -q "unknown terminal type 'bogus-term'" && cap | grep -q "EXIT=3" \
  && ok "bad TERM: TerminalError, not ncurses' exit(1)" || bad "bad TERM"
"$BIN" </dev/null 2>&1 | cat | grep -q "must be a terminal" && ok "no tty: TerminalError" || bad "no tty"

start 80 24 "$ENV LANG=C.UTF-8 $BIN"
waitfor "F10Quit" && colours && ok "default scheme has colours" || bad "colours"
$TM send-keys -t $S q; waitfor "EXIT="
start 80 24 "$ENV NO_COLOR=1 LANG=C.UTF-8 $BIN"
waitfor "F10Quit" && ! colours && ok "NO_COLOR: no colours" || bad "NO_COLOR colours"
$TM capture-pane -e -p -t $S | grep -q $'\e\\[7m\|;7m' && ok "NO_COLOR: reverse video remains" || bad "NO_COLOR attrs"
$TM send-keys -t $S q; waitfor "EXIT="
start 80 24 "$ENV LANG=C.UTF-8 $BIN --no-color"
waitfor "F10Quit" && ! colours && ok "--no-color: no colours" || bad "--no-color"
$TM send-keys -t $S q; waitfor "EXIT="

start 80 24 "$ENV LANG=C.UTF-8 $BIN --lcpus 64"
waitfor "F10Quit" && diff <(cap) <(golden lcpus64-80x24) && ok "64 lcpus 80x24 == golden" || bad "64 golden"
$TM send-keys -t $S q; waitfor "EXIT="

start 80 24 "$ENV LANG=C.UTF-8 $BIN --live --frames 15"
waitfor "EXIT=" 60 && cap | grep -q "outcome frameLimit frames 15" && ok "--frames 15 reached by sampler updates alone" || bad "frames"

start 80 24 "$ENV LANG=C.UTF-8 $BIN --crash-after 3"
waitfor "F10Quit"; $TM send-keys -t $S Down Down Down
waitfor "EXIT=" && cap | grep -q "EXIT=132" && restored && ok "crash (SIGILL) mid-run: tty restored" || bad "crash restore"

echo "terminal e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
