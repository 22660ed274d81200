#!/usr/bin/env bash
# Loads llmdrop's exports of the default model in llama.cpp and transformers and compares
# logits (and llama.cpp's KV-cache size); check_nemotron.py loads the nemotron-nas exports in
# transformers with trust_remote_code (the modeling file each export carries). Needs the
# reference venv (scripts/fixtures/setup-venv.sh); vLLM needs a GPU and is not run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
cargo build --release -q -p llmdrop-cli
"$VENV/bin/python" scripts/cross/check_engines.py
"$VENV/bin/python" scripts/cross/check_nemotron.py
