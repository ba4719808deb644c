#!/usr/bin/env bash
# The whole test run, as the README and CI (.ci/run) name it:
#   1. the dependencies (Resources/install-deps.sh, idempotent)
#   2. swift test --no-parallel: unit, integration, command and terminal tests against the real
#      guest in real QEMU (serial: parallel TCG guests on two cores starve each other's timers)
#   3. every libFuzzer target for a short budget (FUZZ_RUNS executions each, default 2000,
#      at most FUZZ_SECONDS each, default 30),
#      built unoptimized (FUZZ_OPT=-Onone: half the build time, and the budget is small)
#   4. the host suites that boot no guest, under the thread sanitizer: the package in
#      Resources/tsan (symbolic links to the same sources and tests, without the executable,
#      Hummingbird and the argument parser, so its build stays short), scratch .build-tsan
# Usage: Resources/test.sh [--quick | --asan]
#   --quick: step 2 only
#   --asan:  only the suites of step 4, every test (the single-threaded loops too) under the
#            address sanitizer, scratch .build-asan; not in CI (about 20 minutes on 2 cores).
#            Leak reports are off: the ones seen come from Foundation and XCTest internals.
set -euo pipefail
cd "$(dirname "$0")/.."
# Suites inside the sanitized test targets that boot QEMU; they run in step 2.
BOOTING="QEMUIntegrationTests|QMPIntegrationTests|SecondClientIntegrationTests"
# Single-threaded loops over thousands of inputs or symbols: nothing for TSan to find there
# (they share no memory between threads), and they take 20-90 s each under it. They run in step 2.
SINGLE_THREADED_LOOPS="thousandsOfFaultyScripts|garbageImagesNeverCrashTheDecoder|PacketDecoderTests/fuzz"
SINGLE_THREADED_LOOPS+="|randomizedSequenceKeepsInvariants|swiftSymbolsDemangleLikeTheSwiftDemangleTool"
SINGLE_THREADED_LOOPS+="|theMarkerFunctionIsFoundByNameAndAddress|lookupsMatchABruteForceOracle"
# Tests of the smptop executable, which the sanitized package does not build; they run in step 2.
EXECUTABLE="CommandLineHelpTests"

Resources/install-deps.sh
if [ "${1:-}" = --asan ]; then
  SMPTOP_SOURCE_ROOT=$(pwd) ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} swift test \
    --package-path Resources/tsan --scratch-path .build-asan --sanitize=address --no-parallel \
    --skip "$BOOTING|$EXECUTABLE"
  exit 0
fi
swift test --no-parallel
[ "${1:-}" = --quick ] && exit 0
echo "test.sh: fuzz targets, ${FUZZ_RUNS:-2000} executions each"
# FUZZ_SECONDS caps each target (RSPExchange's scripted stub runs ≈ 27 executions/s unoptimized).
FUZZ_OPT=${FUZZ_OPT:--Onone} FUZZ_SECONDS=${FUZZ_SECONDS:-30} Resources/fuzz.sh all "${FUZZ_RUNS:-2000}"
echo "test.sh: host suites under the thread sanitizer (Resources/tsan)"
# SMPTOP_SOURCE_ROOT: the guest ELF tests build the guest from this tree, not from Resources/tsan.
SMPTOP_SOURCE_ROOT=$(pwd) TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} swift test \
  --package-path Resources/tsan --scratch-path .build-tsan --sanitize=thread --no-parallel \
  --skip "$BOOTING|$SINGLE_THREADED_LOOPS|$EXECUTABLE"
