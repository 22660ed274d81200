//! `eval` and `sweep` through the real binary on tiny models and fixture task files.

use std::path::Path;
use std::process::Command;

use llmdrop::testkit;
use serde_json::Value;

fn llmdrop(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn task(file: &str) -> String {
    testkit::fixtures_dir()
        .join("tasks")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn eval_has_a_column_per_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("qwen2").display().to_string();
    let tasks = format!(
        "{},winogrande:{},bigbench:{}",
        task("mini_mc.jsonl"),
        task("mini_winogrande.jsonl"),
        task("mini_bigbench.json")
    );
    let plan = tmp.path().join("plan.json");
    std::fs::write(&plan, r#"{"plan": {"attn": [0], "mlp": [1]}}"#).unwrap();
    let ppl = testkit::english_text_dir()
        .join("docs/user/rst/quickstart.txt")
        .display()
        .to_string();
    let args = [
        "eval",
        "--model",
        &model,
        "--tasks",
        &tasks,
        "--drop-attn",
        "1",
        "--plan",
        plan.to_str().unwrap(),
        "--ppl-data",
        &ppl,
        "--seq-len",
        "128",
        "--max-windows",
        "2",
        "--json",
    ];
    let (code, out, err) = llmdrop(&args, tmp.path());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let cols = v["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 3);
    assert_eq!(cols[0]["name"], "original");
    assert_eq!(cols[1]["plan"]["attn"], serde_json::json!([1]));
    assert_eq!(cols[2]["plan"]["mlp"], serde_json::json!([1]));
    for c in cols {
        let t = c["tasks"].as_array().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0]["examples"], 12);
        assert_eq!(t[1]["examples"], 4);
        assert_eq!(t[2]["examples"], 6);
        assert_eq!(c["ppl"]["windows"], 2);
    }
    // the variants really differ from the original
    assert_ne!(cols[0]["ppl"]["nll"], cols[1]["ppl"]["nll"]);
    let (code, md, _) = llmdrop(
        &args[..args.len() - 1]
            .iter()
            .copied()
            .chain(["--markdown"])
            .collect::<Vec<_>>(),
        tmp.path(),
    );
    assert_eq!(code, 0);
    assert!(md.starts_with("| | original | -attn 1 |"), "{md}");
    assert!(md.contains("| perplexity |"));
}

#[test]
fn eval_bad_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama").display().to_string();
    let cases: [(&str, &str); 4] = [
        (
            "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n{\"query\": 1}\n",
            "bad.jsonl:2: `query` is not a string",
        ),
        (
            "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 5}\n",
            "bad.jsonl:1: gold index 5 is out of range",
        ),
        (
            "{\"query\": \"q\", \"choices\": [], \"gold\": 0}\n",
            "bad.jsonl:1: no choices",
        ),
        (
            "{\"query\": \"q\", \"choices\": [\"a\", \"\"], \"gold\": 0}\n",
            "bad.jsonl:1: a choice is empty",
        ),
    ];
    for (body, want) in cases {
        let p = tmp.path().join("bad.jsonl");
        std::fs::write(&p, body).unwrap();
        let (code, _, err) = llmdrop(
            &["eval", "--model", &model, "--tasks", p.to_str().unwrap()],
            tmp.path(),
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want), "stderr lacks {want:?}: {err}");
    }
    let (code, _, err) = llmdrop(
        &["eval", "--model", &model, "--tasks", "nonsense"],
        tmp.path(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown task `nonsense`"), "{err}");
    let (code, _, err) = llmdrop(
        &[
            "eval",
            "--model",
            &model,
            "--tasks",
            "bigbench:no_such_task_here",
        ],
        tmp.path(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("no_such_task_here"), "{err}");
}

#[test]
fn sweep_is_resumable_and_writes_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama").display().to_string();
    let data = testkit::english_text_dir()
        .join("docs/user/rst/quickstart.txt")
        .display()
        .to_string();
    let t = task("mini_mc.jsonl");
    let args = [
        "sweep",
        "--model",
        &model,
        "--data",
        &data,
        "--samples",
        "4",
        "--seq-len",
        "64",
        "--tasks",
        &t,
        "--max",
        "2",
        "--step",
        "1",
        "--ppl-seq-len",
        "128",
        "--out",
        "sw",
    ];
    let (code, md, err) = llmdrop(&args, tmp.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("] ").count(),
        9,
        "1 baseline + 4 strategies x 2: {err}"
    );
    for s in ["## attn", "## mlp", "## block", "## joint"] {
        assert!(md.contains(s), "{md}");
    }
    let out = tmp.path().join("sw");
    for f in [
        "scores.json",
        "results.json",
        "report.md",
        "ppl.svg",
        "accuracy.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let before = std::fs::read(out.join("results.json")).unwrap();
    let (code, _, err) = llmdrop(&args, tmp.path());
    assert_eq!(code, 0);
    assert_eq!(err.matches("] ").count(), 0, "nothing recomputed: {err}");
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
    // other settings: everything is recomputed
    let mut other = args.to_vec();
    other.extend(["--limit", "6"]);
    let (code, _, err) = llmdrop(&other, tmp.path());
    assert_eq!(code, 0);
    assert_eq!(err.matches("] ").count(), 9, "{err}");
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["results"]["attn:2"]["tasks"][0]["examples"], 6);
}
