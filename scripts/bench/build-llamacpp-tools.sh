#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-bench, llama-server, llama-perplexity,
# llama-tokenize) from the llama.cpp vendored in the llama-cpp-python sdist on PyPI, for
# the peer measurements of scripts/bench and scripts/serve. Cached outside the repo:
#   $LLMDROP_CACHE/llamacpp-tools/<version>/bin/   (~20-40 minutes on 2 cores, once)
# Prints the bin directory. cmake comes from PyPI when the machine has none.
# Usage: build-llamacpp-tools.sh [VERSION]   (default 0.3.36, the reference venv's)
set -euo pipefail
VERSION="${1:-0.3.36}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
ROOT="$CACHE/llamacpp-tools/$VERSION"
BIN="$ROOT/bin"
TOOLS=(llama-bench llama-server llama-perplexity llama-tokenize)
have_all() { for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done; }
if have_all; then echo "$BIN"; exit 0; fi
mkdir -p "$ROOT"
if ! command -v cmake >/dev/null; then
  if [ ! -x "$CACHE/cmake-venv/bin/cmake" ]; then
    python3 -m venv "$CACHE/cmake-venv"
    "$CACHE/cmake-venv/bin/pip" install -q cmake ninja >&2
  fi
  export PATH="$CACHE/cmake-venv/bin:$PATH"
fi
work=$(mktemp -d "$ROOT/build.XXXXXX"); trap 'rm -rf "$work"' EXIT
# the sdist file itself, by PyPI's simple API (pip download would build its build
# dependencies, cmake among them, from source to read its metadata)
python3 - "$VERSION" "$work" <<'PY'
import hashlib, json, sys, urllib.request
version, work = sys.argv[1:3]
req = urllib.request.Request("https://pypi.org/simple/llama-cpp-python/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
name = f"llama_cpp_python-{version}.tar.gz"
sdist = next(f for f in json.load(urllib.request.urlopen(req))["files"] if f["filename"] == name)
data = urllib.request.urlopen(sdist["url"]).read()
if hashlib.sha256(data).hexdigest() != sdist["hashes"]["sha256"]:
    sys.exit(f"{name}: sha256 mismatch")
open(f"{work}/{name}", "wb").write(data)
PY
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
# native: the tools use every instruction set of the machine they are built on
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$work/build" -j "${JOBS:-$(nproc)}" --target "${TOOLS[@]}" >&2
mkdir -p "$BIN.tmp"
for t in "${TOOLS[@]}"; do cp "$work/build/bin/$t" "$BIN.tmp/"; done
rm -rf "$BIN"; mv "$BIN.tmp" "$BIN"
echo "$BIN"
