//! `score` and `drop` through the real binary on tiny models and real English text.

mod common;

use std::path::Path;

use common::reports::{self, DropReport, ExportedConfig, GenerateReport, ScoreReport};
use common::{run_in as llmdrop_in, s};
use llmdrop::DropPlan;
use llmdrop_testkit as testkit;

fn text() -> String {
    common::text().display().to_string()
}

const CALIB: [&str; 4] = ["--samples", "4", "--seq-len", "64"];

#[test]
fn score_writes_json_table_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = text();
    let mut args = vec![
        "score",
        "--model",
        s(&model),
        "--data",
        &data,
        "--json",
        "--plot",
        "plots",
    ];
    args.extend(CALIB);
    let r = llmdrop_in(tmp.path(), &args);
    r.assert_success();
    let v: ScoreReport = r.json();
    assert_eq!(v.schema_version, 1);
    assert_eq!(v.table.num_layers, 3);
    assert_eq!(v.table.tokens, 256);
    assert_eq!(v.table.attn.len(), 3);
    assert_eq!(v.table.consecutive[0].len(), 3);
    let file: ScoreReport = reports::read(&tmp.path().join("scores.json"));
    assert_eq!(file.table, v.table);
    for p in ["plots/similarity.svg", "plots/consecutive.svg"] {
        let svg = std::fs::read_to_string(tmp.path().join(p)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{p}");
    }
}

#[test]
fn drop_writes_a_pruned_model_that_reloads_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("qwen3");
    let data = text();
    let mut args = vec![
        "drop",
        "--model",
        s(&model),
        "--data",
        &data,
        "--strategy",
        "joint",
        "-n",
        "2",
        "--out",
        "pruned",
        "--json",
    ];
    args.extend(CALIB);
    let r = llmdrop_in(tmp.path(), &args);
    r.assert_success();
    let v: DropReport = r.json();
    let plan = v.plan;
    assert_eq!(plan.attn.len() + plan.mlp.len(), 2);
    assert_eq!(v.reload_max_abs_diff, 0.0);

    let out = tmp.path().join("pruned");
    let cfg: ExportedConfig = reports::read(&out.join("config.json"));
    // (as JSON writes the plan's sets: ascending)
    let listed = |set: &std::collections::BTreeSet<usize>| set.iter().copied().collect::<Vec<_>>();
    assert_eq!(cfg.drop_attn_list, listed(&plan.attn));
    assert_eq!(cfg.drop_mlp_list, listed(&plan.mlp));
    assert_eq!(cfg.model_type, "qwen3");
    // the dropped modules' weights are gone, everything else is there
    let src = llmdrop::ModelSource::open(&out).unwrap();
    let names: Vec<String> = src
        .weights()
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for &i in &plan.attn {
        assert!(!names
            .iter()
            .any(|n| n.starts_with(&format!("model.layers.{i}.self_attn."))));
        assert!(!names.contains(&format!("model.layers.{i}.input_layernorm.weight")));
    }
    for &i in &plan.mlp {
        assert!(!names
            .iter()
            .any(|n| n.starts_with(&format!("model.layers.{i}.mlp."))));
    }
    assert_eq!(src.stored_plan(), &plan);
    // reloaded with the plan recovered from config.json = original model with the plan
    let ids = vec![(0..24).map(|i| (i * 13 + 1) % 256).collect::<Vec<u32>>()];
    let (_, pruned) = testkit::load(&out, &DropPlan::empty()).unwrap();
    let (_, reference) = testkit::load(&model, &plan).unwrap();
    assert_eq!(
        testkit::logits(&pruned, &ids).unwrap(),
        testkit::logits(&reference, &ids).unwrap()
    );
    // and it runs in the CLI
    let r = llmdrop_in(
        tmp.path(),
        &[
            "generate",
            "--model",
            s(&out),
            "--prompt",
            "Hello",
            "--max-tokens",
            "4",
            "--json",
        ],
    );
    r.assert_success();
    let g: GenerateReport = r.json();
    assert_eq!(g.tokens.len(), 4);
}

#[test]
fn cached_scores_are_reused_only_for_the_same_model_data_and_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = text();
    let other = tmp.path().join("other.txt");
    std::fs::write(
        &other,
        std::fs::read_to_string(&data)
            .unwrap()
            .replace("text", "prose"),
    )
    .unwrap();
    let run = |model: &str, data: &str, out: &str, extra: &[&str]| {
        let m = testkit::tiny_dir(model);
        let mut args = vec![
            "drop",
            "--model",
            s(&m),
            "--data",
            data,
            "--strategy",
            "attn",
            "-n",
            "1",
            "--scores",
            "s.json",
            "--out",
            out,
        ];
        args.extend(CALIB);
        args.extend(extra);
        let r = llmdrop_in(tmp.path(), &args);
        r.assert_success();
        let rep: ScoreReport = reports::read(&tmp.path().join("s.json"));
        (r.stderr, rep.model_sha256, rep.data_sha256)
    };
    let (e1, m1, d1) = run("llama", &data, "a", &[]);
    assert!(!e1.contains("reusing"), "{e1}");
    let (e2, m2, _) = run("llama", &data, "b", &[]);
    assert!(e2.contains("reusing scores"), "{e2}");
    assert_eq!(m1, m2);
    let (e3, m3, _) = run("mistral", &data, "c", &[]);
    assert!(
        e3.contains("scoring again") && !e3.contains("reusing"),
        "{e3}"
    );
    assert_ne!(m3, m1);
    let (e4, _, d4) = run("mistral", s(&other), "d", &[]);
    assert!(e4.contains("scoring again"), "{e4}");
    assert_ne!(d4, d1);
    let (e5, _, _) = run("mistral", s(&other), "e", &["--no-residual"]);
    assert!(e5.contains("scoring again"), "{e5}");
}

