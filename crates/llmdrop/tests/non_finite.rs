//! NaN and infinity in results: non-finite results say so; a non-finite similarity never
//! makes a module look redundant; `scores.json` gives back every value it holds. Non-finite
//! weights at load: non_finite_weights.rs.

use std::path::Path;

use candle_core::{DType, Device};
use llmdrop::eval::{evaluate_task, perplexity, McExample, PplOptions, Task};
use llmdrop::progress::NoProgress;
use llmdrop::report::SCORES_SCHEMA;
use llmdrop::report::{ScoreReport, ScoreSettings};
use llmdrop::score::{score, ScoreOptions, ScoreTable};
use llmdrop::strategy::{select, SelectOptions, Strategy};
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};

/// The tiny llama whose layer-0 MLP output overflows f32: finite weights, non-finite
/// hidden states from layer 0's MLP on.
fn overflowing(dir: &Path) {
    copy_hf_dir_with(&testkit::tiny_dir("llama"), dir, |n, _, mut d| {
        if n == "model.layers.0.mlp.down_proj.weight" {
            d.iter_mut().for_each(|x| *x = 3e38)
        }
        Some(d)
    })
    .unwrap();
}

#[test]
fn non_finite_results_are_returned_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("overflow");
    overflowing(&dir);
    let src = ModelSource::open(&dir).unwrap();
    let dec = src
        .load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)
        .unwrap();
    let ids: Vec<u32> = (0..64).map(|i| (i * 7 % 250) as u32).collect();
    let opts = PplOptions {
        seq_len: 16,
        max_windows: None,
        second_half: false,
        bos: None,
    };
    let r = perplexity(&dec, &ids, &opts, &mut NoProgress).unwrap();
    assert!(!r.ppl.is_finite() && !r.is_finite(), "ppl {}", r.ppl);
    let why = r.non_finite().expect("a reason");
    assert!(why.contains("perplexity is NaN"), "{why}");
    // the healthy model's result is finite and has no reason
    let (_, good) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::empty()).unwrap();
    let ok = perplexity(&good, &ids, &opts, &mut NoProgress).unwrap();
    assert!(ok.is_finite() && ok.non_finite().is_none(), "{ok:?}");

    // accuracy: every prediction is argmax over NaN log-likelihoods
    let tok = src.tokenizer().unwrap();
    let ex = |gold: usize| McExample {
        requests: vec![
            ("The sky is".into(), " blue".into()),
            ("The sky is".into(), " green".into()),
        ],
        choices: vec!["blue".into(), "green".into()],
        gold,
    };
    let task = Task {
        name: "sky".into(),
        examples: vec![ex(0), ex(1), ex(0)],
    };
    let (s, results) = evaluate_task(&dec, &tok, &task, &mut NoProgress).unwrap();
    assert!(results.iter().all(|r| !r.is_finite()));
    assert_eq!(s.non_finite_examples, 3);
    assert!(!s.is_finite());
    let why = s.non_finite().expect("a reason");
    assert!(why.contains("task sky: 3 of 3 examples"), "{why}");
    let (s, _) = evaluate_task(&good, &tok, &task, &mut NoProgress).unwrap();
    assert!(s.is_finite() && s.non_finite().is_none() && s.non_finite_examples == 0);

    // the report column gathers both
    let col = llmdrop::report::ModelColumn {
        name: "overflow".into(),
        model: dir.display().to_string(),
        plan: DropPlan::empty(),
        tasks: vec![s.clone()],
        ppl: Some(r.clone()),
        seconds: 1.0,
        memory: None,
    };
    let why = col.non_finite().expect("the NaN perplexity");
    assert!(why.starts_with("overflow: perplexity is NaN"), "{why}");
    // and a results file (sweep) holding a NaN perplexity reads back
    let text = serde_json::to_string(&col).unwrap();
    let back: llmdrop::report::ModelColumn = serde_json::from_str(&text).unwrap();
    assert!(back.ppl.unwrap().ppl.is_nan());
}

#[test]
fn a_layer_with_a_non_finite_similarity_is_never_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("overflow");
    overflowing(&dir);
    let (_, dec) = testkit::load_scorer(&dir).unwrap();
    let blocks: Vec<Vec<u32>> = (0..2)
        .map(|b| (0..24).map(|i| ((i * 13 + b * 5) % 250) as u32).collect())
        .collect();
    let t = score(&dec, &blocks, &ScoreOptions::default(), &mut NoProgress).unwrap();
    // only attention 0 sees finite hidden states on both sides
    assert!(t.attn[0].is_finite(), "{t:?}");
    assert!(!t.mlp[0].is_finite() && !t.block[0].is_finite(), "{t:?}");
    for i in 1..3 {
        assert!(!t.attn[i].is_finite() && !t.mlp[i].is_finite(), "{t:?}");
    }
    let o = |n| SelectOptions {
        n,
        keep_first: 0,
        keep_last: 0,
    };
    assert_eq!(
        select(&t, Strategy::Joint, &o(1)).unwrap(),
        DropPlan::new([0], [])
    );
    assert_eq!(
        select(&t, Strategy::Attn, &o(1)).unwrap(),
        DropPlan::new([0], [])
    );
    for (s, n) in [
        (Strategy::Attn, 2),
        (Strategy::Mlp, 1),
        (Strategy::Block, 1),
        (Strategy::Joint, 2),
        (Strategy::Consecutive, 1),
    ] {
        let e = select(&t, s, &o(n)).unwrap_err().to_string();
        assert!(
            e.contains("not finite") || e.contains("finite similarity"),
            "{s}: {e}"
        );
    }
    assert_eq!(ScoreTable::ranks(&t.attn)[0], 1);
}

