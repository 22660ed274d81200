#!/usr/bin/env bash
# Loads llmdrop's hf / hf-llmdrop exports of Gemma-3-270M in transformers (CPU, float32) and
# compares logits and tokenizer ids with llmdrop's. Needs the reference venv
# (scripts/fixtures/setup-venv.sh) and the Gemma GGUF (scripts/fetch-assets.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
cargo build --release -q -p llmdrop-cli
LLMDROP_BIN="${CARGO_TARGET_DIR:-target}/release/llmdrop" "$VENV/bin/python" scripts/cross/check_gemma.py
LLMDROP_BIN="${CARGO_TARGET_DIR:-target}/release/llmdrop" "$VENV/bin/python" scripts/cross/check_gemma_gguf.py
