#!/usr/bin/env bash
# lm-eval-harness through `llmdrop serve` against `llmdrop eval` (issue 15):
#   1. writes the default BIG-bench suite as lm-eval custom tasks over local JSON files, with
#      llmdrop's per-example log-likelihoods (example `lm_eval_tasks`), and runs `llmdrop eval --json`;
#   2. starts `llmdrop serve` on the default model (free loopback port);
#   3. runs `lm_eval --model local-completions` (token-id requests, tokenizer from the server:
#      tokenizer_backend=remote) on those tasks, plus one generate_until task;
#   4. compares acc / acc_norm and every log-likelihood (scripts/serve/compare.py), and runs
#      the openai Python client against the server (chat, streaming) when it is installed.
#
#   scripts/serve/lm_eval_check.sh [OUT_DIR]      LIMIT=N: the first N examples of each task
#
# Needs the reference venv ($HOME/.cache/llmdrop/refvenv, made by scripts/fixtures); installs
# lm-eval==0.4.13 into it when missing. Runs offline (HF_DATASETS_OFFLINE, HF_HUB_OFFLINE).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${LLMDROP_REFVENV:-$HOME/.cache/llmdrop/refvenv}"
out="${1:-runs/serve-lm-eval}"
limit="${LIMIT:-}"
batch="${BATCH:-16}"
mkdir -p "$out"
if ! "$venv/bin/python" -c 'import lm_eval, importlib.metadata as m; import tenacity; assert m.version("lm-eval") == "0.4.13"' 2>/dev/null; then
  "$venv/bin/pip" install -q "lm-eval[api]==0.4.13"
fi
cargo build --release -q -p llmdrop-cli
cargo build --release -q -p llmdrop-serve --example lm_eval_tasks
bin="${CARGO_TARGET_DIR:-target}/release"

echo "== llmdrop: tasks and per-example log-likelihoods" >&2
"$bin/examples/lm_eval_tasks" "$out" default $limit
"$bin/llmdrop" --json eval --tasks default ${limit:+--limit $limit} > "$out/eval.json"

# one generate_until task: the first task's questions, answer = the gold choice
first=$(ls "$out"/tasks/*similarities*.jsonl "$out"/tasks/*.jsonl 2>/dev/null | head -1)
cat > "$out/tasks/gen.yaml" <<YAML
task: llmdrop_generate_until
dataset_path: json
dataset_kwargs:
  data_files:
    test: $(realpath "$first")
test_split: test
output_type: generate_until
doc_to_text: context
doc_to_target: "{{choices[gold]}}"
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 16
  do_sample: false
  temperature: 0
filter_list:
  - name: none
    filter:
      - function: remove_whitespace
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
YAML

echo "== llmdrop serve" >&2
"$bin/llmdrop" --json serve --port 0 > "$out/serve.json" 2> "$out/serve.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q '^}' "$out/serve.json" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$out/serve.log" >&2; exit 2; }
  sleep 0.1
done
base=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$out/serve.json")
echo "serving at $base" >&2

tasks=$(ls "$out"/tasks/*.yaml | xargs -n1 basename | sed 's/\.yaml$//' | grep -v '^gen$' | sed 's/^/llmdrop_/' | paste -sd, -)
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
t0=$(date +%s)
"$venv/bin/lm_eval" --model local-completions \
  --model_args "base_url=$base/v1/completions,model=llmdrop,tokenizer_backend=remote,tokenized_requests=True,num_concurrent=1,max_retries=1" --batch_size "$batch" \
  --tasks "$tasks,llmdrop_generate_until" --include_path "$out/tasks" \
  --output_path "$out/lm_eval" --log_samples ${limit:+--limit $limit} > "$out/lm_eval.log" 2>&1 || { tail -40 "$out/lm_eval.log" >&2; exit 2; }
echo "lm_eval took $(( $(date +%s) - t0 )) s" >&2
grep -A30 '^|' "$out/lm_eval.log" | head -30 >&2 || true

if "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  "$venv/bin/python" scripts/serve/openai_client_check.py "$base/v1"
else
  echo "(openai client not installed in $venv: skipped its check)" >&2
fi
"$venv/bin/python" scripts/serve/compare.py "$out" "$bin/llmdrop"