fn report(table: ScoreTable) -> ScoreReport {
    ScoreReport {
        schema_version: SCORES_SCHEMA,
        llmdrop_version: "test".into(),
        model_path: "m".into(),
        model_sha256: "a".into(),
        data_path: "d".into(),
        data_sha256: "b".into(),
        settings: ScoreSettings {
            samples: 1,
            seq_len: 8,
            shuffle: false,
            seed: 0,
            residual: true,
            dtype: "f32".into(),
        },
        threads: 1,
        seconds: f64::NAN,
        tokens_per_sec: f64::INFINITY,
        gflops_per_sec: 1.25,
        peak_rss_bytes: Some(1 << 20),
        memory: None,
        table,
    }
}

/// Equal as numbers, or both NaN.
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

#[test]
fn scores_json_gives_back_every_value_it_holds() {
    let nan = f64::NAN;
    let table = ScoreTable {
        num_layers: 3,
        tokens: 10,
        residual: true,
        block: vec![0.5, nan, f64::INFINITY],
        attn: vec![f64::NEG_INFINITY, 0.1 + 0.2, 1.0],
        mlp: vec![1.0 / 3.0, -nan, f64::MIN_POSITIVE],
        consecutive: Some(vec![
            vec![0.3, nan, 0.1],
            vec![f64::INFINITY, 0.2],
            vec![-0.0],
        ]),
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("scores.json");
    report(table.clone())
        .write(&path, &llmdrop::dest::Inputs::new())
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for s in [
        r#""NaN""#,
        r#""inf""#,
        r#""-inf""#,
        "0.30000000000000004",
        "1.25",
    ] {
        assert!(text.contains(s), "{s} missing from {text}");
    }
    assert!(!text.contains("null"), "{text}");
    let back = ScoreReport::read(&path).unwrap();
    let t = &back.table;
    assert!(same(&t.block, &table.block) && same(&t.attn, &table.attn));
    assert!(same(&t.mlp, &table.mlp));
    for (a, b) in t
        .consecutive
        .iter()
        .flatten()
        .zip(table.consecutive.iter().flatten())
    {
        assert!(same(a, b), "{a:?} vs {b:?}");
    }
    // finite values are the same bits (shortest round-trip printing), -0.0 included
    assert_eq!(t.attn[1].to_bits(), (0.1f64 + 0.2).to_bits());
    assert_eq!(
        t.consecutive.as_ref().unwrap()[2][0].to_bits(),
        (-0.0f64).to_bits()
    );
    assert!(back.seconds.is_nan() && back.tokens_per_sec == f64::INFINITY);
    assert_eq!(back.gflops_per_sec, 1.25);

    // a file from before: `null` where a value was not finite, no gflops; still reads
    let old = text
        .replace(r#""NaN""#, "null")
        .replace(r#""inf""#, "null")
        .replace(r#""-inf""#, "null")
        .replace("\"gflops_per_sec\": 1.25,", "");
    let old_path = tmp.path().join("old.json");
    std::fs::write(&old_path, old).unwrap();
    let back = ScoreReport::read(&old_path).unwrap();
    assert!(back.table.block[1].is_nan() && back.table.block[2].is_nan());
    assert_eq!(back.gflops_per_sec, 0.0);

    // a table missing values is refused, not a panic later
    let short = text.replacen("0.5,", "", 1);
    let short_path = tmp.path().join("short.json");
    std::fs::write(&short_path, short).unwrap();
    let e = ScoreReport::read(&short_path).unwrap_err().to_string();
    assert!(e.contains("`block` has 2 values for 3 layers"), "{e}");
    // and an unknown string is an error naming what is expected
    let bad_path = tmp.path().join("bad.json");
    std::fs::write(&bad_path, text.replacen(r#""NaN""#, r#""nope""#, 1)).unwrap();
    let e = ScoreReport::read(&bad_path).unwrap_err().to_string();
    assert!(e.contains("not a scores file"), "{e}");
}

#[test]
fn a_long_maximum_position_costs_nothing_and_gives_the_same_logits() {
    // 2^40 positions used to mean a 32 TiB RoPE table at load
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("long");
    copy_hf_dir_with(&testkit::tiny_dir("llama"), &dir, |_, _, d| Some(d)).unwrap();
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["max_position_embeddings"] = (1u64 << 40).into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let start = std::time::Instant::now();
    let (_, long) = testkit::load(&dir, &DropPlan::empty()).unwrap();
    assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
    let (_, short) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::empty()).unwrap();
    let ids: Vec<Vec<u32>> = vec![(0..40).map(|i| (i * 11 % 250) as u32).collect(); 2];
    let a = testkit::logits(&long, &ids).unwrap();
    let b = testkit::logits(&short, &ids).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    // positions past the maximum stay an error, not a panic
    cfg["max_position_embeddings"] = 8.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let (_, tiny) = testkit::load(&dir, &DropPlan::empty()).unwrap();
    let e = testkit::logits(&tiny, &[vec![1u32; 9]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceed the model's maximum of 8"), "{e}");
    testkit::logits(&tiny, &[vec![1u32; 8]]).unwrap();
}
