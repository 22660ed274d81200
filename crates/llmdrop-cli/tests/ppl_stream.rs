//! `ppl --stream` and `--max-memory` through the real binary: the mode is said on stderr
//! and in the JSON, the perplexity is the in-memory run's (the same bits), and a budget
//! below what streaming needs is an error (exit 2) that names the bytes.

mod common;

use common::{run_in as llmdrop_in, s};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn ppl_args<'a>(model: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "ppl",
        "--model",
        model,
        "--data",
        data,
        "--json",
        "--seq-len",
        "32",
        "--max-windows",
        "4",
    ]
}

#[test]
fn ppl_stream_gives_the_in_memory_perplexity_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in ["llama", "gemma3"] {
        let model = testkit::tiny_dir(arch);
        let data = common::text().display().to_string();
        let held = llmdrop_in(tmp.path(), &ppl_args(s(&model), &data));
        held.assert_success()
            .assert_stderr_contains("perplexity in-memory");
        let mut args = ppl_args(s(&model), &data);
        args.extend(["--stream", "--second-half"]);
        let streamed = llmdrop_in(tmp.path(), &args);
        streamed
            .assert_success()
            .assert_stderr_contains("perplexity layer-streamed (--stream)")
            .assert_stderr_contains("4 windows through each layer at once")
            .assert_stderr_contains("the output head 256 vocabulary rows at a time");
        args.pop();
        let whole = llmdrop_in(tmp.path(), &args);
        whole.assert_success();
        let (h, st, wh): (Value, Value, Value) = (held.json(), streamed.json(), whole.json());
        assert_eq!(h["memory"]["mode"], "in-memory");
        assert_eq!(wh["memory"]["mode"], "streamed");
        assert_eq!(wh["windows_at_once"], 4);
        assert_eq!(wh["head_rows_at_once"], 256);
        assert_eq!(h.get("head_rows_at_once"), None);
        assert_eq!(wh["memory"]["spill_bytes"], Value::Null);
        assert_eq!(h.get("windows_at_once"), None);
        assert!(wh["peak_rss_bytes"].as_u64().unwrap() > 0);
        // shortest round-trip decimals: equal text, equal bits
        for k in ["ppl", "nll", "tokens_scored", "windows"] {
            assert_eq!(wh[k], h[k], "{arch} {k}");
        }
        assert_eq!(st["second_half"], true);
        assert!(st["tokens_scored"].as_u64() < h["tokens_scored"].as_u64());
    }
}

#[test]
fn a_ppl_budget_streaming_cannot_meet_is_an_error_naming_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let mut args = ppl_args(s(&model), &data);
    args.extend(["--max-memory", "4KiB"]);
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("even layer-streamed")
        .assert_stderr_contains("but --max-memory (4.0 KiB) allows 4096 bytes")
        .assert_stderr_contains("one layer")
        .assert_stderr_contains("output head");
}
