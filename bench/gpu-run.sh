#!/usr/bin/env bash
# Runs the self-contained kernel bench (bench/publish/pz-bench, see bench/README.md) on a GPU machine:
# the CPU suite (a, c) and the ILGPU CUDA suite, all LLaMA-7B shapes and the four metrics unless options
# say otherwise. No .NET needed on the machine. Results go to $OUT (if set) or bench/gpu-results:
#   RESULTS-gpu.md (the table), pz-bench.log (full console log), nvidia-smi.txt, artifacts.tar.gz
#   (BenchmarkDotNet CSV/JSON/markdown). At most 4 files, so they fit a device run's $OUT limits.
# Usage: bench/gpu-run.sh [pz-bench options, e.g. --suites gpu --iterations 3]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${PZ_BENCH_BIN:-$here/publish/pz-bench}"
out="${OUT:-$here/gpu-results}"
if [[ ! -x "$bin" ]]; then
  echo "error: $bin not found; publish it first (from the repository root):" >&2
  echo "  dotnet publish bench/PrunerZero.Bench -c Release -r linux-x64 --self-contained -p:PublishTrimmed=false -o bench/publish" >&2
  exit 2
fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The single-file bundle extracts its native libraries (ILGPU needs none; BenchmarkDotNet's are unused) here.
export DOTNET_BUNDLE_EXTRACT_BASE_DIR="$work/extract"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
{ nvidia-smi || echo "nvidia-smi not available"; } >"$out/nvidia-smi.txt" 2>&1
status=0
"$bin" --suites cpu,gpu --out "$out/RESULTS-gpu.md" --artifacts "$work/artifacts" "$@" 2>&1 | tee "$out/pz-bench.log" || status=$?
[[ -d "$work/artifacts" ]] && tar -czf "$out/artifacts.tar.gz" -C "$work" artifacts
echo "results in $out (exit $status)"
exit "$status"
