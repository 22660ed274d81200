//! Multiple-choice log-likelihoods on the default model against transformers float32 with
//! lm-eval-harness's context/continuation split (scripts/fixtures/make_fixtures.py).

use llmdrop::eval::resolve;
use llmdrop::eval::{evaluate_task, score_example};
use llmdrop::progress::NoProgress;
use llmdrop::DropPlan;
use llmdrop_testkit as testkit;
use serde_json::Value;

fn spec(file: &str) -> String {
    let p = testkit::fixtures_dir().join("tasks").join(file);
    let p = p.display().to_string();
    match file {
        "mini_winogrande.jsonl" => format!("winogrande:{p}"),
        "mini_arc.jsonl" => format!("arc:{p}"),
        _ => p,
    }
}

#[test]
fn default_model_loglikelihoods_and_decisions_match_transformers() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(testkit::fixtures_dir().join("smollm2/mc.json")).unwrap(),
    )
    .unwrap();
    let (src, dec) = testkit::load(&testkit::default_model(), &DropPlan::empty()).unwrap();
    let tok = src.tokenizer().unwrap();
    let mut worst = 0f64;
    let mut compared = 0;
    for (file, rows) in r["tasks"].as_object().unwrap() {
        let tasks = resolve(&spec(file)).unwrap();
        assert_eq!(tasks.len(), 1);
        let rows = rows.as_array().unwrap();
        assert_eq!(tasks[0].examples.len(), rows.len(), "{file}");
        for (ex, want) in tasks[0].examples.iter().zip(rows) {
            let got = score_example(&dec, &tok, ex).unwrap();
            let wl: Vec<f64> = serde_json::from_value(want["loglikelihoods"].clone()).unwrap();
            for (g, w) in got.loglikelihoods.iter().zip(&wl) {
                worst = worst.max((g - w).abs());
                assert!((g - w).abs() <= 1e-3, "{file}: ll {g} vs {w}");
                compared += 1;
            }
            assert_eq!(got.gold as u64, want["gold"].as_u64().unwrap(), "{file}");
            assert_eq!(
                got.pred as u64,
                want["pred"].as_u64().unwrap(),
                "{file}: acc decision"
            );
            assert_eq!(
                got.pred_norm as u64,
                want["pred_norm"].as_u64().unwrap(),
                "{file}: acc_norm decision"
            );
        }
    }
    eprintln!("multiple choice: {compared} log-likelihoods, max |Δ| vs transformers {worst:e}");
    assert!(compared >= 60);
}

#[test]
fn default_model_accuracy_is_exactly_reproducible() {
    let (src, dec) =
        testkit::load(&testkit::default_model(), &DropPlan::new([20, 25], [])).unwrap();
    let tok = src.tokenizer().unwrap();
    let task = &resolve(&spec("mini_mc.jsonl")).unwrap()[0];
    let (a, ra) = evaluate_task(&dec, &tok, task, &mut NoProgress).unwrap();
    let (b, rb) = evaluate_task(&dec, &tok, task, &mut NoProgress).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let la: Vec<_> = ra.iter().map(|r| r.loglikelihoods.clone()).collect();
    let lb: Vec<_> = rb.iter().map(|r| r.loglikelihoods.clone()).collect();
    assert_eq!(la, lb);
    assert_eq!(a.examples, 12);
    assert!((a.chance - (8.0 / 4.0 + 4.0 / 3.0) / 12.0).abs() < 1e-12);
}
