#!/usr/bin/env bash
# Builds the guest kernel and boots it under QEMU (TCG), serial console on stdout.
#
#   Resources/boot-guest.sh [-smp N] [-machine pc|q35] [-append "ARGS"] [-- EXTRA QEMU ARGS]
#
# Defaults: -smp 4, -machine pc, -m 128M, no -append. QEMU's exit code is passed through:
# a kernel shutdown with code C (see Power.swift) exits with C * 2 + 1.
# Set NOBUILD=1 to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."

smp=4
machine=pc
append=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -smp) smp="$2"; shift 2 ;;
    -machine) machine="$2"; shift 2 ;;
    -append) append="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [-smp N] [-machine pc|q35] [-append ARGS] [-- QEMU ARGS]" >&2; exit 2 ;;
  esac
done

kernel=.build-guest/x86_64-unknown-none-elf/release/Kernel
if [ "${NOBUILD:-0}" != 1 ]; then
  # SwiftPM does not know the linker script and toolset are link inputs: relink by hand.
  for input in Resources/kernel.ld Resources/toolset.json; do
    if [ -e "$kernel" ] && [ "$input" -nt "$kernel" ]; then rm -f "$kernel"; fi
  done
  swift build -c release --scratch-path .build-guest --triple x86_64-unknown-none-elf \
    --toolset Resources/toolset.json --product Kernel >&2
fi

exec qemu-system-x86_64 -accel tcg -machine "$machine" -smp "$smp" -m 128M \
  -kernel "$kernel" -append "$append" \
  -display none -serial stdio -monitor none -no-reboot \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  "${extra[@]}"
