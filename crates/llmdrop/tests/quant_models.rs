//! Whole models under `--dtype q8_0 | q4_1 | native`: the tiny transformers checkpoints
//! (float safetensors, so the matrices are quantized at load) against transformers' f32
//! logits, and the memory each mode holds.

use candle_core::{DType, Device};
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::{Decoder, DropPlan, ModelSource};
use llmdrop_testkit as testkit;

const ARCHS: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// Max |Δlogit| against transformers, relative to the largest reference logit, and the
/// weight bytes held.
fn run(arch: &str, p: Precision) -> (f32, usize) {
    let dir = testkit::tiny_dir(arch);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let want = testkit::read_f32_file(&dir.join("ref_logits.f32"));
    let src = ModelSource::open(&dir).unwrap();
    let dec = src
        .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
        .unwrap();
    assert_eq!(dec.precision(), p);
    let got = testkit::logits(&dec, &ids).unwrap();
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    (
        testkit::max_abs_diff(&got, &want) / scale,
        dec.weight_bytes(),
    )
}

#[test]
fn quantized_modes_track_transformers_f32() {
    for arch in ARCHS {
        let (f, f_bytes) = run(arch, DType::F32.into());
        // float weights stay dense under `native`: identical to f32
        let (n, n_bytes) = run(arch, Precision::Quant(QuantMode::Native));
        assert_eq!((n, n_bytes), (f, f_bytes), "{arch}: native on safetensors");
        let (q8, q8_bytes) = run(arch, Precision::Quant(QuantMode::Q8_0));
        let (q4, q4_bytes) = run(arch, Precision::Quant(QuantMode::Q4_1));
        eprintln!(
            "{arch}: relative max |Δlogit| f32 {f:.1e}, q8_0 {q8:.1e}, q4_1 {q4:.1e}; bytes f32 {f_bytes}, q8_0 {q8_bytes}, q4_1 {q4_bytes}"
        );
        // Random tiny models have no structure for quantization to preserve: measured
        // 5-7% (q8_0) and 44-55% (q4_1) of the largest logit. A misplaced matrix or
        // scale gives errors of 100% and more.
        assert!(q8 <= 0.1, "{arch}: q8_0 relative error {q8}");
        assert!(q4 <= 0.8, "{arch}: q4_1 relative error {q4}");
        assert!(
            q8 < q4,
            "{arch}: 8 bits less accurate than 4 ({q8} vs {q4})"
        );
        // quants + f16 scales: 34/128 of f32 for Q8, 20/128 for Q4 layers (+ the norms)
        assert!(
            q8_bytes * 100 <= f_bytes * 30,
            "{arch}: q8_0 holds {q8_bytes}"
        );
        assert!(q4_bytes < q8_bytes, "{arch}: q4_1 holds {q4_bytes}");
    }
}

#[test]
fn gguf_and_safetensors_copies_quantize_alike() {
    // the tiny llama written as llama.cpp's converter does (q/k rows permuted): quantized at
    // load it must hold the very same blocks as the safetensors copy. The GGUF metadata has
    // no llama3 RoPE scaling, so the safetensors copy runs without it too.
    let dir = testkit::tiny_dir("llama");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let st = ModelSource::open(&dir).unwrap();
    let mut cfg = st.config().clone();
    cfg.rope_scaling = None;
    let gguf = ModelSource::open(&dir.join("model.gguf")).unwrap();
    for mode in [QuantMode::Q8_0, QuantMode::Q4_1] {
        let p = Precision::Quant(mode);
        let a = Decoder::load(st.weights(), &cfg, &DropPlan::empty(), p, &Device::Cpu).unwrap();
        let b = gguf
            .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
            .unwrap();
        let d = testkit::max_abs_diff(
            &testkit::logits(&a, &ids).unwrap(),
            &testkit::logits(&b, &ids).unwrap(),
        );
        // f32 loads of the two agree to 1e-5 (tiny_reference.rs); quantization adds nothing
        assert!(d <= 1e-5, "{mode:?}: max |Δlogit| {d}");
    }
}
