#!/usr/bin/env bash
# The search's screening modes on the paper configuration (50 x 300, 128 screen windows, the embedded model), one row
# per run: wall time, forward tokens, cut children, best full perplexity, and the top-10 overlap with the exact run of
# the same seed. Writes the table to stdout; the runs stay in OUT (default /tmp/pz-search-modes).
#
#   bench/search-modes.sh [OUT] [SEEDS] [MODES]      e.g. bench/search-modes.sh /tmp/m "0 1 2" "exact 16,128 8,128"
#
# A mode is "exact" (no --stages: every screen is exact, hopeless children are stopped by the proven bound), a
# --stages list, or "fast:LIST" (--stages LIST --report-top 1: only the best is re-checked on the full split). Runs one
# search at a time with the default threads (OMP_NUM_THREADS unset: one per core), the G cache warm after the first
# run; a run folder that already holds a finished run is reused (its report is read, its wall time from the stored
# time file). PZ_BIN: the prunerzero binary to run (default: the Release build, built if missing). Needs sqlite3.
# Overlap: the final population's 10 best distinct masks (by mask fingerprint, in rank order) shared with the exact
# run's; read from search.db, so a run that re-checked fewer leaders is compared the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/pz-search-modes}"
seeds="${2:-0}"
modes="${3:-exact 16,128}"
bin="${PZ_BIN:-src/Cli/bin/Release/net10.0/prunerzero}"
[ -x "$bin" ] || dotnet build src/Cli -c Release > /dev/null
mkdir -p "$out"

leaders() {
  sqlite3 "$1/search.db" "select e.mask_fingerprint from population p join evaluations e on e.id = p.eval_id
    where p.iteration = (select max(iteration) from population) order by p.rank" | awk '!seen[$0]++' | head -10 | sort
}
best_full() {
  local best; best="$(sed -n 's/^Best (by full perplexity among the leaders): `\(.*\)`$/\1/p' "$1/report.md")"
  grep -F "\`$best\`" "$1/report.md" | head -1 | awk -F'|' '{gsub(/ /, "", $6); print $6}'
}

printf '| seed | mode | wall (s) | forward tokens | evaluations | cut | best full ppl | vs exact | top-10 overlap |\n'
printf '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for seed in $seeds; do
  for mode in $modes; do
    run="$out/s$seed-$(echo "$mode" | tr ',:' '--')"
    if [ ! -f "$run/report.md" ]; then
      rm -rf "$run"
      args=(search --run "$run" --population 50 --iterations 300 --seed "$seed")
      case "$mode" in
        exact) ;;
        fast:*) args+=(--stages "${mode#fast:}" --report-top 1) ;;
        *) args+=(--stages "$mode") ;;
      esac
      start=$(date +%s.%N)
      "$bin" "${args[@]}" > "$run.out" 2> "$run.err"
      echo "$(echo "$(date +%s.%N) - $start" | bc)" > "$run.time"
    fi
    wall=$(printf '%.0f' "$(cat "$run.time")")
    line="$(grep '^evaluations ' "$run.out")"
    evals="$(echo "$line" | awk '{print $2}')"
    cut="$(echo "$line" | sed -n 's/.*stopped early \([0-9]*\).*/\1/p')"
    tokens="$(echo "$line" | sed -n 's/.*forward tokens \([0-9,]*\).*/\1/p')"
    best="$(best_full "$run")"
    exact="$out/s$seed-exact"
    if [ -f "$exact/report.md" ]; then
      overlap="$(comm -12 <(leaders "$run") <(leaders "$exact") | wc -l)/10"
      eb="$(best_full "$exact")"
      rel="$(echo "scale=6; ($best / $eb - 1) * 100" | bc | sed 's/^\./0./; s/^-\./-0./')"
      rel="$(printf '%+.2f%%' "$rel")"
    else
      overlap="-"; rel="-"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$seed" "$mode" "$wall" "$tokens" "$evals" "$cut" "$best" "$rel" "$overlap"
  done
done
