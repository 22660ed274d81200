//! Gemma-3-270M (the Q4_K_M GGUF of `scripts/fetch-assets.sh`) against transformers float32
//! on the same GGUF (scripts/fixtures/make_gemma3.py, tests/fixtures/gemma3/): logits,
//! hidden states, greedy generation, perplexity with BOS-led windows, and the sandwich-block
//! similarities on BOS-led calibration blocks. In the real-model test group.

use candle_core::{Device, Tensor};
use llmdrop::calib::{pack, read_documents, PackOptions, TextSource};
use llmdrop::eval::{perplexity, PplOptions};
use llmdrop::generate::{generate, GenerateOptions};
use llmdrop::progress::NoProgress;
use llmdrop::score::{score, ScoreOptions};
use llmdrop::{Decoder, DropPlan, Logits, ModelSource};
use llmdrop_testkit::{self as testkit, StatsProbe};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = testkit::fixtures_dir().join("gemma3").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn model() -> (ModelSource, Decoder) {
    testkit::load(&testkit::gemma_model(), &DropPlan::empty()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn gemma_logits_and_hidden_states_match_transformers() {
    let r = fixture("ref.json");
    let (src, dec) = model();
    assert_eq!(src.config().arch.name, "gemma3_text");
    let tok = src.tokenizer().unwrap();
    let sample: Vec<usize> = serde_json::from_value(r["sample_vocab"].clone()).unwrap();
    let vocab = dec.config().vocab_size;
    let (mut worst, mut worst_sum) = (0f32, 0f64);
    for p in r["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        // BOS in front, as llama.cpp's tokenizer adds it for this model
        assert_eq!(tok.encode_prompt(p["text"].as_str().unwrap()).unwrap(), ids);
        let logits = testkit::logits(&dec, std::slice::from_ref(&ids)).unwrap();
        for (pos, row) in logits.chunks(vocab).enumerate() {
            let top_ids: Vec<usize> = serde_json::from_value(p["top_ids"][pos].clone()).unwrap();
            let top = f32s(&p["top_logits"][pos]);
            let samp = f32s(&p["sample_logits"][pos]);
            for (i, w) in top_ids.iter().zip(&top).chain(sample.iter().zip(&samp)) {
                worst = worst.max((row[*i] - w).abs());
            }
            let sum: f64 = row.iter().map(|&x| x as f64).sum();
            worst_sum = worst_sum.max((sum - p["row_sum"][pos].as_f64().unwrap()).abs());
        }
        let mut probe = StatsProbe::default();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        dec.forward(&t, None, &mut probe, Logits::None).unwrap();
        let stats = probe.finish();
        let want = p["hidden"].as_array().unwrap();
        assert_eq!(stats.len(), 19);
        for (i, ((_, sq), w)) in stats.iter().zip(want).enumerate() {
            let wsq = w["sumsq"].as_f64().unwrap();
            assert!(
                (sq - wsq).abs() <= 1e-4 * wsq,
                "hidden {i}: sumsq {sq} vs {wsq}"
            );
        }
    }
    eprintln!(
        "gemma: max |Δlogit| vs transformers = {worst:e} (sample + top-16 columns); \
         max |Δ row sum| = {worst_sum:e} over {vocab} logits"
    );
    assert!(worst <= 1e-3, "max |Δlogit| = {worst}");
    // a row sum adds 262,144 logits: 1e-3 on their mean
    assert!(
        worst_sum <= 1e-3 * vocab as f64,
        "row sum off by {worst_sum}"
    );
}

#[test]
fn gemma_greedy_generation_matches_transformers() {
    let r = fixture("ref.json");
    let (_, dec) = model();
    for p in r["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(p["greedy32"].clone()).unwrap();
        let opts = GenerateOptions {
            max_tokens: 32,
            temperature: 0.0,
            seed: 0,
            stop: vec![],
        };
        let g = generate(&dec, &ids, &opts, &mut |_| Ok(())).unwrap();
        assert_eq!(g.tokens, want, "prompt {:?}", p["text"]);
    }
}

#[test]
fn gemma_perplexity_with_bos_windows_matches_transformers() {
    let r = &fixture("ref.json")["ppl"];
    let (src, dec) = model();
    let tok = src.tokenizer().unwrap();
    assert!(r["bos"].as_bool().unwrap());
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join(r["file"].as_str().unwrap()))
            .unwrap();
    let ids = tok.encode(&text).unwrap();
    assert_eq!(ids.len() as u64, r["tokens_total"].as_u64().unwrap());
    let opts = PplOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        max_windows: Some(r["windows"].as_u64().unwrap() as usize),
        second_half: false,
        bos: tok.sequence_bos(),
    };
    assert_eq!(opts.bos, Some(2));
    let got = perplexity(&dec, &ids, &opts, &mut NoProgress).unwrap();
    let want = r["ppl"].as_f64().unwrap();
    assert_eq!(
        got.tokens_scored as u64,
        r["tokens_scored"].as_u64().unwrap()
    );
    let rel = (got.ppl - want).abs() / want;
    eprintln!(
        "gemma: ppl {} vs transformers {want} (rel {rel:e})",
        got.ppl
    );
    assert!(rel <= 1e-3, "ppl {} vs {want}", got.ppl);
}

