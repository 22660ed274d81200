//! NaN and infinity: non-finite weights are an error at load naming the file and tensor;
//! non-finite results say so; a non-finite similarity never makes a module look redundant;
//! `scores.json` gives back every value it holds.

use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::{DType, Device};
use llmdrop::eval::{evaluate_task, perplexity, McExample, PplOptions, Task};
use llmdrop::progress::NoProgress;
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::report::SCORES_SCHEMA;
use llmdrop::report::{ScoreReport, ScoreSettings};
use llmdrop::score::{score, ScoreOptions, ScoreTable};
use llmdrop::strategy::{select, SelectOptions, Strategy};
use llmdrop::{DropPlan, Error, ModelSource};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};

const PRECISIONS: [Precision; 7] = [
    Precision::Float(DType::F32),
    Precision::Float(DType::BF16),
    Precision::Float(DType::F16),
    Precision::Quant(QuantMode::Q8_0),
    Precision::Quant(QuantMode::Q4_1),
    Precision::Quant(QuantMode::Q4K),
    Precision::Quant(QuantMode::Native),
];

/// A copy of the tiny llama in `dir` with `f` applied to tensor `name`.
fn tiny_with(dir: &Path, name: &str, f: impl Fn(&mut Vec<f32>)) {
    copy_hf_dir_with(&testkit::tiny_dir("llama"), dir, |n, _, mut d| {
        if n == name {
            f(&mut d);
        }
        Some(d)
    })
    .unwrap();
}

fn load(path: &Path, p: Precision) -> llmdrop::Result<llmdrop::Decoder> {
    ModelSource::open(path)?.load_decoder(&DropPlan::empty(), p, &Device::Cpu)
}

/// The (file, tensor, reason) of a load error, which must be a BadTensor.
fn bad_tensor(e: Error) -> (PathBuf, String, String) {
    match e {
        Error::BadTensor { path, name, reason } => (path, name, reason),
        other => panic!("expected a BadTensor error, got: {other}"),
    }
}

#[test]
fn non_finite_weights_are_an_error_at_load_naming_file_and_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    // (tensor, flat index, value, where the message puts it in f32)
    let cases = [
        // [64, 64]: row 3, column 5; a layer matrix (packed, or quantized)
        (
            "model.layers.1.self_attn.q_proj.weight",
            3 * 64 + 5,
            f32::NAN,
            "[3, 5]",
        ),
        // a norm weight: 1-D, dense in every precision
        (
            "model.layers.2.post_attention_layernorm.weight",
            7,
            f32::INFINITY,
            "[7]",
        ),
        // the tied embedding / lm_head ([256, 64]), last value
        (
            "model.embed_tokens.weight",
            256 * 64 - 1,
            f32::NEG_INFINITY,
            "[255, 63]",
        ),
        // [64, 160]: the MLP's down projection
        (
            "model.layers.0.mlp.down_proj.weight",
            64 * 160 - 2,
            f32::NAN,
            "[63, 158]",
        ),
    ];
    for (k, (tensor, at, v, coords)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case{k}"));
        tiny_with(&dir, tensor, |d| d[at] = v);
        for p in PRECISIONS {
            let e = load(&dir, p).expect_err(&format!("{tensor} {v} loads as {p:?}"));
            let msg = e.to_string();
            let (path, name, reason) = bad_tensor(e);
            assert_eq!(path, dir.join("model.safetensors"), "{p:?}: {msg}");
            assert_eq!(name, tensor, "{p:?}: {msg}");
            assert!(reason.contains("not finite"), "{p:?}: {msg}");
            if p == Precision::Float(DType::F32) {
                assert!(reason.contains(coords), "{msg}");
            }
        }
        // the scorer's load (hidden states only, embedding as a row table) checks too
        let e = ModelSource::open(&dir)
            .unwrap()
            .load_decoder_for(
                &DropPlan::empty(),
                DType::F32,
                &Device::Cpu,
                llmdrop::model::Outputs::HiddenStates,
            )
            .unwrap_err();
        assert_eq!(bad_tensor(e).1, tensor);
    }
    // a dropped module's weights are never read, so never checked
    let dir = tmp.path().join("case0");
    let plan = DropPlan::new([1], []);
    let src = ModelSource::open(&dir).unwrap();
    src.load_decoder(&plan, DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn a_finite_weight_that_overflows_half_precision_is_named_as_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big");
    tiny_with(&dir, "model.layers.0.input_layernorm.weight", |d| {
        d[0] = 1e6
    });
    load(&dir, Precision::Float(DType::F32)).unwrap();
    load(&dir, Precision::Float(DType::BF16)).unwrap();
    let e = load(&dir, Precision::Float(DType::F16)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("as loaded in F16"), "{msg}");
    assert_eq!(bad_tensor(e).1, "model.layers.0.input_layernorm.weight");
}

