#!/usr/bin/env bash
# Installs everything slm needs to build and test on Debian bookworm (idempotent), then the
# npm reference packages the tests compare against. Run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential cmake ninja-build pkg-config git procps
  clang libclang-rt-14-dev                 # fuzzers (libFuzzer) and sanitizer runtimes
  libgtest-dev libgmock-dev                # tests
  nlohmann-json3-dev libcli11-dev          # JSON, command line
  libpcre2-dev libutf8proc-dev             # pre-tokenizer regexes, Unicode normalization
  python3 python3-numpy python3-torch      # independent numerical reference (Debian's python3)
  chromium                                 # headless browser for the web chat page test
  libopenblas0-pthread                     # PyTorch's BLAS: the issue's training baseline (netlib is ~100x slower)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reference implementations used by the tests (pinned by tests/ref/package-lock.json).
if [ ! -d tests/ref/node_modules/@huggingface/jinja ] || [ tests/ref/package-lock.json -nt tests/ref/node_modules ]; then
  (cd tests/ref && npm ci --no-audit --no-fund --loglevel=error)
fi
# llama.cpp as the consumer of exported GGUF files (node-llama-cpp pinned by
# tests/ref-llama/package-lock.json). Only the CPU linux-x64 prebuilt binary is installed: it is a
# direct dependency there, and --omit=optional drops the GPU/other-platform builds (~85 MB
# instead of ~700 MB). `npm install` with the lock file, because `npm ci` rejects a lock that lacks
# the other platforms' optional packages; NODE_LLAMA_CPP_SKIP_DOWNLOAD keeps its postinstall from
# fetching anything.
if [ ! -d tests/ref-llama/node_modules/@node-llama-cpp/linux-x64 ] || [ tests/ref-llama/package-lock.json -nt tests/ref-llama/node_modules ]; then
  (cd tests/ref-llama && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund --loglevel=error &&
     touch node_modules)
fi
echo "setup: ok"
