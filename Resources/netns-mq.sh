#!/usr/bin/env bash
# Boots the guest behind a multiqueue tap inside a private network namespace, so that
# virtio-net runs with several queue pairs (QEMU user networking offers only one).
#
#   sudo Resources/netns-mq.sh [-smp N] [-queues Q] [-append ARGS] [-- EXTRA QEMU ARGS]
#
# Defaults: -smp 4, 4 queue pairs. Namespace smptop-mq, tap vtap0 (multi_queue) with
# 192.0.2.1/24 on the host side; the guest is 192.0.2.2 (net.ip=) and echoes UDP port 7.
# From the namespace: ip netns exec smptop-mq ping 192.0.2.2, or send UDP to 192.0.2.2:7.
# QMP listens on /tmp/smptop-mq.qmp (Resources/virtio-check.py /tmp/smptop-mq.qmp).
# The namespace and tap are removed when QEMU exits. Needs root and /dev/net/tun.
set -euo pipefail
cd "$(dirname "$0")/.."

smp=4
queues=4
append=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -smp) smp="$2"; shift 2 ;;
    -queues) queues="$2"; shift 2 ;;
    -append) append="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [-smp N] [-queues Q] [-append ARGS] [-- QEMU ARGS]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "netns-mq.sh: needs root (network namespace and tap device); try sudo $0" >&2
  exit 1
fi
if [ ! -c /dev/net/tun ]; then
  echo "netns-mq.sh: /dev/net/tun is missing; multiqueue tap is not available here" >&2
  exit 1
fi

ns=smptop-mq
tap=vtap0
qmp=/tmp/smptop-mq.qmp
cleanup() {
  ip netns exec "$ns" ip link del "$tap" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
cleanup
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip tuntap add dev "$tap" mode tap multi_queue
ip netns exec "$ns" ip addr add 192.0.2.1/24 dev "$tap"
ip netns exec "$ns" ip link set "$tap" up

if [ "${NOBUILD:-0}" != 1 ]; then
  swift build -c release --scratch-path .build-guest --triple x86_64-unknown-none-elf \
    --toolset Resources/toolset.json --product Kernel >&2
fi
rm -f "$qmp"
# vectors = 2 * queues + 2: config, ctrl, one per RX and TX queue (MSI-X per queue);
# VECTORS=0 disables MSI-X (every lcpu then polls its pair from its timer tick).
NOBUILD=1 ip netns exec "$ns" Resources/boot-guest.sh -smp "$smp" -append "net.ip=192.0.2.2 $append" -- \
  -netdev tap,id=n0,ifname="$tap",script=no,downscript=no,queues="$queues" \
  -device virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,vectors=${VECTORS:-$((2 * queues + 2))},id=nic0 \
  -qmp unix:"$qmp",server=on,wait=off \
  "${extra[@]}"
