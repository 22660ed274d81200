#!/usr/bin/env python3
"""Compares lm-eval-harness run through `llmdrop serve` with `llmdrop eval` (issue 15).

    compare.py OUT_DIR [LLMDROP_BINARY]

Reads OUT_DIR/llmdrop.json (per-example log-likelihoods, from the lm_eval_tasks example),
OUT_DIR/eval.json (`llmdrop eval --json`), and lm-eval's results and samples under
OUT_DIR/lm_eval. Prints one row per task: acc / acc_norm of both, and the largest
difference between the two per-example log-likelihoods; exits 1 when an accuracy differs or
a log-likelihood differs by more than 1e-4. With LLMDROP_BINARY, also checks the first
generate_until answers against `llmdrop generate` on the same prompt (greedy, cut at the
task's stop strings).
"""
import glob
import json
import os
import subprocess
import sys

TOL = 1e-4


def main(out):
    ours = json.load(open(os.path.join(out, "llmdrop.json")))
    evald = json.load(open(os.path.join(out, "eval.json")))
    eval_scores = {t["task"]: t for t in evald["columns"][0]["tasks"]}
    results_files = sorted(glob.glob(os.path.join(out, "lm_eval", "**", "results_*.json"), recursive=True))
    if not results_files:
        sys.exit(f"no lm-eval results under {out}/lm_eval")
    results = json.load(open(results_files[-1]))["results"]
    failed = False
    rows = []
    for t in ours["tasks"]:
        name = t["task"]
        if name not in results:
            print(f"{name}: not in lm-eval's results")
            failed = True
            continue
        r = results[name]
        samples_files = sorted(glob.glob(os.path.join(os.path.dirname(results_files[-1]), f"samples_{name}_*.jsonl")))
        samples = [json.loads(l) for l in open(samples_files[-1])]
        worst, n_ll, n_bad = 0.0, 0, 0
        for s in samples:
            want = t["loglikelihoods"][s["doc_id"]]
            got = [resp[0] for resp in s["filtered_resps"]]
            assert len(got) == len(want), (name, s["doc_id"])
            for a, b in zip(got, want):
                d = abs(float(a) - float(b))
                worst = max(worst, d)
                n_ll += 1
                n_bad += d > TOL
        e = eval_scores[t["spec"]]
        acc, accn = r["acc,none"], r["acc_norm,none"]
        same = abs(acc - e["acc"]) < 1e-12 and abs(accn - e["acc_norm"]) < 1e-12
        failed |= (not same) or n_bad > 0 or len(samples) != t["examples"]
        rows.append((t["spec"], len(samples), acc, e["acc"], accn, e["acc_norm"], n_ll, worst, n_bad))
    print("| task | examples | acc lm-eval | acc llmdrop | acc_norm lm-eval | acc_norm llmdrop | log-likelihoods | max abs diff | > 1e-4 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {} | {:.2e} | {} |".format(*row))
    for t, r in results.items():
        if "exact_match,none" in r:
            print(f"generate_until {t}: exact_match {r['exact_match,none']:.4f}")
            if len(sys.argv) > 2:
                failed |= not same_generations(out, t, sys.argv[2])
    return 1 if failed else 0


def same_generations(out, task, binary, n=8):
    """lm-eval's first `n` generations equal `llmdrop generate`'s, cut at the stop strings."""
    path = sorted(glob.glob(os.path.join(out, "lm_eval", "**", f"samples_{task}_*.jsonl"), recursive=True))[-1]
    samples = [json.loads(l) for l in open(path)][:n]
    same = 0
    for s in samples:
        args = s["arguments"]["gen_args_0"]
        prompt, kw = args["arg_0"], args["arg_1"]
        r = subprocess.run([binary, "--json", "-q", "generate", "--prompt", prompt,
                            "--max-tokens", str(kw["max_gen_toks"])], capture_output=True, text=True, check=True)
        text = json.loads(r.stdout)["text"]
        for stop in kw["until"]:
            text = text.split(stop)[0]
        same += text == s["resps"][0][0]
        if text != s["resps"][0][0]:
            print(f"  doc {s['doc_id']}: lm-eval {s['resps'][0][0]!r} vs llmdrop generate {text!r}")
    print(f"generate_until: {same} of {len(samples)} answers equal to `llmdrop generate`")
    return same == len(samples)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
