//! NaN and infinity in weights: a non-finite weight is an error at load naming the file and
//! tensor, at every precision, from safetensors and from GGUF block scales. Non-finite
//! results, scores and reports: non_finite.rs.

use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::{DType, Device};
use llmdrop::quant::{Precision, QuantMode};
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
