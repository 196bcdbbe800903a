#!/usr/bin/env bash
# slm's main job on its built-in default: sets up, builds, and generates a story with the
# pretrained llama2.c model from ../shared/models (until slm ships its own default model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
scripts/build.sh >/dev/null
models=../shared/models
exec build/slm run "$models/stories260K.bin" --tokenizer "$models/tok512.bin" \
  -p "${1:-Once upon a time}" -n "${2:-256}" --temp 0 --echo --stats