fn assert_close(name: &str, got: &[f64], want: &Value, worst: &mut f64) {
    let want: Vec<f64> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let d = (g - w).abs();
        assert!(d <= 1e-4, "{name}[{i}]: {g} vs {w} (|Δ| {d:e})");
        *worst = worst.max(d);
    }
}

#[test]
fn gemma_sandwich_similarities_match_pytorch_hooks() {
    let r = fixture("scores.json");
    let (src, dec) = testkit::load_scorer(&testkit::gemma_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    let docs = read_documents(&TextSource::new(testkit::english_text_dir().join("docs"))).unwrap();
    let opts = PackOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        samples: r["samples"].as_u64().unwrap() as usize,
        shuffle: false,
        seed: 0,
    };
    let blocks = pack(&docs, &tok, &opts).unwrap();
    assert!(blocks.blocks.iter().all(|b| b[0] == 2), "BOS-led blocks");
    assert_eq!(blocks.hash, r["blocks_sha256"].as_str().unwrap());
    let mut worst = 0f64;
    let t = score(
        &dec,
        &blocks.blocks,
        &ScoreOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(t.tokens, r["tokens"].as_u64().unwrap());
    assert_close("block", &t.block, &r["block"], &mut worst);
    assert_close("attn", &t.attn, &r["attn"], &mut worst);
    assert_close("mlp", &t.mlp, &r["mlp"], &mut worst);
    for (i, row) in t.consecutive.as_ref().unwrap().iter().enumerate() {
        assert_close(
            &format!("consecutive[{i}]"),
            row,
            &r["consecutive"][i],
            &mut worst,
        );
    }
    let nores = ScoreOptions {
        residual: false,
        consecutive: false,
    };
    let t = score(&dec, &blocks.blocks, &nores, &mut NoProgress).unwrap();
    assert_close("attn_nores", &t.attn, &r["attn_nores"], &mut worst);
    assert_close("mlp_nores", &t.mlp, &r["mlp_nores"], &mut worst);
    eprintln!("gemma similarities vs PyTorch: max |Δ| = {worst:e}");
}

/// `--dtype native`: Q4_K and Q8_0 blocks are kept as stored; Q5_0 and Q6_K, which the
/// kernels do not read, are requantized to 8-bit, and `requantized` says so. Perplexity
/// stays within 1% of the float32 reference.
#[test]
fn gemma_native_precision_names_what_it_requantizes_and_keeps_quality() {
    use llmdrop::quant::{requantized, Precision};
    let r = &fixture("ref.json")["ppl"];
    let src = ModelSource::open(&testkit::gemma_model()).unwrap();
    let native = Precision::parse("native").unwrap();
    assert_eq!(
        requantized(src.weights(), native),
        vec![("Q5_0".to_string(), 81), ("Q6K".to_string(), 9)]
    );
    assert!(requantized(src.weights(), Precision::parse("f32").unwrap()).is_empty());
    let dec = src
        .load_decoder(&DropPlan::empty(), native, &Device::Cpu)
        .unwrap();
    let tok = src.tokenizer().unwrap();
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join(r["file"].as_str().unwrap()))
            .unwrap();
    let opts = PplOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        max_windows: Some(r["windows"].as_u64().unwrap() as usize),
        second_half: false,
        bos: tok.sequence_bos(),
    };
    let got = perplexity(&dec, &tok.encode(&text).unwrap(), &opts, &mut NoProgress).unwrap();
    let want = r["ppl"].as_f64().unwrap();
    let rel = (got.ppl - want).abs() / want;
    eprintln!(
        "gemma native: ppl {} vs float32 transformers {want} (rel {rel:e})",
        got.ppl
    );
    assert!(rel <= 1e-2, "ppl {} vs {want}", got.ppl);
}
