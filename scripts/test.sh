#!/usr/bin/env bash
# Runs the whole test suite from a fresh checkout: installs dependencies, builds the Release
# tree and runs every test (unit, model parity against PyTorch, npm reference peers), then builds
# with clang + AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests and the
# libFuzzer targets (SLM_FUZZ_SECONDS each) under the sanitizers.
#   SLM_TEST_QUICK=1 skips the sanitizer stage.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SLM_JOBS:-$(nproc)}

scripts/setup.sh

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
echo "== release tests"
ctest --test-dir build -j"$jobs" --output-on-failure --timeout 1800

if [ "${SLM_TEST_QUICK:-0}" = 1 ]; then exit 0; fi

echo "== sanitizer build (clang, ASan + UBSan, fuzzers)"
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLM_SANITIZE=ON -DSLM_FUZZ=ON -DSLM_FUZZ_SECONDS="${SLM_FUZZ_SECONDS:-30}" >/dev/null
ninja -C build-asan -j"$jobs"
echo "== sanitizer tests and fuzzers"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure --timeout 1800
