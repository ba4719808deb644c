#!/usr/bin/env bash
# Soak test: the dashboard refreshing at 10 Hz in tmux against the real guest for a while.
# Reports smptop's resident memory and open file descriptors at the start (after a 10 s warm-up)
# and at the end (goal: flat within 5 %), then kills QEMU underneath `attach`, starts it again on
# the same sockets and checks that smptop says so on screen, quits with q, exits 0 and leaves the
# terminal in cooked mode.
#
# Usage: Resources/soak.sh [minutes]     (default 30; run it under flock /tmp/smptop-qemu.lock)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
swift build --product smptop >/dev/null
SMPTOP="$(swift build --show-bin-path)/smptop"
KERNEL=$("$SMPTOP" kernel)
DIR=$(mktemp -d /dev/shm/smptop-soak.XXXXXX)
TM="tmux -L smptop-soak-$$ -f /dev/null"
QEMU_PID=""
cleanup() {
  $TM kill-server 2>/dev/null || true
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

start_qemu() {  # the README's "attach to your own QEMU" command line, dying with this script
  setpriv --pdeathsig KILL -- qemu-system-x86_64 -accel tcg -smp 4 -m 128M -kernel "$KERNEL" \
    -object "memory-backend-file,id=ram0,size=128M,mem-path=$DIR/ram,share=on" \
    -machine pc,memory-backend=ram0 \
    -gdb "unix:$DIR/gdb.sock,server=on,wait=off" -qmp "unix:$DIR/qmp.sock,server=on,wait=off" \
    -serial "file:$DIR/serial.log" -display none &
  QEMU_PID=$!
  for _ in $(seq 100); do [ -S "$DIR/qmp.sock" ] && return 0; sleep 0.1; done
  echo "soak: QEMU did not open its sockets" >&2; exit 1
}
screen() { $TM capture-pane -p -t soak; }
waitfor() {  # TEXT [TENTHS]
  for _ in $(seq "${2:-300}"); do screen | grep -qF -- "$1" && return 0; sleep 0.1; done
  echo "soak: timed out waiting for '$1'; screen:" >&2; screen >&2; return 1
}
measure() {  # prints "RSS_KiB FDS"
  echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status") $(ls "/proc/$1/fd" | wc -l)"
}

start_qemu
sleep 1
$TM new-session -d -s soak -x 200 -y 50 \
  "LANG=C.UTF-8 $SMPTOP attach --gdb $DIR/gdb.sock --qmp $DIR/qmp.sock --kernel $KERNEL --memory-file $DIR/ram --interval 0.1; echo EXIT=\$?; stty -a | grep -o ' -\?icanon'; sleep 600"
waitfor "live shared RAM"
PANE=$($TM display -p -t soak '#{pane_pid}')
PID=""
for _ in $(seq 50); do PID=$(pgrep -P "$PANE" smptop || true); [ -n "$PID" ] && break; sleep 0.1; done
[ -n "$PID" ] || { echo "soak: smptop not found under the tmux pane" >&2; exit 1; }
# Cycle through the panes once a minute so every view is rendered at 10 Hz during the soak.
sleep 10
read -r RSS0 FD0 < <(measure "$PID")
echo "soak: start  rss ${RSS0} KiB  fds ${FD0}  (smptop $PID, ${MINUTES} min at 10 Hz)"
for m in $(seq "$MINUTES"); do
  $TM send-keys -t soak "$(( (m - 1) % 5 + 1 ))"
  sleep 60
  read -r RSS FD < <(measure "$PID")
  echo "soak: ${m} min  rss ${RSS} KiB  fds ${FD}"
done
read -r RSS1 FD1 < <(measure "$PID")
RSS_PCT=$(awk -v a="$RSS0" -v b="$RSS1" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
echo "soak: end    rss ${RSS1} KiB (${RSS_PCT} %)  fds ${FD1} (start ${FD0})"
status=0
awk -v p="$RSS_PCT" 'BEGIN { exit !(p <= 5 && p >= -5) }' || { echo "soak: FAIL rss moved ${RSS_PCT} %"; status=1; }
[ "$FD1" -eq "$FD0" ] || { echo "soak: FAIL open fds ${FD0} -> ${FD1}"; status=1; }

# QEMU restarted underneath: killed, then started again on the same sockets and RAM file.
$TM send-keys -t soak 1
kill -KILL "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
waitfor "unreachable" && echo "soak: QEMU killed: the dashboard says unreachable: $(screen | grep -m1 -o 'source.*')" \
  || status=1
rm -f "$DIR/gdb.sock" "$DIR/qmp.sock"
start_qemu
sleep 3
kill -0 "$PID" && echo "soak: smptop still running after QEMU came back" || { echo "soak: FAIL smptop died"; status=1; }
$TM send-keys -t soak q
waitfor "EXIT=" 100 || status=1
screen | grep -q "EXIT=0" && echo "soak: q after the restart: exit 0" || { echo "soak: FAIL exit: $(screen | grep EXIT=)"; status=1; }
screen | grep -q "^ icanon" && echo "soak: terminal restored (icanon)" || { echo "soak: FAIL terminal not restored"; status=1; }
exit $status
