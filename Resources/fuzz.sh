#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/ (Swift, -sanitize=fuzzer,address).
#
# Usage: Resources/fuzz.sh <Name|all> [runs]      (runs: executions per target, default 1000000)
#        FUZZ_SECONDS=N caps each target's run at N seconds (libFuzzer -max_total_time).
#        FUZZ_OPT=-Onone builds unoptimized (faster to build; the short CI budget uses it).
#
# A target is a directory Fuzz/<Name>/ holding
#   *.swift     with @_cdecl("LLVMFuzzerTestOneInput") public func fuzzOne(_:_:) -> CInt
#   sources     one line per source file or directory (relative to the repository root) that is
#               compiled into the same module as the target, so it reaches internal API;
#               a line "module <Target>" instead builds Sources/<Target> as a module of its own
#               first (in the order given) and links it: for sources that import other modules
#               (Inspector imports InspectABI, GDBRemote, QMP, ELFSymbols, QEMULaunch). A C
#               target (Sources/<Target>/include) gets a module map, and its .c files (if any)
#               a static library. A target that is not in Sources/ is taken from the resolved
#               package checkouts (.build/checkouts/*/Sources/<Target>): the lock type of the
#               host modules comes from swift-nio ("module CNIOAtomics", then
#               "module NIOConcurrencyHelpers").
#   corpus/     the committed seed corpus (small); new inputs go to .build-fuzz/corpus/<Name>.
# Builds go to .build-fuzz/ (gitignored). A crash leaves its input in .build-fuzz/crashes/ and
# fails the script; keep it as a regression test. Each run prints executions and execs/s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build-fuzz${FUZZ_OPT:+-${FUZZ_OPT#-}}"
NAME=${1:-}
RUNS=${2:-1000000}
[ -n "$NAME" ] || { echo "usage: Resources/fuzz.sh <Name|all> [runs]" >&2; exit 2; }
if [ "$NAME" = all ]; then
  NAMES=$(cd Fuzz && for d in */; do [ -f "$d/sources" ] && echo "${d%/}"; done)
else
  [ -f "Fuzz/$NAME/sources" ] || { echo "fuzz.sh: no target Fuzz/$NAME (with a sources file)" >&2; exit 2; }
  NAMES=$NAME
fi
# FUZZ_OPT: -O (default) for long runs; -Onone builds in about half the time, for short budgets.
# -wmo: one frontend per module (unoptimized, a target with the Inspector sources builds in 11 s
# instead of 36 s: without it every per-file job type-checks the whole module again).
FLAGS=(-sanitize=fuzzer,address -parse-as-library "${FUZZ_OPT:--O}" -wmo -g -D SMPTOP_FUZZ)

# build_module TARGET: Sources/TARGET as a static library plus .swiftmodule in $OUT/modules.
build_module() {
  local target=$1 dir="$ROOT/Sources/$1" extra=()
  if [ ! -d "$dir" ]; then
    [ -d "$ROOT/.build/checkouts" ] || swift package resolve > /dev/null
    dir=$(find "$ROOT"/.build/checkouts/*/Sources -maxdepth 1 -name "$target" -type d | head -1)
    [ -n "$dir" ] || { echo "fuzz.sh: no module $target in Sources/ or the package checkouts" >&2; exit 2; }
    # As SwiftPM builds it: `package` declarations need a package name (swift-nio also turns on
    # the experimental Lifetimes feature for all its targets).
    extra=(-package-name "$(basename "$(dirname "$(dirname "$dir")")")" -enable-experimental-feature Lifetimes)
  fi
  mkdir -p "$OUT/modules" "$OUT/lib"
  if [ -d "$dir/include" ]; then
    # A C module: a module map over its headers, and its C files (if any) as a static library.
    mkdir -p "$OUT/modules/$target"
    { echo "module $target {"; for h in "$dir"/include/*.h; do echo "  header \"$h\""; done; echo "  export *"; echo "}"; } \
      > "$OUT/modules/$target/module.modulemap"
    local cfiles=() objects=()
    while IFS= read -r f; do cfiles+=("$f"); done < <(find "$dir" -name '*.c' | sort)
    if [ ${#cfiles[@]} -gt 0 ] && [ ! -f "$OUT/lib/lib$target.a" ]; then
      for f in "${cfiles[@]}"; do
        clang -c -O1 -fPIC -I "$dir/include" "$f" -o "$OUT/lib/$target-$(basename "$f" .c).o"
        objects+=("$OUT/lib/$target-$(basename "$f" .c).o")
      done
      ar rcs "$OUT/lib/lib$target.a" "${objects[@]}"
    fi
    return
  fi
  local stamp="$OUT/lib/lib$target.a"
  if [ -f "$stamp" ] && [ -z "$(find "$dir" -name '*.swift' -newer "$stamp" | head -1)" ]; then return; fi
  echo "fuzz.sh: building module $target"
  swiftc "${FLAGS[@]}" ${extra[@]+"${extra[@]}"} -module-name "$target" -emit-module -emit-module-path "$OUT/modules/$target.swiftmodule" \
    -emit-library -static -o "$stamp" -I "$OUT/modules" $(for m in "$OUT"/modules/*/; do [ -d "$m" ] && echo -I "$m"; done) \
    $(find "$dir" -name '*.swift' | sort) 2> >(grep -v "Cannot export local symbol" >&2)
}

