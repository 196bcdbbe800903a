#!/usr/bin/env bash
# Server throughput curve: starts `slm serve MODEL` on a free loopback port with 32 slots and
# runs tests/ref/server_load.mjs (1, 2, 4, 8, 16, 32 concurrent streaming completions, every
# stream checked) REPEATS times; prints each run's aggregate generated tokens/s per client count,
# the median per count, and the 32-client / 1-client ratio of the medians.
#
# Usage: bench/serve_load.sh [MODEL [TOKENS [REPEATS]]] [-- extra slm serve flags]
#   MODEL    default ../shared/models/stories260K.bin (with --tokenizer tok512.bin)
#   TOKENS   generated tokens per request (default 128)
#   REPEATS  default 3
# Env: SLM (default build/slm). Run it on a quiet machine (see uptime).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slm=${SLM:-$root/build/slm}
model=${1:-$root/../shared/models/stories260K.bin}
tokens=${2:-128}
repeats=${3:-3}
shift $(( $# < 3 ? $# : 3 )) || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
if [ "$model" = "$root/../shared/models/stories260K.bin" ]; then
  extra+=(--tokenizer "$root/../shared/models/tok512.bin")
fi
log=$(mktemp)
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
"$slm" serve "$model" --port 0 --parallel 32 "${extra[@]}" 2>"$log" &
pid=$!
url=""
for _ in $(seq 1 600); do
  url=$(grep -o 'http://[0-9.:]*' "$log" | head -1 || true)
  if [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "serve_load.sh: server did not start" >&2; exit 1; }
echo "# $(basename "$model"), $tokens tokens per request, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
runs=()
for r in $(seq 1 "$repeats"); do
  out=$(NODE_PATH="$root/tests/ref/node_modules" node "$root/tests/ref/server_load.mjs" "$url" none "$tokens" 1,2,4,8,16,32)
  echo "$out" | grep -q "ALL OK" || { echo "$out"; echo "serve_load.sh: errors under load" >&2; exit 1; }
  runs+=("$out")
done
printf '%s\n' "${runs[@]}" | python3 -c '
import json, sys, statistics
rows = {}
for line in sys.stdin:
    if line.startswith("{"):
        j = json.loads(line); rows.setdefault(j["clients"], []).append(j["tok_s"])
print("| clients | tok/s per run | median |")
print("|---|---|---|")
for c in sorted(rows):
    print("| %d | %s | %.0f |" % (c, ", ".join("%.0f" % v for v in rows[c]), statistics.median(rows[c])))
print("32 clients / 1 client (medians): %.2fx" % (statistics.median(rows[32]) / statistics.median(rows[1])))
'
