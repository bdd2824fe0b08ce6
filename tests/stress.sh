#!/usr/bin/env bash
# The whole test suite N times in a row under forced garbage collection and busy cores: the conditions in which
# TorchSharp objects freed by the .NET finalizer corrupted libtorch's heap (issue: test host SIGSEGV at random).
#
#   tests/stress.sh [RUNS] [LOAD]     RUNS full-suite runs (default 10), LOAD busy processes beside them (default 1)
#
# Each run is `dotnet test Pruner-Zero.sln -c Release --no-build --blame` with DOTNET_GCgen0size=0x80000 (a gen-0
# collection every 512 KiB allocated, so finalizers run constantly) while LOAD processes keep cores busy. Prints
# one line per run and, at the end, runs / crashes / failed runs and the first test a crash happened in (from
# --blame's sequence file). Exit 1 when any run crashed or failed. Logs stay in the folder it names.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
load="${2:-1}"
logs="$(mktemp -d /tmp/pz-stress.XXXXXX)"

dotnet build Pruner-Zero.sln -c Release > "$logs/build.log" 2>&1 || { echo "stress: build failed, see $logs/build.log" >&2; exit 1; }

pids=()
for _ in $(seq "$load"); do
  ( while :; do :; done ) &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT

crashes=0
failed=0
first=""
for r in $(seq "$runs"); do
  log="$logs/run-$r.log"
  start=$SECONDS
  DOTNET_GCgen0size=0x80000 dotnet test Pruner-Zero.sln -c Release --no-build --blame \
    --results-directory "$logs/results-$r" > "$log" 2>&1
  rc=$?
  counts="$(grep -E '^(Passed|Failed)!' "$log" | sed -E 's/ - .*(PrunerZero\.[A-Za-z]+\.Tests).*/ \1/' | tr '\n' ';')"
  if grep -qiE 'test host process crashed|testhost.*exited|Test Run Aborted' "$log"; then
    crashes=$((crashes + 1))
    test="$(grep -hoE 'while executing test: [^ ]+|crashed while executing the following test[^:]*: *[^ ]+' "$log" | head -1)"
    [ -z "$test" ] && test="$(grep -rhs '<Test Name=' "$logs/results-$r" | tail -1 | sed -E 's/.*Name="([^"]+)".*/\1/')"
    [ -z "$first" ] && first="run $r: ${test:-unknown test}"
    echo "run $r: CRASH (${test:-unknown test}) after $((SECONDS - start)) s; $counts"
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    echo "run $r: FAILED (exit $rc) after $((SECONDS - start)) s; $counts"
  else
    echo "run $r: passed in $((SECONDS - start)) s; $counts"
  fi
done

echo "stress: $runs runs, $crashes crashed, $failed failed (DOTNET_GCgen0size=0x80000, $load busy process(es)); logs in $logs"
[ -n "$first" ] && echo "stress: first crash: $first"
[ "$crashes" -eq 0 ] && [ "$failed" -eq 0 ]
