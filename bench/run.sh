#!/usr/bin/env bash
# Benchmark table for slm: builds slm (Release, -march=native), writes random-weight models with
# the real shapes of SmolLM2-135M, Qwen2.5-0.5B and Llama-3.2-1B, quantizes them, runs
# `slm bench --json` on each, and prints a markdown table against the machine's measured limits
# and llama.cpp's numbers (from the issue, and optionally measured here through node-llama-cpp).
#
# Usage: bench/run.sh [options]
#   --models LIST    comma list of presets (default smollm2-135m,qwen2.5-0.5b,llama3.2-1b;
#                    short names 135m, 0.5b, 1b work too)
#   --types LIST     comma list of weight types (default F32,F16,Q8_0,Q4_0,Q4_K_M)
#   -t N             threads (default 2)      -p N  prompt tokens (default 128)
#   -n N             generated tokens (64)    -r N  timed repetitions (5)
#   --cache DIR      where models go (default bench/models; several GB, never committed)
#   --results DIR    where the JSON of each run goes (default bench/results)
#   --build DIR      build directory (default build-bench-release beside the sources)
#   --no-build       use the slm already in --build
#   --avx2-only      build with -DSLM_NATIVE=OFF (AVX2/FMA/F16C, nothing newer) rather than
#                    -march=native: on a host with AVX-512 the compiler would otherwise use its
#                    32 vector registers in the AVX2 kernels too (default build dir then
#                    build-bench-avx2)
#   --llama-cpp      also measure llama.cpp on the same files (needs `npm install` in bench/)
#   --quick          the same as --models 135m --types F32,Q8_0 -r 2
# Run it on a quiet machine: the numbers are only as good as the machine is idle (see uptime).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
models="smollm2-135m,qwen2.5-0.5b,llama3.2-1b"
types="F32,F16,Q8_0,Q4_0,Q4_K_M"
threads=2 n_prompt=128 n_gen=64 reps=5
cache="$here/models" results="$here/results" build="$root/build-bench-release"
do_build=1 llama_cpp=0 native=ON build_set=0

while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    -p) n_prompt="$2"; shift 2 ;;
    -n) n_gen="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --build) build="$2"; build_set=1; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --llama-cpp) llama_cpp=1; shift ;;
    --avx2-only) native=OFF; shift ;;
    --quick) models="135m"; types="F32,Q8_0"; reps=2; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

preset_of() {
  case "$1" in
    135m|smollm2-135m) echo smollm2-135m ;;
    0.5b|qwen2.5-0.5b) echo qwen2.5-0.5b ;;
    1b|llama3.2-1b) echo llama3.2-1b ;;
    *) echo "run.sh: unknown model '$1' (135m, 0.5b, 1b)" >&2; exit 2 ;;
  esac
}

if [ "$native" = OFF ] && [ "$build_set" = 0 ]; then build="$root/build-bench-avx2"; fi
if [ "$do_build" = 1 ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLM_NATIVE="$native" \
    -DSLM_BUILD_TESTS=OFF > "$build.cmake.log" 2>&1 || { cat "$build.cmake.log" >&2; exit 1; }
  ninja -C "$build" -j2 slm
fi
slm="$build/slm"
[ -x "$slm" ] || { echo "run.sh: $slm not found (build it or drop --no-build)" >&2; exit 1; }
mkdir -p "$cache" "$results"

echo "machine: $(nproc) CPUs, $(uptime | sed 's/.*load average/load average/')" >&2
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  echo "run.sh: warning: load average $load1: other work is running, numbers will be low" >&2
fi

# `slm quantize` is the normal path from F32 to other types; if this build lacks it, single
# types are written directly by --make-model (same shapes and type, so the same speed), and
# mixtures such as Q4_K_M are skipped.
have_quantize=0
if "$slm" quantize --help > /dev/null 2>&1; then have_quantize=1; fi

make_file() {  # preset type -> path of the model file (made if missing)
  local preset="$1" type="$2" f32="$cache/$1-F32.gguf" out="$cache/$1-$2.gguf"
  if [ ! -s "$f32" ]; then
    echo "making $f32" >&2
    "$slm" bench --make-model "$preset" "$f32" >&2
  fi
  [ "$type" = F32 ] && { echo "$f32"; return 0; }
  if [ ! -s "$out" ]; then
    if [ "$have_quantize" = 1 ]; then
      echo "quantizing $out" >&2
      "$slm" quantize "$f32" "$out" --type "$type" >&2 || return 1
    else
      case "$type" in
        F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1)
          echo "making $out directly (this slm has no quantize command)" >&2
          "$slm" bench --make-model "$preset" --type "$type" "$out" >&2 || return 1 ;;
        *) echo "run.sh: skipping $type: needs \`slm quantize\`" >&2; return 1 ;;
      esac
    fi
  fi
  echo "$out"
}

rows=()
IFS=, read -ra model_list <<< "$models"
IFS=, read -ra type_list <<< "$types"
for m in "${model_list[@]}"; do
  preset=$(preset_of "$m")
  for type in "${type_list[@]}"; do
    file=$(make_file "$preset" "$type") || continue
    json="$results/$preset-$type.json"
    echo "bench $preset $type" >&2
    # 3 s of sgemm runs for the peak: on a shared host a 1 s sample can miss every quiet moment
    # and report a low peak (which would flatter the prompt fraction).
    if ! "$slm" bench "$file" --json -p "$n_prompt" -n "$n_gen" -t "$threads" -r "$reps" \
        --gemm-seconds 3 > "$json.tmp"; then
      echo "run.sh: slm bench failed on $file" >&2
      rm -f "$json.tmp"
      continue
    fi
    mv "$json.tmp" "$json"
    ljson="-"
    if [ "$llama_cpp" = 1 ]; then
      ljson="$results/$preset-$type.llama_cpp.json"
      echo "llama.cpp $preset $type" >&2
      if ! node "$here/llama_cpp.mjs" bench "$file" -t "$threads" -p "$n_prompt" -n "$n_gen" -r "$reps" \
          > "$ljson.tmp"; then
        echo "run.sh: node-llama-cpp failed on $file (npm install in bench/?)" >&2
        rm -f "$ljson.tmp"
        ljson="-"
      else
        mv "$ljson.tmp" "$ljson"
      fi
    fi
    rows+=("$preset" "$type" "$json" "$ljson")
  done
done

[ ${#rows[@]} -gt 0 ] || { echo "run.sh: nothing was measured" >&2; exit 1; }
/usr/bin/python3 "$here/table.py" "${rows[@]}"
