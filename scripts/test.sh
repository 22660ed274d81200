#!/usr/bin/env bash
# The test command (README quick start; .ci/run calls it): fetches the assets the
# integration tests need (cached), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-assets.sh
# candle's thread pool spin-waits; on a shared CI machine one thread per process is faster.
if [ "${CI:-}" = "true" ]; then export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"; fi
# doc tests first (nextest does not run them), then every unit and integration test
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
