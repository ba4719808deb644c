#!/usr/bin/env bash
# Soak check of the guest's concurrency: boots the bundled guest with `smptop run`, takes a live
# (shared-RAM, zero-pause) JSON snapshot every INTERVAL seconds for SECONDS, and fails unless
#   - every record of every snapshot is consistent (the live seqlock reader never gave up),
#   - no lcpu's run-queue self-check failed (runq_check_failures) and every lcpu ran checks,
#   - the workload's self-check never failed and kept running,
#   - the allocator churn's self-check never failed,
#   - no lcpu halted, no thread blocked with preemption off (sleep_in_atomic),
#   - every lcpu came online and every lcpu kept doing workload operations.
#
#   Resources/soak-guest.sh [--smp N] [--seconds S] [--interval I] [--scenario NAME]
#                           [--smptop PATH] [--kernel ELF]
#
# Defaults: --smp 4 --seconds 600 --interval 1 --scenario default, smptop = $SMPTOP or
# .build/debug/smptop, the bundled guest (built if needed; --kernel boots a given ELF instead).
# It boots QEMU, so run it under the QEMU lock:
#   flock /tmp/smptop-qemu.lock Resources/soak-guest.sh --smp 16
# Prints a progress line a minute and one summary line; exits 0 on PASS, 1 on FAIL, 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

smp=4
seconds=600
interval=1
scenario=default
smptop="${SMPTOP:-.build/debug/smptop}"
kernel=()
usage() {
  echo "usage: $0 [--smp N] [--seconds S] [--interval I] [--scenario NAME] [--smptop PATH] [--kernel ELF]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --smp) smp="$2" ;;
    --seconds) seconds="$2" ;;
    --interval) interval="$2" ;;
    --scenario) scenario="$2" ;;
    --smptop) smptop="$2" ;;
    --kernel) kernel=(--kernel "$2") ;;
    *) usage ;;
  esac
  shift 2
done
[[ "$smp" =~ ^[0-9]+$ && "$seconds" =~ ^[0-9]+$ && "$interval" =~ ^[0-9]+([.][0-9]+)?$ ]] || usage
[ -x "$smptop" ] || { echo "soak: no smptop binary at $smptop (swift build first, or --smptop)" >&2; exit 2; }

iterations=$(python3 -c "import math,sys; print(math.ceil(float(sys.argv[1]) / float(sys.argv[2])) + 1)" \
  "$seconds" "$interval")
echo "soak: smp $smp, scenario $scenario, ${seconds} s, a live snapshot every ${interval} s" >&2

checker=$(
  cat <<'PY'
import json, sys, time

smp, seconds = int(sys.argv[1]), int(sys.argv[2])
decoder = json.JSONDecoder()
failures = []
snapshots = inconsistent = 0
first = last = None
started = time.monotonic()
next_report = 60


def fail(message):
    if len(failures) < 20:
        failures.append(message)


def records(snap):
    for kind in ("lcpus", "locks", "threads", "timerQueues", "virtioDevices", "virtqueues"):
        for r in snap.get(kind) or []:
            yield kind, r
    for kind in ("workload", "allocator"):
        if snap.get(kind):
            yield kind, snap[kind]


def check(snap):
    global inconsistent
    n = snapshots
    for kind, r in records(snap):
        state = (r.get("consistency") or {}).get("state")
        if state != "consistent":
            inconsistent += 1
            fail(f"snapshot {n}: {kind} {r.get('name', r.get('index', ''))} is {state}")
    for l in snap.get("lcpus") or []:
        if l.get("state") == "HALTED":
            fail(f"snapshot {n}: lcpu {l['index']} HALTED (error {l.get('errorCode')})")
        s = l.get("scheduler") or {}
        if s.get("runqCheckFailures", 0) != 0:
            fail(f"snapshot {n}: lcpu {l['index']} run-queue self-check failed {s['runqCheckFailures']} times")
        if s.get("sleepInAtomic", 0) != 0:
            fail(f"snapshot {n}: lcpu {l['index']} blocked with preemption off {s['sleepInAtomic']} times")
    w = snap.get("workload") or {}
    if w.get("checkFailures", 0) != 0:
        fail(f"snapshot {n}: workload self-check failed (expected {w.get('expected')}, observed {w.get('observed')})")
    a = snap.get("allocator") or {}
    if a.get("churnFailures", 0) != 0:
        fail(f"snapshot {n}: allocator churn self-check failed {a['churnFailures']} times")


buffer = ""
for chunk in iter(lambda: sys.stdin.read(65536), ""):
    buffer += chunk
    while True:
        buffer = buffer.lstrip()
        if not buffer:
            break
        try:
            snap, end = decoder.raw_decode(buffer)
        except json.JSONDecodeError:
            break
        buffer = buffer[end:]
        if first is None:
            first = snap
        last = snap
        check(snap)
        snapshots += 1
        if time.monotonic() - started >= next_report:
            next_report += 60
            print(f"soak: {int(time.monotonic() - started)} s, {snapshots} snapshots, "
                  f"{inconsistent} inconsistent records, {len(failures)} findings", file=sys.stderr, flush=True)

if last is None:
    print("soak: FAIL: no snapshot at all", flush=True)
    sys.exit(1)

lcpus = last.get("lcpus") or []
online = (last.get("guest") or {}).get("lcpusOnline", 0)
if len(lcpus) != smp or online != smp:
    fail(f"{online} of {smp} lcpus online, {len(lcpus)} lcpu records")
checks = [((l.get("scheduler") or {}).get("runqChecks", 0)) for l in lcpus]
if not checks or min(checks) == 0:
    fail(f"an lcpu ran no run-queue self-check: {checks}")
w0, w1 = (first.get("workload") or {}), (last.get("workload") or {})
if w1.get("checks", 0) <= w0.get("checks", 0):
    fail(f"the workload self-check did not run ({w0.get('checks')} -> {w1.get('checks')})")
ops0, ops1 = w0.get("ops") or [], w1.get("ops") or []
if len(ops1) != smp or any(b <= a for a, b in zip(ops0, ops1)):
    fail(f"an lcpu stopped doing workload operations: {ops0} -> {ops1}")
if snapshots < 2:
    fail(f"only {snapshots} snapshot(s)")

alloc = last.get("allocator") or {}
summary = (f"smp={smp} seconds={seconds} snapshots={snapshots} inconsistent_records={inconsistent} "
           f"runq_checks={sum(checks)} runq_failures={sum((l.get('scheduler') or {}).get('runqCheckFailures', 0) for l in lcpus)} "
           f"workload_checks={w1.get('checks', 0)} workload_failures={w1.get('checkFailures', 0)} "
           f"churn_checks={alloc.get('churnChecks', 0)} churn_failures={alloc.get('churnFailures', 0)} "
           f"ops={sum(ops1)}")
for f in failures:
    print(f"soak: {f}", flush=True)
print(f"soak: {'PASS' if not failures else 'FAIL'}: {summary}", flush=True)
sys.exit(0 if not failures else 1)
PY
)

set +e
"$smptop" run --smp "$smp" --scenario "$scenario" "${kernel[@]}" --batch --json \
  --interval "$interval" --iterations "$iterations" | python3 -c "$checker" "$smp" "$seconds"
status=("${PIPESTATUS[@]}")
set -e
if [ "${status[0]}" -ne 0 ]; then
  echo "soak: FAIL: smptop run exited with status ${status[0]}" >&2
  exit 1
fi
exit "${status[1]}"