status=0
for name in $NAMES; do
  dir="Fuzz/$name"
  sources=()
  libs=()
  includes=()
  while read -r line; do
    line=${line%%#*}
    [ -n "${line// }" ] || continue
    if [[ $line == module\ * ]]; then
      module=${line#module }
      build_module "$module"
      includes=(-I "$OUT/modules")
      [ -f "$OUT/lib/lib$module.a" ] && libs+=("$OUT/lib/lib$module.a")
    elif [ -d "$line" ]; then
      while IFS= read -r f; do sources+=("$f"); done < <(find "$line" -name '*.swift' | sort)
    else
      sources+=("$line")
    fi
  done < "$dir/sources"
  bin="$OUT/bin/Fuzz$name"
  mkdir -p "$OUT/bin" "$OUT/corpus/$name" "$OUT/crashes"
  stale=yes
  if [ -x "$bin" ] && [ -z "$(find "$dir" "${sources[@]}" "${libs[@]}" -newer "$bin" 2>/dev/null | head -1)" ]; then
    stale=no
  fi
  if [ $stale = yes ]; then
    echo "fuzz.sh: building Fuzz$name"
    # Only a target that names modules sees them (all of them: one directory). Shared test
    # files tell the fuzz build from the test build by `SMPTOP_FUZZ`, not by `canImport`.
    if [ ${#includes[@]} -gt 0 ]; then
      for m in "$OUT"/modules/*/; do [ -d "$m" ] && includes+=(-I "$m"); done
    fi
    # Libraries go to the linker dependents first (the sources file lists dependencies first).
    linked=()
    for ((i = ${#libs[@]} - 1; i >= 0; i--)); do linked+=("${libs[i]}"); done
    swiftc "${FLAGS[@]}" -module-name "Fuzz$name" ${includes[@]+"${includes[@]}"} \
      "$dir"/*.swift "${sources[@]}" ${linked[@]+"${linked[@]}"} -o "$bin" 2> >(grep -v "Cannot export local symbol" >&2)
  fi
  echo "fuzz.sh: running Fuzz$name for $RUNS executions"
  log="$OUT/Fuzz$name.log"
  # symbolize=0: a crashing run once hung in its report; timeout bounds the whole run.
  if ASAN_OPTIONS=symbolize=0:detect_leaks=0 timeout "${FUZZ_TIMEOUT:-3600}" "$bin" -runs="$RUNS" -max_len=65536 \
    -print_final_stats=1 -max_total_time="${FUZZ_SECONDS:-0}" -artifact_prefix="$OUT/crashes/$name-" "$OUT/corpus/$name" "$dir/corpus" > "$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "fuzz.sh: Fuzz$name ok: ${execs:-?} executions, ${rate:-?} execs/s, corpus $(ls "$OUT/corpus/$name" | wc -l) inputs"
  else
    echo "fuzz.sh: Fuzz$name FAILED (log: $log, inputs: $OUT/crashes/$name-*)"
    grep -E "ERROR|Fatal error|==[0-9]+==|SUMMARY" "$log" | head -5 || true
    status=1
  fi
done
exit $status
