//! Gemma 3 on the tiny random checkpoint saved by transformers (tests/fixtures/tiny/gemma3,
//! scripts/fixtures/make_gemma3.py): the sandwich-block similarities against PyTorch hooks,
//! dropping a module against zeroing its output projection, bad configs. Exports:
//! gemma_export.rs.
//! Logits and hidden states: tiny_reference.rs.

use llmdrop::progress::NoProgress;
use llmdrop::score::{score, ScoreOptions};
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = testkit::tiny_dir("gemma3").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids() -> Vec<Vec<u32>> {
    serde_json::from_value(fixture("ref.json")["ids"].clone()).unwrap()
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

/// X, Y = X + post_attn_norm(attn(.)), Z = Y + post_ffw_norm(mlp(.)); without the
/// residual, the normalised input against the post-normed output.
#[test]
fn tiny_gemma3_sandwich_similarities_match_pytorch_hooks() {
    let r = fixture("scores.json");
    let (_, dec) = testkit::load_scorer(&testkit::tiny_dir("gemma3")).unwrap();
    let mut worst = 0f64;
    let t = score(&dec, &ids(), &ScoreOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(t.tokens, r["tokens"].as_u64().unwrap());
    assert_close("block", &t.block, &r["block"], &mut worst);
    assert_close("attn", &t.attn, &r["attn"], &mut worst);
    assert_close("mlp", &t.mlp, &r["mlp"], &mut worst);
    for (i, row) in t.consecutive.as_ref().unwrap().iter().enumerate() {
        let name = format!("consecutive[{i}]");
        assert_close(&name, row, &r["consecutive"][i], &mut worst);
    }
    let nores = ScoreOptions {
        residual: false,
        consecutive: false,
    };
    let t = score(&dec, &ids(), &nores, &mut NoProgress).unwrap();
    assert_close("attn_nores", &t.attn, &r["attn_nores"], &mut worst);
    assert_close("mlp_nores", &t.mlp, &r["mlp_nores"], &mut worst);
    eprintln!("tiny gemma3 similarities vs PyTorch: max |Δ| = {worst:e}");
}

/// With a post-norm, a zero output projection gives post_norm(0) = 0: the residual add is
/// exact, so the model equals the one with that module (and its norms) dropped, bit for bit.
/// Layer 2 is the global layer, 1 and 3 sliding.
#[test]
fn tiny_gemma3_dropped_module_equals_zeroed_output_projection_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let zeroed = [
        "model.layers.1.self_attn.o_proj.weight",
        "model.layers.2.self_attn.o_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
    ];
    copy_hf_dir_with(&testkit::tiny_dir("gemma3"), tmp.path(), |name, _, d| {
        Some(match zeroed.contains(&name) {
            true => vec![0.0; d.len()],
            false => d,
        })
    })
    .unwrap();
    let plan = DropPlan::new([1, 2], [3]);
    let (_, zero) = testkit::load(tmp.path(), &DropPlan::empty()).unwrap();
    let (_, dropped) = testkit::load(&testkit::tiny_dir("gemma3"), &plan).unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let (a, b) = (
        testkit::logits(&zero, &ids()).unwrap(),
        testkit::logits(&dropped, &ids()).unwrap(),
    );
    assert_eq!(bits(a.clone()), bits(b));
    // the dropped modules' weights and norms are not loaded; the zeroed model's are
    assert!(dropped.weight_bytes() < zero.weight_bytes());
    // and the unpruned model differs
    let (_, full) = testkit::load(&testkit::tiny_dir("gemma3"), &DropPlan::empty()).unwrap();
    assert!(testkit::max_abs_diff(&testkit::logits(&full, &ids()).unwrap(), &a) > 1e-3);
}

fn with_config(f: impl FnOnce(&mut Value)) -> llmdrop::Result<ModelSource> {
    let tmp = tempfile::tempdir().unwrap();
    let src = testkit::tiny_dir("gemma3");
    for n in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(n), tmp.path().join(n)).unwrap();
    }
    let p = tmp.path().join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    ModelSource::open(tmp.path())
}

#[track_caller]
fn refused(f: impl FnOnce(&mut Value), want: &[&str]) {
    let e = match with_config(f) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted; wanted {want:?}"),
    };
    for w in want {
        assert!(e.contains(w), "{e:?} lacks {w:?}");
    }
}

#[test]
fn tiny_gemma3_bad_configs_are_refused_clearly() {
    refused(
        |v| {
            v["layer_types"].as_array_mut().unwrap().pop();
        },
        &["`layer_types` has 3 entries for num_hidden_layers 4"],
    );
    refused(
        |v| v["layer_types"][1] = "chunked_attention".into(),
        &[
            "`layer_types[1]`",
            "chunked_attention",
            "sliding_attention, full_attention",
        ],
    );
    refused(
        |v| v["final_logit_softcapping"] = 30.0.into(),
        &["final_logit_softcapping", "soft-capping", "not supported"],
    );
    refused(
        |v| v["attn_logit_softcapping"] = 50.0.into(),
        &["attn_logit_softcapping", "not supported"],
    );
    refused(
        |v| v["hidden_activation"] = "relu".into(),
        &["hidden_act `relu`"],
    );
    refused(
        |v| v["model_type"] = "gemma3".into(),
        &["multimodal", "gemma3_text"],
    );
    // without `layer_types`: the pattern (every 6th layer global) decides
    let src = with_config(|v| {
        v.as_object_mut().unwrap().remove("layer_types");
        v["sliding_window_pattern"] = 2.into();
    })
    .unwrap();
    let kinds: Vec<_> = (0..4).map(|i| src.config().layer_window(i)).collect();
    assert_eq!(kinds, vec![Some(8), None, Some(8), None]);
}

/// A missing post-norm is named, as any missing tensor.
#[test]
fn tiny_gemma3_missing_post_norm_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&testkit::tiny_dir("gemma3"), tmp.path(), |name, _, d| {
        (name != "model.layers.2.post_feedforward_layernorm.weight").then_some(d)
    })
    .unwrap();
    let e = match testkit::load(tmp.path(), &DropPlan::empty()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded without a post-norm"),
    };
    assert!(
        e.contains("model.layers.2.post_feedforward_layernorm.weight"),
        "{e}"
    );
    // dropping that MLP needs no post-norm
    testkit::load(tmp.path(), &DropPlan::new([], [2])).unwrap();
}

/// Decoding with the KV cache past the window (8) equals one full pass: each sliding layer
/// sees only its last 8 positions, the global layer all, each with its own RoPE.
#[test]
fn tiny_gemma3_cached_decoding_past_the_window_equals_a_full_pass() {
    let (_, dec) = testkit::load(&testkit::tiny_dir("gemma3"), &DropPlan::new([], [1])).unwrap();
    let seq: Vec<u32> = ids()[0].clone();
    let full = testkit::logits(&dec, std::slice::from_ref(&seq)).unwrap();
    let mut cache = dec.new_cache();
    let mut stepwise =
        testkit::cached_logits(&dec, &seq[..5], &mut cache, llmdrop::Logits::All).unwrap();
    for &t in &seq[5..] {
        let l = testkit::cached_logits(&dec, &[t], &mut cache, llmdrop::Logits::All).unwrap();
        stepwise.extend(l);
    }
    let d = testkit::max_abs_diff(&full, &stepwise);
    assert!(d <= 1e-4, "cached vs full: max |Δlogit| {d}");
}
