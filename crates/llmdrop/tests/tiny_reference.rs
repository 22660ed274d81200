//! Tiny random checkpoints saved by transformers: our logits and hidden states must match
//! the ones transformers computed (scripts/fixtures/make_fixtures.py).

use candle_core::{DType, Device, Tensor};
use llmdrop::{Decoder, DropPlan, Logits, ModelSource};
use llmdrop_testkit::{self as testkit, StatsProbe};
use serde_json::Value;

fn reference(arch: &str) -> (Vec<Vec<u32>>, Vec<f32>, Value) {
    let dir = testkit::tiny_dir(arch);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let logits = testkit::read_f32_file(&dir.join("ref_logits.f32"));
    (ids, logits, r)
}

fn check_arch(arch: &str) {
    let (ids, want, r) = reference(arch);
    let (_src, dec) = testkit::load(&testkit::tiny_dir(arch), &DropPlan::empty()).unwrap();
    let got = testkit::logits(&dec, &ids).unwrap();
    let d = testkit::max_abs_diff(&got, &want);
    eprintln!("{arch}: max |Δlogit| = {d:e} vs transformers");
    assert!(d <= 1e-4, "{arch}: max |Δlogit| = {d} vs transformers");

    let mut probe = StatsProbe::default();
    let t = Tensor::new(ids, &Device::Cpu).unwrap();
    dec.forward(&t, None, &mut probe, Logits::None).unwrap();
    let stats = probe.finish();
    let want = r["hidden"].as_array().unwrap();
    assert_eq!(stats.len(), want.len(), "{arch}: hidden-state count");
    for (i, ((s, sq), w)) in stats.iter().zip(want).enumerate() {
        let (ws, wsq) = (w["sum"].as_f64().unwrap(), w["sumsq"].as_f64().unwrap());
        assert!(
            (sq - wsq).abs() <= 1e-5 * wsq,
            "{arch} hidden {i}: sumsq {sq} vs {wsq}"
        );
        assert!(
            (s - ws).abs() <= 1e-5 * wsq.sqrt().max(1.0),
            "{arch} hidden {i}: sum {s} vs {ws}"
        );
    }
}

#[test]
fn tiny_llama_matches_transformers() {
    check_arch("llama");
}

#[test]
fn tiny_mistral_sliding_window_matches_transformers() {
    check_arch("mistral");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check_arch("qwen2");
}

#[test]
fn tiny_qwen3_matches_transformers() {
    check_arch("qwen3");
}

/// Gemma 3: sandwich norms, x·(1 + w) norms, scaled embeddings, GELU-tanh, q/k norms,
/// sliding and global layers with their own RoPE (linear scaling on the global ones),
/// `query_pre_attn_scalar` != head_dim, a window shorter than the sequence.
#[test]
fn tiny_gemma3_matches_transformers() {
    check_arch("gemma3");
}

