#!/usr/bin/env bash
# slm's main job on its built-in default: sets up, builds, and generates with slm's own default
# model (models/slm-default.gguf: 3.1M parameters trained by slm on the Python documentation,
# scripts/train_default.sh reproduces it). Offline, a few seconds.
#   scripts/demo.sh [PROMPT] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
exec build/slm run models/slm-default.gguf -p "${1:-The Python standard library}" \
  -n "${2:-200}" --temp 0.7 --seed 42 --echo --stats