/// The tiny llama as a GGUF (llama.cpp's names, q/k rows permuted), layer matrices stored
/// `Q8_0` except layer 0's value projection in `Q4_1`; returns the file's path.
fn write_quantized_gguf(dst: &Path) -> PathBuf {
    let path = dst.join("model.gguf");
    testkit::write_gguf_from_hf_as(&testkit::tiny_dir("llama"), &path, |g, shape| {
        match shape.len() {
            2 if g == "blk.0.attn_v.weight" => GgmlDType::Q4_1,
            2 => GgmlDType::Q8_0,
            _ => GgmlDType::F32,
        }
    })
    .unwrap();
    path
}

/// A copy of `src` with the two bytes at `at` of GGUF tensor `name`'s data replaced.
fn patch_gguf(src: &Path, dst: &Path, name: &str, at: usize, bytes: [u8; 2]) {
    let content = gguf_file::Content::read(&mut std::fs::File::open(src).unwrap()).unwrap();
    let start = content.tensor_data_offset as usize + content.tensor_infos[name].offset as usize;
    let mut data = std::fs::read(src).unwrap();
    data[start + at..start + at + 2].copy_from_slice(&bytes);
    std::fs::write(dst, data).unwrap();
}

#[test]
fn a_non_finite_block_scale_in_a_gguf_is_an_error_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write_quantized_gguf(tmp.path());
    for p in PRECISIONS {
        load(&good, p).unwrap_or_else(|e| panic!("the unpatched file loads as {p:?}: {e}"));
    }
    let nan = half::f16::NAN.to_bits().to_le_bytes();
    let inf = half::f16::INFINITY.to_bits().to_le_bytes();
    // (GGUF tensor, HF tensor, byte offset in its data, value): Q8_0 blocks are 34 bytes
    // (f16 scale, 32 quants); Q4_1 blocks 20 (f16 scale, f16 min, 16 bytes of quants)
    let cases = [
        (
            "blk.1.attn_q.weight",
            "model.layers.1.self_attn.q_proj.weight",
            5 * 34,
            nan,
        ),
        (
            "blk.0.attn_v.weight",
            "model.layers.0.self_attn.v_proj.weight",
            3 * 20 + 2,
            inf,
        ),
        (
            "token_embd.weight",
            "model.embed_tokens.weight",
            100 * 2 * 34,
            nan,
        ),
    ];
    for (k, (gname, hf, at, v)) in cases.into_iter().enumerate() {
        let path = tmp.path().join(format!("bad{k}.gguf"));
        patch_gguf(&good, &path, gname, at, v);
        // native keeps the blocks as stored; the others dequantize or requantize them
        for p in PRECISIONS {
            let e = load(&path, p).expect_err(&format!("{gname} loads as {p:?}"));
            let msg = e.to_string();
            let (file, name, reason) = bad_tensor(e);
            assert_eq!(file, path, "{p:?}: {msg}");
            assert_eq!(name, hf, "{p:?}: {msg}");
            assert!(reason.contains(gname), "{p:?}: {msg}");
            assert!(
                reason.contains("not finite") || reason.contains("non-finite"),
                "{p:?}: {msg}"
            );
            if p == Precision::Quant(QuantMode::Native) {
                assert!(reason.contains("scale or offset"), "{msg}");
            }
        }
    }
}

/// The tiny llama whose layer-0 MLP output overflows f32: finite weights, non-finite
/// hidden states from layer 0's MLP on.
fn overflowing(dir: &Path) {
    tiny_with(dir, "model.layers.0.mlp.down_proj.weight", |d| {
        d.iter_mut().for_each(|x| *x = 3e38)
    });
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
