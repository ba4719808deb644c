#!/usr/bin/env bash
# Installs the Debian packages smptop needs and that a fresh machine may lack.
# Idempotent: packages already installed are left alone, and apt is not touched at all
# when nothing is missing. Needs root (or sudo) only when something must be installed.
set -euo pipefail

packages=(
  qemu-system-x86   # the emulator the guest runs in (TCG)
  libncurses-dev    # the dashboard's terminal backend
  libcapstone-dev   # disassembly around RIP in the detail view
  tmux              # end-to-end tests drive the real binary in a real terminal
  gdb               # `smptop bench` measures gdb's Python API as the baseline
  iproute2          # the multiqueue virtio test builds a network namespace with a tap
  python3           # the multiqueue virtio test sends UDP from inside that namespace
  binutils          # addr2line: the reference the isrcheck source-line test compares with
  util-linux        # setpriv: every QEMU smptop starts dies with it (parent-death signal)
  prometheus        # prometheus + promtool: the `smptop serve` test scrapes with the real server
  curl              # the `smptop serve` test fetches /metrics and asks Prometheus' query API
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