/// The GGUF copy (written by gguf-py as llama.cpp's converter does, q/k permuted) and the
/// safetensors copy of the same weights give the same logits, and both match transformers.
#[test]
fn tiny_llama_gguf_equals_safetensors() {
    let dir = testkit::tiny_dir("llama");
    let (ids, _, _) = reference("llama");
    let want = testkit::read_f32_file(&dir.join("ref_logits_norope_scaling.f32"));
    let (gsrc, gdec) = testkit::load(&dir.join("model.gguf"), &DropPlan::empty()).unwrap();
    assert_eq!(gsrc.config().num_layers, 3);
    let from_gguf = testkit::logits(&gdec, &ids).unwrap();
    // the safetensors copy, with the same (unscaled) RoPE as the GGUF metadata describes
    let st = ModelSource::open(&dir).unwrap();
    let mut cfg = st.config().clone();
    cfg.rope_scaling = None;
    let sdec = Decoder::load(
        st.weights(),
        &cfg,
        &DropPlan::empty(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let from_st = testkit::logits(&sdec, &ids).unwrap();
    let d = testkit::max_abs_diff(&from_gguf, &from_st);
    assert!(d <= 1e-5, "GGUF vs safetensors: max |Δlogit| = {d}");
    let d = testkit::max_abs_diff(&from_gguf, &want);
    assert!(d <= 1e-4, "GGUF vs transformers: max |Δlogit| = {d}");
}

/// Half-precision compute: our bf16 / f16 logits may move away from the f32 reference no
/// further than transformers' own bf16 / f16 computation of the same model does (plus 25%
/// for a different order of rounding), and stay close to transformers' half result.
#[test]
fn half_precision_compute_tracks_transformers() {
    let dir = testkit::tiny_dir("llama");
    let (ids, f32_ref, _) = reference("llama");
    let src = ModelSource::open(&dir).unwrap();
    for (dtype, name) in [(DType::BF16, "bf16"), (DType::F16, "f16")] {
        let theirs = testkit::read_f32_file(&dir.join(format!("ref_logits_{name}.f32")));
        let dec = src
            .load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)
            .unwrap();
        assert_eq!(dec.dtype(), dtype);
        let ours = testkit::logits(&dec, &ids).unwrap();
        let (d_ours, d_theirs) = (
            testkit::max_abs_diff(&ours, &f32_ref),
            testkit::max_abs_diff(&theirs, &f32_ref),
        );
        let d_between = testkit::max_abs_diff(&ours, &theirs);
        eprintln!("{name}: vs f32 ours {d_ours}, transformers {d_theirs}; ours vs transformers {d_between}");
        assert!(
            d_ours <= 1.25 * d_theirs,
            "{name}: {d_ours} vs transformers' {d_theirs}"
        );
        assert!(d_between <= 2.0 * d_theirs, "{name}: {d_between}");
    }
}

/// qwen2 GGUF (gguf-py, biases, no q/k permutation) matches transformers.
#[test]
fn tiny_qwen2_gguf_matches_transformers() {
    let (ids, want, _) = reference("qwen2");
    let (src, dec) = testkit::load(
        &testkit::tiny_dir("qwen2").join("model.gguf"),
        &DropPlan::empty(),
    )
    .unwrap();
    assert_eq!(src.config().arch.name, "qwen2");
    assert!(src.config().qkv_bias && !src.config().tie_word_embeddings);
    let d = testkit::max_abs_diff(&testkit::logits(&dec, &ids).unwrap(), &want);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

/// Sharded safetensors (index.json) and a GGUF v2 file written by candle load the same
/// weights as the single-file original.
#[test]
fn sharded_safetensors_and_gguf_v2_load_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let sharded = tmp.path().join("sharded");
    testkit::write_sharded_copy(&testkit::tiny_dir("mistral"), &sharded).unwrap();
    assert!(sharded.join("model-00002-of-00002.safetensors").exists());
    assert!(!sharded.join("model.safetensors").exists());
    let (ids, want, _) = reference("mistral");
    let (_, dec) = testkit::load(&sharded, &DropPlan::empty()).unwrap();
    assert!(testkit::max_abs_diff(&testkit::logits(&dec, &ids).unwrap(), &want) <= 1e-4);

    let v2 = tmp.path().join("llama-v2.gguf");
    testkit::write_gguf_v2_from_hf(&testkit::tiny_dir("llama"), &v2).unwrap();
    assert_eq!(&std::fs::read(&v2).unwrap()[4..8], &2u32.to_le_bytes());
    let (ids, _, _) = reference("llama");
    let want =
        testkit::read_f32_file(&testkit::tiny_dir("llama").join("ref_logits_norope_scaling.f32"));
    let (_, dec) = testkit::load(&v2, &DropPlan::empty()).unwrap();
    assert!(testkit::max_abs_diff(&testkit::logits(&dec, &ids).unwrap(), &want) <= 1e-4);
}
