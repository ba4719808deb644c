#!/usr/bin/env bash
# The demo: installs what is missing, builds smptop and the bundled guest, boots the guest
# in QEMU (TCG) with 4 lcpus and opens the dashboard on it. Extra arguments go to `smptop run`.
set -euo pipefail
cd "$(dirname "$0")/.."
Resources/install-deps.sh
swift build -c release --product smptop
exec .build/release/smptop run --smp 4 "$@"
