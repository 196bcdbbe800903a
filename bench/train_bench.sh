#!/usr/bin/env bash
# Training speed of slm against PyTorch on identical models: for each preset, `slm train-bench`
# and bench/train_torch.py train the same Llama-style shape on the same batch (uniform random
# ids), with AdamW, clipping at 1.0 and the same thread count; prints a markdown table.
# PyTorch runs twice: stock (matrix products through the system BLAS, which on Debian is the
# netlib reference unless OpenBLAS/BLIS is installed) and with --gemm onednn (weight products
# as 1x1 convolutions, which torch runs with oneDNN), so the comparison has a fast-GEMM baseline.
#
# Usage: bench/train_bench.sh [options]
#   --presets LIST   comma list of 8m, 46m (default 8m,46m)
#   -b N  sequences per step (8)     -T N  tokens per sequence (256)     -t N  threads (2)
#   --steps N        timed steps after one warm-up step (default 5)
#   --build DIR      build directory holding slm (default build-bench-release beside the sources)
#   --no-build       use the slm already in --build
#   --torch LIST     PyTorch modes, comma list of blas, onednn (default blas,onednn)
# Run it on a quiet machine: numbers are only as good as the machine is idle (see uptime).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
presets="8m,46m" batch=8 seq=256 threads=2 steps=5
build="$root/build-bench-release" do_build=1 torch_modes="blas,onednn"
python=/usr/bin/python3

while [ $# -gt 0 ]; do
  case "$1" in
    --presets) presets="$2"; shift 2 ;;
    -b) batch="$2"; shift 2 ;;
    -T) seq="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --torch) torch_modes="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "train_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$do_build" = 1 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build" -j"$threads" slm >/dev/null
fi
slm="$build/slm"
[ -x "$slm" ] || { echo "train_bench.sh: no slm at $slm (drop --no-build)" >&2; exit 1; }
"$python" -c "import torch" 2>/dev/null || { echo "train_bench.sh: $python has no torch" >&2; exit 1; }

echo "load before: $(uptime | sed 's/.*load average: //')" >&2
rows=()
for p in ${presets//,/ }; do
  echo "== $p: slm" >&2
  s_json="$("$slm" train-bench --preset "$p" -b "$batch" -T "$seq" -t "$threads" --steps "$steps" --json)"
  for mode in ${torch_modes//,/ }; do
    echo "== $p: PyTorch ($mode)" >&2
    t_json="$(OMP_NUM_THREADS="$threads" "$python" "$here/train_torch.py" --preset "$p" -b "$batch" -T "$seq" -t "$threads" --steps "$steps" --gemm "$mode")"
    rows+=("$("$python" - "$s_json" "$t_json" <<'PY'
import json, sys
s, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
tg = t["tokens_per_s"] * s["step_gflop"] / (s["batch"] * s["seq"])
print("| %s | %.2fM | %dx%d | %d | %.0f | %.3f | %s | %.0f | %.3f | **%.2fx** | %.1f | %.0f%% | %.0f%% |" % (
    s["preset"], s["params"] / 1e6, s["batch"], s["seq"], s["threads"],
    s["tokens_per_s"], s["step_s_median"], t["gemm"], t["tokens_per_s"], t["step_s_median"],
    s["tokens_per_s"] / t["tokens_per_s"], s["gemm_peak_gflops"], 100 * s["mfu"],
    100 * tg / s["gemm_peak_gflops"]))
PY
)")
  done
done
echo "load after: $(uptime | sed 's/.*load average: //')" >&2
echo
echo "| model | params | batch | threads | slm tok/s | slm step s | PyTorch GEMM | PyTorch tok/s | PyTorch step s | speed-up | GEMM peak GFLOP/s | slm MFU | PyTorch MFU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Median of $steps timed steps after one warm-up step. MFU = (6 x matrix weights incl. the output projection x tokens + 3 x causal attention forward flops) / step time / sgemm 1024^3 peak measured by slm in the same run."
