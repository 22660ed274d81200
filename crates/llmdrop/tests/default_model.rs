//! The real default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against transformers float32
//! on the same GGUF (scripts/fixtures/make_fixtures.py): logits, hidden states, greedy
//! generation and perplexity.

use candle_core::{Device, Tensor};
use llmdrop::eval::{perplexity, PplOptions};
use llmdrop::generate::{generate, GenerateOptions};
use llmdrop::progress::NoProgress;
use llmdrop::{Decoder, DropPlan, Logits, NoProbe};
use llmdrop_testkit::{self as testkit, StatsProbe};
use serde_json::Value;

fn reference() -> Value {
    let p = testkit::fixtures_dir().join("smollm2/ref.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn model() -> (llmdrop::ModelSource, Decoder) {
    testkit::load(&testkit::default_model(), &DropPlan::empty()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn logits_and_hidden_states_match_transformers() {
    let r = reference();
    let (src, dec) = model();
    let tok = src.tokenizer().unwrap();
    let sample: Vec<usize> = serde_json::from_value(r["sample_vocab"].clone()).unwrap();
    let vocab = dec.config().vocab_size;
    let mut worst = 0f32;
    for p in r["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        // our tokenizer gives llama.cpp's ids (control tokens parsed as llama.cpp's special=true)
        assert_eq!(tok.encode(p["text"].as_str().unwrap()).unwrap(), ids);
        let logits = testkit::logits(&dec, std::slice::from_ref(&ids)).unwrap();
        for (pos, row) in logits.chunks(vocab).enumerate() {
            let top_ids: Vec<usize> = serde_json::from_value(p["top_ids"][pos].clone()).unwrap();
            let top = f32s(&p["top_logits"][pos]);
            let samp = f32s(&p["sample_logits"][pos]);
            for (i, w) in top_ids.iter().zip(&top).chain(sample.iter().zip(&samp)) {
                worst = worst.max((row[*i] - w).abs());
            }
            let sum: f64 = row.iter().map(|&x| x as f64).sum();
            let want = p["row_sum"][pos].as_f64().unwrap();
            assert!(
                (sum - want).abs() <= 1e-3 * vocab as f64,
                "row sum {sum} vs {want}"
            );
        }
        let mut probe = StatsProbe::default();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        dec.forward(&t, None, &mut probe, Logits::None).unwrap();
        let stats = probe.finish();
        let want = p["hidden"].as_array().unwrap();
        assert_eq!(stats.len(), 31);
        for (i, ((_, sq), w)) in stats.iter().zip(want).enumerate() {
            let wsq = w["sumsq"].as_f64().unwrap();
            assert!(
                (sq - wsq).abs() <= 1e-4 * wsq,
                "hidden {i}: sumsq {sq} vs {wsq}"
            );
        }
    }
    eprintln!("default model: max |Δlogit| vs transformers = {worst:e}");
    assert!(worst <= 1e-3, "max |Δlogit| = {worst}");
}

#[test]
fn greedy_generation_matches_transformers() {
    let r = reference();
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
fn perplexity_matches_transformers() {
    let r = &reference()["ppl"];
    let (src, dec) = model();
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join(r["file"].as_str().unwrap()))
            .unwrap();
    let ids = src.tokenizer().unwrap().encode(&text).unwrap();
    assert_eq!(ids.len() as u64, r["tokens_total"].as_u64().unwrap());
    let opts = PplOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        max_windows: Some(r["windows"].as_u64().unwrap() as usize),
        second_half: false,
        bos: None,
    };
    let got = perplexity(&dec, &ids, &opts, &mut NoProgress).unwrap();
    let want = r["ppl"].as_f64().unwrap();
    assert_eq!(
        got.tokens_scored as u64,
        r["tokens_scored"].as_u64().unwrap()
    );
    let rel = (got.ppl - want).abs() / want;
    eprintln!(
        "default model: ppl {} vs transformers {want} (rel {rel:e})",
        got.ppl
    );
    assert!(rel <= 1e-3, "ppl {} vs {want}", got.ppl);
}

#[test]
fn cached_generation_equals_recomputation_on_pruned_model() {
    // with 4 attention layers dropped the cache has 26 slots and decoding still equals
    // a full forward pass over the sequence
    let (_, dec) = testkit::load(
        &testkit::default_model(),
        &DropPlan::new([20, 24, 26, 28], []),
    )
    .unwrap();
    // 250 prompt tokens + 12 generated: the cache grows past its first allocation (256)
    let (src, _) = model();
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join("docs/user/rst/quickstart.txt"))
            .unwrap();
    let prompt: Vec<u32> = src.tokenizer().unwrap().encode(&text).unwrap()[..250].to_vec();
    let opts = GenerateOptions {
        max_tokens: 12,
        temperature: 0.0,
        seed: 0,
        stop: vec![],
    };
    let g = generate(&dec, &prompt, &opts, &mut |_| Ok(())).unwrap();
    let mut seq = prompt.clone();
    seq.extend(&g.tokens[..11]);
    let t = Tensor::new(seq.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let full = dec
        .forward(&t, None, &mut NoProbe, Logits::All)
        .unwrap()
        .unwrap();
    let full = full.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    for (k, tok) in g.tokens.iter().enumerate() {
        let row = &full[prompt.len() - 1 + k];
        assert_eq!(llmdrop::generate::argmax(row), *tok);
    }
    assert_eq!(dec.new_cache().num_slots(), 26);
}

#[test]
fn long_prompt_in_query_chunks_equals_stepwise_cached_run() {
    // 700 tokens in one pass: the scores are computed in chunks of query positions (9
    // heads x 700 x 700 is above the chunking threshold), each chunk skipping the keys
    // after its last position. The same tokens in three cached steps of at most 234 run
    // unchunked. Every position's logits must agree.
    let (src, dec) = model();
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join("docs/user/rst/quickstart.txt"))
            .unwrap();
    let ids: Vec<u32> = src.tokenizer().unwrap().encode(&text).unwrap()[..700].to_vec();
    let full = testkit::logits(&dec, std::slice::from_ref(&ids)).unwrap();
    let mut cache = dec.new_cache();
    let mut stepwise = Vec::new();
    for part in ids.chunks(234) {
        stepwise.extend(testkit::cached_logits(&dec, part, &mut cache, Logits::All).unwrap());
    }
    let d = testkit::max_abs_diff(&full, &stepwise);
    eprintln!("chunked vs stepwise: max |Δlogit| {d:e}");
    assert!(d <= 1e-3, "max |Δlogit| {d}");
}