#[test]
fn jsonl_calibration_with_a_custom_field() {
    let tmp = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(text()).unwrap();
    let lines: Vec<String> = body
        .split("\n\n")
        .map(|p| serde_json::json!({"content": p}).to_string())
        .collect();
    let jsonl = tmp.path().join("docs.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let model = testkit::tiny_dir("llama");
    let mut args = vec![
        "score",
        "--model",
        s(&model),
        "--data",
        s(&jsonl),
        "--field",
        "content",
        "--json",
    ];
    args.extend(CALIB);
    llmdrop_in(tmp.path(), &args).assert_success();
    let mut args = vec!["score", "--model", s(&model), "--data", s(&jsonl), "--json"];
    args.extend(CALIB);
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("docs.jsonl:1: no string field `text`");
}

#[track_caller]
fn expect_error(args: &[&str], cwd: &Path, want: &str) {
    llmdrop_in(cwd, args)
        .assert_error()
        .assert_stderr_contains(want);
}

#[test]
fn bad_score_and_drop_input() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let m = s(&model);
    let data = text();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "Too short for one block.").unwrap();
    expect_error(
        &["score", "--model", m, "--data", s(&empty)],
        tmp.path(),
        "holds no text",
    );
    expect_error(
        &[
            "score",
            "--model",
            m,
            "--data",
            s(&short),
            "--seq-len",
            "64",
        ],
        tmp.path(),
        "fewer than one block of 64",
    );
    expect_error(
        &[
            "score",
            "--model",
            m,
            "--data",
            &data,
            "--samples",
            "1000",
            "--seq-len",
            "64",
        ],
        tmp.path(),
        "1000 requested",
    );
    let drop = |extra: &[&str]| {
        let mut a = vec![
            "drop",
            "--data",
            data.as_str(),
            "--samples",
            "2",
            "--seq-len",
            "32",
        ];
        if !extra.contains(&"--model") {
            a.extend(["--model", m]);
        }
        a.extend(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str], want: &str| {
        let a = drop(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        expect_error(&a, tmp.path(), want);
    };
    run(
        &["--strategy", "attn", "-n", "4", "--out", "x"],
        "only 3 candidates",
    );
    run(
        &[
            "--strategy",
            "attn",
            "-n",
            "2",
            "--keep-first",
            "2",
            "--out",
            "x",
        ],
        "only 1 candidates",
    );
    run(
        &["--strategy", "heads", "-n", "1", "--out", "x"],
        "invalid value 'heads' for '--strategy",
    );
    assert!(
        !tmp.path().join("x").exists(),
        "nothing may be written on error"
    );

    // output = the model directory (or inside it): refused, the model untouched
    let copy = tmp.path().join("model");
    common::copy_tiny("llama", &copy);
    let before = listing(&copy);
    run(
        &[
            "--model",
            s(&copy),
            "--strategy",
            "attn",
            "-n",
            "1",
            "--out",
            s(&copy),
        ],
        "output refused: is the model",
    );
    run(
        &[
            "--model",
            s(&copy),
            "--strategy",
            "attn",
            "-n",
            "1",
            "--out",
            &format!("{}/sub", s(&copy)),
        ],
        "output refused: lies inside the model",
    );
    assert_eq!(listing(&copy), before);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.contains(".tmp-").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                llmdrop::io::sha256_file(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Issue 16: `drop` on Gemma 3 runs end to end with its default format (hf-llmdrop): the
/// written model reloads as the pruned one, with LLM-Drop's lists and every layer's kind.
#[test]
fn issue16_drop_on_gemma3_writes_a_model_that_reloads_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("gemma3");
    let data = text();
    let mut args = vec![
        "drop",
        "--model",
        s(&model),
        "--data",
        &data,
        "--strategy",
        "joint",
        "-n",
        "3",
        "--out",
        "pruned",
        "--json",
    ];
    args.extend(CALIB);
    let r = llmdrop_in(tmp.path(), &args);
    r.assert_success();
    let v: DropReport = r.json();
    assert_eq!(v.plan.attn.len() + v.plan.mlp.len(), 3);
    assert_eq!(v.reload_max_abs_diff, 0.0);
    let out = tmp.path().join("pruned");
    let cfg: ExportedConfig = reports::read(&out.join("config.json"));
    assert_eq!(cfg.model_type, "gemma3_text");
    let listed = |set: &std::collections::BTreeSet<usize>| set.iter().copied().collect::<Vec<_>>();
    assert_eq!(cfg.drop_attn_list, listed(&v.plan.attn));
    assert_eq!(cfg.drop_mlp_list, listed(&v.plan.mlp));
    let raw: serde_json::Value = reports::read(&out.join("config.json"));
    let want: serde_json::Value = reports::read(&testkit::tiny_dir("gemma3").join("config.json"));
    assert_eq!(raw["layer_types"], want["layer_types"]);
    let src = llmdrop::ModelSource::open(&out).unwrap();
    assert_eq!(src.stored_plan(), &v.plan);
}
