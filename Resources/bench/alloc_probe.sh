#!/usr/bin/env bash
# Boots the guest with -smp N and an -append line, lets it run SECONDS, stops it through the
# gdbstub and prints the ALLOC record, the ALLOC_ORDER table and the per-lcpu churn time.
#   Resources/bench/alloc_probe.sh N SECONDS "alloc=lockfree alloc.churn=full" [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=$1; secs=$2; append=$3; port=${4:-1240$n}
k=.build-guest/x86_64-unknown-none-elf/release/Kernel
qemu-system-x86_64 -accel tcg -smp "$n" -m 128M -kernel "$k" -append "$append quiet" \
  -display none -serial file:/tmp/alloc_probe_$port.log -monitor none -no-reboot \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 -gdb tcp::$port &
qpid=$!
sleep "$secs"
gdb -batch -ex "target remote :$port" -ex "set print pretty off" \
  -ex 'p smptop_root.tsc_per_ms' \
  -ex 'p smptop_root.tables[5]' -ex 'p smptop_root.tables[6]' \
  -ex 'p/x smptop_alloc_record.base' \
  -ex 'p smptop_alloc_record' \
  -ex 'p smptop_alloc_orders' \
  -ex 'p smptop_alloc_churn_tsc' \
  -ex 'p smptop_lcpus[0].cycles_busy' \
  "$k" 2>&1 | grep -v "^warning\|^$"
kill $qpid
wait $qpid 2>/dev/null || true
