#!/usr/bin/env bash
# A/B generation speed of two slm binaries on the benchmark models, interleaved (A B A B) so both
# see the same minutes of a noisy host. Prints one markdown row per model with both medians of
# each binary and the ratio B / A.
#
# Usage: bench/ab_decode.sh SLM_A SLM_B [--cache DIR] [--types LIST] [--models LIST] [-n N] [-t N]
#   defaults: --cache bench/models, --types F16,Q8_0,Q4_0,Q4_K_M,
#             --models smollm2-135m,qwen2.5-0.5b,llama3.2-1b, -n 32, -t 2
# The models are the ones bench/run.sh writes (run it once first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 2 ] || { sed -n 2,9p "$0" >&2; exit 2; }
a="$1" b="$2"; shift 2
cache="$here/models" types="F16,Q8_0,Q4_0,Q4_K_M" models="smollm2-135m,qwen2.5-0.5b,llama3.2-1b"
n_gen=32 threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    -n) n_gen="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    *) echo "ab_decode.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for x in "$a" "$b"; do [ -x "$x" ] || { echo "ab_decode.sh: $x is not executable" >&2; exit 1; }; done

median() {  # median generation tok/s of one `slm bench` run
  "$1" bench "$2" -p 0 -n "$n_gen" -r 3 -t "$threads" --no-limits --json |
    python3 -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["gen"]["tok_s"]["median"])'
}

echo "| model | type | A tok/s (2 runs) | B tok/s (2 runs) | B / A |"
echo "|---|---|---|---|---|"
IFS=, read -r -a model_list <<< "$models"
IFS=, read -r -a type_list <<< "$types"
for m in "${model_list[@]}"; do
  for t in "${type_list[@]}"; do
    f="$cache/$m-$t.gguf"
    [ -f "$f" ] || { echo "ab_decode.sh: $f missing (run bench/run.sh first)" >&2; continue; }
    a1=$(median "$a" "$f"); b1=$(median "$b" "$f"); a2=$(median "$a" "$f"); b2=$(median "$b" "$f")
    ratio=$(python3 -c "print('%.2f' % (($b1 + $b2) / ($a1 + $a2)))")
    echo "| $m | $t | $a1, $a2 | $b1, $b2 | $ratio |"
  done
done
