//! Multiple-choice log-likelihoods on the default model against transformers float32 with
//! lm-eval-harness's context/continuation split (scripts/fixtures/make_fixtures.py).

use llmdrop::eval::suite::resolve;
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

/// Sharing the context's KV cache across a batch of continuations gives the same
/// log-likelihoods as scoring each (context + continuation) in a full forward pass; a
/// context longer than the model's window is cut from the left instead of failing.
#[test]
fn shared_context_scoring_equals_full_forward() {
    use candle_core::{Device, Tensor};
    use llmdrop::eval::McExample;
    use llmdrop::{Logits, NoProbe};
    let (src, dec) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::new([1], [])).unwrap();
    let tok = src.tokenizer().unwrap();
    let ex = McExample::shared_context(
        "The quick brown fox jumps over the",
        vec!["lazy dog".into(), "moon".into(), "fence, twice".into()],
        0,
    );
    let got = score_example(&dec, &tok, &ex).unwrap();
    for ((ctx, cont), ll) in ex.requests.iter().zip(&got.loglikelihoods) {
        let (c, k) = llmdrop::eval::mc::encode_pair(&tok, ctx, cont).unwrap();
        let mut all = c.clone();
        all.extend(&k);
        let ids = Tensor::new(&all[..all.len() - 1], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let rows = dec
            .forward(&ids, None, &mut NoProbe, Logits::All)
            .unwrap()
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let want: f64 = k
            .iter()
            .enumerate()
            .map(|(j, &t)| llmdrop::eval::ppl::log_softmax_at(&rows[c.len() - 1 + j], t as usize))
            .sum();
        assert!((ll - want).abs() < 1e-4, "{cont:?}: {ll} vs {want}");
    }
    // 300 bytes of context with a 256-position model: cut from the left, still scored
    let long = McExample::shared_context(&"word ".repeat(60), vec!["end".into(), "stop".into()], 0);
    let r = score_example(&dec, &tok, &long).unwrap();
    assert!(r.loglikelihoods.iter().all(|l| l.is_finite() && *l < 0.0));
}
