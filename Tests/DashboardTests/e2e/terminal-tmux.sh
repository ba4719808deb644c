#!/bin/bash
# End-to-end test of the Terminal backend (ncurses) in tmux, against the golden files.
#
# The driver is Sources/DashboardDemo (synthetic snapshots from Tests/DashboardTests/Support, no
# QEMU): the real Terminal backend, keys sent through tmux, screens compared with the goldens.
#
# Usage: Tests/DashboardTests/e2e/terminal-tmux.sh        (prints PASS/FAIL lines, exits 1 on failure)
# `swift test` runs it (Tests/CommandTests/TerminalScriptTests.swift).
set -u
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
GOLD="$REPO/Tests/DashboardTests/__Snapshots__"
# The files one run writes (pid, effects log) go to a temporary directory of its own.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smptop-dash-e2e.XXXXXX")
TM="tmux -L smptop-dash-e2e-$$ -f /dev/null"   # a private tmux server: never touches the user's
S=e2e
trap '$TM kill-server 2>/dev/null; rm -rf "$WORK"' EXIT

# The driver is the package's DashboardDemo product: `swift test` has built it next to its own
# bundle (DEMO_BIN names it); run by hand, the script builds it.
if [ -n "${DEMO_BIN:-}" ] && [ -x "$DEMO_BIN" ]; then
  BIN=$DEMO_BIN
else
  echo "building the demo driver (swift build --product DashboardDemo)"
  (cd "$REPO" && swift build --product DashboardDemo 2>&1 | grep -E "error:|complete!") || exit 1
  BIN="$(cd "$REPO" && swift build --show-bin-path)/DashboardDemo"
fi
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
