//! `score --stream` and `--max-memory` through the real binary: the mode is said on
//! stderr and in the JSON, the scores are the in-memory run's, and a budget below what
//! streaming needs is an error (exit 2) that names the bytes.

mod common;

use common::{run_in as llmdrop_in, s};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn score_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "score",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--json",
        "--samples",
        "4",
        "--seq-len",
        "32",
    ]
}

#[test]
fn stream_gives_the_in_memory_scores_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let held = llmdrop_in(tmp.path(), &score_args(s(&model), &data, "a.json"));
    held.assert_success()
        .assert_stderr_contains("scoring in-memory");
    let mut args = score_args(s(&model), &data, "b.json");
    args.push("--stream");
    let streamed = llmdrop_in(tmp.path(), &args);
    streamed
        .assert_success()
        .assert_stderr_contains("scoring layer-streamed (--stream)");
    let (h, st): (Value, Value) = (held.json(), streamed.json());
    assert_eq!(h["memory"]["mode"], "in-memory");
    assert_eq!(st["memory"]["mode"], "streamed");
    assert!(st["peak_rss_bytes"].as_u64().unwrap() > 0);
    // every similarity, as written (shortest round-trip decimals: equal text, equal bits)
    assert_eq!(st["table"], h["table"]);
}

#[test]
fn a_budget_streaming_cannot_meet_is_an_error_naming_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let mut args = score_args(s(&model), &data, "scores.json");
    args.extend(["--max-memory", "4KiB"]);
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("even layer-streamed")
        .assert_stderr_contains("but --max-memory (4.0 KiB) allows 4096 bytes")
        .assert_stderr_contains("one layer");
    assert!(!tmp.path().join("scores.json").exists());
    args.pop();
    args.push("lots");
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("`lots` is not a size");
}
