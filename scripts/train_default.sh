#!/bin/sh
# Reproduces slm's default model from scratch on the Python documentation (Debian python3.11-doc):
# tokenizer -> dataset -> training -> GGUF export -> checks. Re-running continues where it stopped.
#
#   scripts/train_default.sh                     # the real run (see docs/TRAINING.md for timings)
#   MAX_STEPS=3 WORK=/tmp/dm scripts/train_default.sh   # a quick end-to-end check
#
# Environment (defaults in brackets):
#   SLM        the slm binary [build/slm]
#   DOCS       corpus directory [/usr/share/doc/python3.11/html]
#   WORK       working directory for tokenizer, dataset, checkpoints [runs/default-model]
#   CONFIG     training config [configs/default-model.json]
#   VOCAB      tokenizer vocabulary size [4096]
#   MAX_STEPS  override train.max_steps (a different value than an interrupted run's is refused)
#   THREADS    threads for every step [2]; a resumed training run must use the same count
#   TYPE       GGUF export type [F16]
#   OUT_MODEL  exported model [$WORK/slm-default.gguf]
set -eu

cd "$(dirname "$0")/.."
SLM=${SLM:-build/slm}
DOCS=${DOCS:-/usr/share/doc/python3.11/html}
WORK=${WORK:-runs/default-model}
CONFIG=${CONFIG:-configs/default-model.json}
VOCAB=${VOCAB:-4096}
MAX_STEPS=${MAX_STEPS:-}
THREADS=${THREADS:-2}
TYPE=${TYPE:-F16}
OUT_MODEL=${OUT_MODEL:-$WORK/slm-default.gguf}

die() { echo "train_default.sh: $*" >&2; exit 1; }
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

[ -x "$SLM" ] || die "$SLM not found: build slm first (cmake --build build) or set SLM"
[ -d "$DOCS" ] || die "$DOCS not found: install the Debian package python3.11-doc or set DOCS"
mkdir -p "$WORK"
start=$(date +%s)

step "1/5 tokenizer: byte-level BPE, $VOCAB tokens"
if [ -f "$WORK/tokenizer/tokenizer.json" ]; then
  echo "kept $WORK/tokenizer (delete it to retrain)"
else
  "$SLM" tokenizer train "$DOCS" -o "$WORK/tokenizer" --vocab-size "$VOCAB" -t "$THREADS"
fi

step "2/5 dataset: tokenize into train/val shards"
if [ -f "$WORK/data/dataset.json" ]; then
  echo "kept $WORK/data (delete it to re-tokenize)"
else
  "$SLM" data prepare "$DOCS" --tokenizer "$WORK/tokenizer" -o "$WORK/data" --val-fraction 0.01 \
    -t "$THREADS"
fi

step "3/5 train"
set -- "$CONFIG" --data "$WORK/data" --out "$WORK/train" --threads "$THREADS"
if [ -n "$MAX_STEPS" ]; then set -- "$@" --max-steps "$MAX_STEPS"; fi
if ls -d "$WORK"/train/checkpoint-* >/dev/null 2>&1; then
  echo "continuing the run in $WORK/train"
  set -- "$@" --resume
fi
"$SLM" train "$@"

# The newest complete checkpoint (a checkpoint-N directory with trainer_state.json).
ckpt=$(ls -d "$WORK"/train/checkpoint-* 2>/dev/null | grep -v '\.tmp$' |
       awk -F- '{print $NF" "$0}' | sort -n | tail -1 | cut -d' ' -f2-)
[ -n "$ckpt" ] && [ -f "$ckpt/trainer_state.json" ] || die "no checkpoint in $WORK/train"

step "4/5 export $ckpt -> $OUT_MODEL ($TYPE)"
"$SLM" export "$ckpt" "$OUT_MODEL" --type "$TYPE" -t "$THREADS"

step "5/5 checks"
bytes=$(wc -c < "$OUT_MODEL")
echo "size: $bytes bytes"
[ "$bytes" -lt 20000000 ] || die "$OUT_MODEL is $bytes bytes, over the 20 MB budget"
out=$("$SLM" run "$OUT_MODEL" -p "The Python standard library" -n 48 --temp 0 -t "$THREADS")
echo "greedy continuation: The Python standard library$out"
[ -n "$out" ] || die "the exported model generated nothing"
val=$(grep '"val_loss"' "$WORK/train/train_log.jsonl" | tail -1)
echo "last validation: $val"
echo "plot: $WORK/train/loss.png"
echo "done in $(( $(date +%s) - start )) s: $OUT_MODEL"
