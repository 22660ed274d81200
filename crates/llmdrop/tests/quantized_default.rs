//! The default model with quantized compute (`--dtype native`: its Q4_1 / Q8_0 blocks as
//! stored, activations quantized per block) against llama.cpp running the same file
//! (scripts/fixtures/make_fixtures.py --only llamacpp, f32 KV cache), and against the f32
//! path.

use candle_core::{DType, Device};
use llmdrop::eval::{perplexity, PplOptions};
use llmdrop::progress::NoProgress;
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::{Decoder, DropPlan, ModelSource};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = testkit::fixtures_dir().join("smollm2").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn load(p: impl Into<Precision>) -> (ModelSource, Decoder) {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let dec = src
        .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
        .unwrap();
    (src, dec)
}

/// Against a recorded reference: max and mean |Δlogit| over the recorded columns, how
/// often the top token agrees (of how many positions), and where it does not: the
/// reference's lead of its top token over its runner-up there, and whether our top token
/// is that runner-up.
struct Agreement {
    max: f32,
    mean: f32,
    top1: usize,
    positions: usize,
    misses: Vec<(f32, bool)>,
}

fn against(dec: &Decoder, reference: &str) -> Agreement {
    let r = fixture(reference);
    let sample: Vec<usize> = serde_json::from_value(r["sample_vocab"].clone()).unwrap();
    let vocab = dec.config().vocab_size;
    let (mut worst, mut sum, mut count, mut agree, mut total) = (0f32, 0f64, 0, 0, 0);
    let mut misses = Vec::new();
    for p in r["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        let logits = testkit::logits(dec, std::slice::from_ref(&ids)).unwrap();
        for (pos, row) in logits.chunks(vocab).enumerate() {
            let top_ids: Vec<usize> = serde_json::from_value(p["top_ids"][pos].clone()).unwrap();
            let top: Vec<f32> = serde_json::from_value(p["top_logits"][pos].clone()).unwrap();
            let samp: Vec<f32> = serde_json::from_value(p["sample_logits"][pos].clone()).unwrap();
            for (i, w) in top_ids.iter().zip(&top).chain(sample.iter().zip(&samp)) {
                worst = worst.max((row[*i] - w).abs());
                sum += (row[*i] - w).abs() as f64;
                count += 1;
            }
            let best = (0..vocab)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            agree += usize::from(best == top_ids[0]);
            if best != top_ids[0] {
                misses.push((top[0] - top[1], best == top_ids[1]));
            }
            total += 1;
        }
    }
    Agreement {
        max: worst,
        mean: (sum / count as f64) as f32,
        top1: agree,
        positions: total,
        misses,
    }
}

#[test]
fn native_quantized_logits_stay_close_to_f32_and_llamacpp() {
    let (_, native) = load(Precision::Quant(QuantMode::Native));
    let (_, dense) = load(DType::F32);
    for (name, dec) in [("native", &native), ("f32", &dense)] {
        for reference in ["llamacpp.json", "ref.json"] {
            let a = against(dec, reference);
            eprintln!(
                "{name} vs {reference}: max |Δlogit| {:.4}, mean {:.4}, top-1 {}/{}",
                a.max, a.mean, a.top1, a.positions
            );
        }
    }
    // Per-block activation quantization moves logits by a few tenths (they span about
    // ±40 here). The yardstick is llama.cpp's own quantized run of this file: its
    // distance from f32 (measured here as our f32 path vs the llama.cpp fixture). Ours
    // must be no more than 1.5x that, and never change the top token.
    let peer = against(&dense, "llamacpp.json");
    let ours = against(&native, "ref.json");
    assert!(
        ours.max <= 1.5 * peer.max,
        "max |Δlogit| {} vs llama.cpp's {}",
        ours.max,
        peer.max
    );
    assert!(
        ours.mean <= 1.5 * peer.mean,
        "mean |Δlogit| {} vs llama.cpp's {}",
        ours.mean,
        peer.mean
    );
    // The top token must not change where f32 is decided. The test lets each logit move
    // by 1.5x llama.cpp's mean distance from f32 on average, so where f32's top token leads
    // its runner-up by less than twice that (two logits moving towards each other) either
    // may come out on top: there the runner-up is accepted, nothing else. (The leads in
    // these prompts start at 0.047; which near-ties flip changes with rounding anywhere
    // in the model, for llama.cpp's run as for ours.)
    let undecided = 2.0 * 1.5 * peer.mean;
    let vs_peer = against(&native, "llamacpp.json");
    for (what, a) in [("f32", &ours), ("llama.cpp", &vs_peer)] {
        for &(lead, runner_up) in &a.misses {
            assert!(
                lead < undecided && runner_up,
                "top-1 differs from {what} where it leads by {lead} (undecided below {undecided})"
            );
        }
    }
}

#[test]
fn native_quantized_perplexity_is_within_half_a_percent() {
    let r = &fixture("llamacpp.json")["ppl"];
    let (src, dec) = load(Precision::Quant(QuantMode::Native));
    let text =
        std::fs::read_to_string(testkit::english_text_dir().join(r["file"].as_str().unwrap()))
            .unwrap();
    let ids = src.tokenizer().unwrap().encode(&text).unwrap();
    let opts = PplOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        max_windows: Some(r["windows"].as_u64().unwrap() as usize),
        second_half: false,
        bos: None,
    };
    let got = perplexity(&dec, &ids, &opts, &mut NoProgress).unwrap().ppl;
    let llamacpp = r["ppl"].as_f64().unwrap();
    let f32_ref = fixture("ref.json")["ppl"]["ppl"].as_f64().unwrap();
    eprintln!("ppl: native {got}, llama.cpp {llamacpp}, transformers f32 {f32_ref}");
    // quantized activations cost well under 1% perplexity, as they do in llama.cpp
    for (name, want) in [("llama.cpp", llamacpp), ("transformers f32", f32_ref)] {
        let rel = (got - want).abs() / want;
        assert!(
            rel <= 5e-3,
            "native ppl {got} vs {name} {want} (rel {rel:e})"
        );
    }
}
