#!/usr/bin/env bash
# The test command (README quick start; .ci/run calls it): fetches the assets the
# integration tests need (cached), then runs the whole test suite.
#
#   scripts/test.sh [NEXTEST ARGS]          everything: doc tests, then every test (CI)
#   scripts/test.sh --fast [NEXTEST ARGS]   the fast group alone (tiny models, under a
#                                           minute): nextest profile `fast`, no doc tests
# The groups are defined in .config/nextest.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=false
if [ "${1:-}" = "--fast" ]; then
  fast=true
  shift
fi

scripts/fetch-assets.sh
# candle's thread pool spin-waits; on a shared CI machine one thread per process is faster.
if [ "${CI:-}" = "true" ]; then export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"; fi
if $fast; then
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: --fast selects tests with cargo-nextest (cargo install cargo-nextest)" >&2
    exit 2
  fi
  exec cargo nextest run --workspace --no-fail-fast --profile fast "$@"
fi
# doc tests first (nextest does not run them), then every unit and integration test
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
