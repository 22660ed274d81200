//! `eval` and `sweep` through the real binary on tiny models and fixture task files.

mod common;

use common::reports::{self, EvalReport, SweepResults};
use common::run_in;
use llmdrop_testkit as testkit;

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
    let ppl = common::text().display().to_string();
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
    let r = run_in(tmp.path(), &args);
    r.assert_success();
    let v: EvalReport = r.json();
    let cols = &v.columns;
    assert_eq!(cols.len(), 3);
    assert_eq!(cols[0].name, "original");
    assert_eq!(cols[1].plan.attn, [1]);
    assert_eq!(cols[2].plan.mlp, [1]);
    for c in cols {
        let t = &c.tasks;
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].examples, 12);
        assert_eq!(t[1].examples, 4);
        assert_eq!(t[2].examples, 6);
        assert_eq!(c.ppl.as_ref().unwrap().windows, 2);
    }
    // the variants really differ from the original
    let nll = |i: usize| cols[i].ppl.as_ref().unwrap().nll;
    assert_ne!(nll(0), nll(1));
    let mut markdown = args[..args.len() - 1].to_vec();
    markdown.push("--markdown");
    let r = run_in(tmp.path(), &markdown);
    assert_eq!(r.code, 0);
    let md = &r.stdout;
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
        run_in(
            tmp.path(),
            &["eval", "--model", &model, "--tasks", p.to_str().unwrap()],
        )
        .assert_code(2)
        .assert_stderr_contains(want);
    }
    run_in(
        tmp.path(),
        &["eval", "--model", &model, "--tasks", "nonsense"],
    )
    .assert_code(2)
    .assert_stderr_contains("unknown task `nonsense`");
    run_in(
        tmp.path(),
        &[
            "eval",
            "--model",
            &model,
            "--tasks",
            "bigbench:no_such_task_here",
        ],
    )
    .assert_code(2)
    .assert_stderr_contains("no_such_task_here");
}

#[test]
fn sweep_is_resumable_and_writes_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama").display().to_string();
    let data = common::text().display().to_string();
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
    let r = run_in(tmp.path(), &args);
    r.assert_success();
    assert_eq!(
        r.stderr.matches("] ").count(),
        9,
        "1 baseline + 4 strategies x 2: {}",
        r.stderr
    );
    for s in ["## attn", "## mlp", "## block", "## joint"] {
        assert!(r.stdout.contains(s), "{}", r.stdout);
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
    let r = run_in(tmp.path(), &args);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stderr.matches("] ").count(),
        0,
        "nothing recomputed: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
    // other settings: everything is recomputed
    let mut other = args.to_vec();
    other.extend(["--limit", "6"]);
    let r = run_in(tmp.path(), &other);
    assert_eq!(r.code, 0);
    assert_eq!(r.stderr.matches("] ").count(), 9, "{}", r.stderr);
    let results: SweepResults = reports::read(&out.join("results.json"));
    assert_eq!(results.results["attn:2"].tasks[0].examples, 6);
}
