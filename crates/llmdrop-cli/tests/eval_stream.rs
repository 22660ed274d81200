//! `eval --stream` and `--max-memory` through the real binary: the mode is said on stderr
//! and in the JSON, every accuracy and the perplexity are the in-memory run's (the same
//! bits), and a budget below what streaming needs is an error (exit 2) naming the bytes.

mod common;

use common::{run_in, s};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn task(file: &str) -> String {
    testkit::fixtures_dir()
        .join("tasks")
        .join(file)
        .display()
        .to_string()
}

fn eval_args(model: &str, tasks: &str, ppl: &str) -> Vec<String> {
    [
        "eval",
        "--model",
        model,
        "--tasks",
        tasks,
        "--drop-attn",
        "1",
        "--ppl-data",
        ppl,
        "--seq-len",
        "32",
        "--max-windows",
        "4",
        "--json",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn eval_stream_gives_the_in_memory_results_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = format!(
        "{},winogrande:{}",
        task("mini_mc.jsonl"),
        task("mini_winogrande.jsonl")
    );
    let ppl = common::text().display().to_string();
    for arch in ["llama", "qwen2"] {
        let model = testkit::tiny_dir(arch);
        let args = eval_args(s(&model), &tasks, &ppl);
        let held = run_in(tmp.path(), &args);
        held.assert_success().assert_stderr_contains("in-memory");
        let mut streamed_args = args.clone();
        streamed_args.push("--stream".into());
        let streamed = run_in(tmp.path(), &streamed_args);
        streamed
            .assert_success()
            .assert_stderr_contains("layer-streamed (--stream)");
        let (h, st): (Value, Value) = (held.json(), streamed.json());
        let (hc, sc) = (
            h["columns"].as_array().unwrap(),
            st["columns"].as_array().unwrap(),
        );
        assert_eq!(hc.len(), 2);
        assert_eq!(sc.len(), 2);
        for (a, b) in hc.iter().zip(sc) {
            assert_eq!(a["memory"]["mode"], "in-memory");
            assert_eq!(b["memory"]["mode"], "streamed");
            assert_eq!(b["memory"]["forced"], true);
            assert_eq!(a["plan"], b["plan"]);
            // shortest round-trip decimals: equal text, equal bits
            assert_eq!(a["tasks"], b["tasks"], "{arch}");
            assert_eq!(a["ppl"], b["ppl"], "{arch}");
        }
    }
}

#[test]
fn an_eval_budget_streaming_cannot_meet_is_an_error_naming_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let ppl = common::text().display().to_string();
    let mut args = eval_args(s(&model), &task("mini_mc.jsonl"), &ppl);
    args.extend(["--max-memory".into(), "4KiB".into()]);
    run_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("even layer-streamed")
        .assert_stderr_contains("but --max-memory (4.0 KiB) allows 4096 bytes")
        .assert_stderr_contains("one layer")
        .assert_stderr_contains("output head");
}
