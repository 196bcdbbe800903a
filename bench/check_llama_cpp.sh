#!/usr/bin/env bash
# Output check against llama.cpp (node-llama-cpp): the real stories260K model, converted by
# `slm quantize` to several GGUF types, must give the same prompt tokens and the same greedy
# continuation in `slm run` as in llama.cpp. Prints one line per case and "N passed, M failed".
#
# Usage: bench/check_llama_cpp.sh [SLM_EXE]   (default: build-bench-release/slm, then build/slm)
# Needs: `npm install` in bench/ (node-llama-cpp), ../shared/models/stories260K.bin + tok512.bin.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
slm="${1:-}"
if [ -z "$slm" ]; then
  for c in "$root/build-bench-release/slm" "$root/build/slm"; do
    [ -x "$c" ] && { slm="$c"; break; }
  done
fi
[ -n "$slm" ] && [ -x "$slm" ] || { echo "check: no slm executable (give its path)" >&2; exit 1; }
shared="$root/../shared/models"
[ -f "$shared/stories260K.bin" ] || { echo "check: $shared/stories260K.bin is missing" >&2; exit 1; }
[ -d "$here/node_modules/node-llama-cpp" ] || { echo "check: run 'npm install' in $here first" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prompts=("Once upon a time" "The little dog was sad because" "Lily and Ben went to the park.")
pass=0 fail=0
for type in F32 F16 Q8_0 Q4_0 Q4_K_M; do
  model="$tmp/stories-$type.gguf"
  "$slm" quantize "$shared/stories260K.bin" "$model" --tokenizer "$shared/tok512.bin" --type "$type" \
    --no-progress > /dev/null
  for prompt in "${prompts[@]}"; do
    ref="$(node "$here/llama_cpp.mjs" greedy "$model" --prompt "$prompt" -n 64 -t 1)"
    ref_ids="$(printf '%s' "$ref" | /usr/bin/python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["prompt_tokens"])))')"
    ref_text="$(printf '%s' "$ref" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')"
    ids="$(printf '%s' "$prompt" | "$slm" tokenize "$model" --add-special)"
    text="$("$slm" run "$model" -p "$prompt" -n 64 --temp 0 -t 1)"
    if [ "$ids" = "$ref_ids" ] && [ "$text" = "$ref_text" ]; then
      pass=$((pass + 1)); echo "ok    $type  \"$prompt\""
    else
      fail=$((fail + 1)); echo "FAIL  $type  \"$prompt\""
      echo "  prompt ids llama.cpp: $ref_ids"; echo "  prompt ids slm:       $ids"
      echo "  llama.cpp: $ref_text"; echo "  slm:       $text"
    fi
  done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
