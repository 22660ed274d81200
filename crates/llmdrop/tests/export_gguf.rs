//! GGUF exports: quantized tensors copied byte for byte, arch `deci` for attention / MLP
//! drops, blocks renumbered otherwise, k-quants falling back as llama.cpp does.

mod export_common;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use export_common::{logits_equal, run};
use llmdrop::export::ExportFormat;
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit as testkit;

#[test]
fn gguf_exports_copy_quantized_tensors_and_reload() {
    use llmdrop::io::hf_to_gguf;
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama").join("model.gguf");
    // attention / MLP drops: arch deci, per-layer arrays, tensors copied byte for byte
    let plan = DropPlan::new([0], [2]);
    let (r, out) = run(
        &model,
        &plan,
        ExportFormat::Gguf,
        None,
        &tmp.path().join("deci.gguf"),
    )
    .unwrap();
    assert_eq!(r.reload_max_abs_diff, 0.0);
    assert!(r.lossless);
    let g = out.gguf().unwrap();
    assert_eq!(g.arch_name(), "deci");
    assert_eq!(out.stored_plan(), &plan);
    let input = ModelSource::open(&model).unwrap();
    for t in out.weights().tensors() {
        let arch = out.config().arch;
        let name = hf_to_gguf(arch, &t.name).unwrap();
        if plan.drops_tensor(arch, &t.name) {
            // the zero FFN standing in for a dropped MLP whose attention is kept (llama.cpp
            // would otherwise discard the whole layer)
            assert!(t.name.starts_with("model.layers.2."), "{}", t.name);
            let v = out
                .weights()
                .load(&t.name, DType::F32, &Device::Cpu)
                .unwrap();
            let v = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                t.name.contains("layernorm") || v.iter().all(|&x| x == 0.0),
                "{}",
                t.name
            );
            continue;
        }
        let a = g.raw_tensor(&name).unwrap();
        let b = input.gguf().unwrap().raw_tensor(&name).unwrap();
        assert_eq!(a.data().unwrap(), b.data().unwrap(), "{name} differs");
    }
    logits_equal(&model, &plan, &r.path);
    // whole blocks: the input architecture, renumbered
    let (r, out) = run(
        &model,
        &DropPlan::new([1], [1]),
        ExportFormat::Gguf,
        None,
        &tmp.path().join("b.gguf"),
    )
    .unwrap();
    assert_eq!(out.gguf().unwrap().arch_name(), "llama");
    assert_eq!(out.config().num_layers, 2);
    assert_eq!(r.reload_max_abs_diff, 0.0);
    // from safetensors: f32 exact, q8_0 close
    let q = testkit::tiny_dir("qwen2");
    let (r, _) = run(
        &q,
        &DropPlan::new([0], [0]),
        ExportFormat::Gguf,
        Some(candle_core::quantized::GgmlDType::F32),
        &tmp.path().join("q.gguf"),
    )
    .unwrap();
    assert_eq!(r.reload_max_abs_diff, 0.0);
    let (r, _) = run(
        &q,
        &DropPlan::new([0], [0]),
        ExportFormat::Gguf,
        Some(candle_core::quantized::GgmlDType::Q8_0),
        &tmp.path().join("q8.gguf"),
    )
    .unwrap();
    assert!(!r.lossless && r.reload_argmax_agreement >= 0.9, "{r:?}");
    let e = run(
        &q,
        &DropPlan::new([0], []),
        ExportFormat::Gguf,
        None,
        &tmp.path().join("d.gguf"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("llama-family"), "{e}");
}

#[test]
fn gguf_deci_export_without_any_attention_reloads() {
    // every per-layer head count is 0: the counts the config needs come from llmdrop's keys
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama").join("model.gguf");
    let plan = DropPlan::new([0, 1, 2], [1]);
    let (r, out) = run(
        &model,
        &plan,
        ExportFormat::Gguf,
        None,
        &tmp.path().join("no-attn.gguf"),
    )
    .unwrap();
    assert_eq!(r.reload_max_abs_diff, 0.0);
    assert_eq!(out.stored_plan(), &plan);
    assert_eq!(out.config().num_heads, 4);
    assert_eq!(out.config().num_kv_heads, 2);
}

#[test]
fn k_quants_fall_back_for_narrow_rows_as_llama_cpp_does() {
    // the tiny model's rows are narrower than 256: q4_k -> q5_0, q6_k -> q8_0
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("qwen2");
    for (quant, want) in [(GgmlDType::Q4K, "Q5_0"), (GgmlDType::Q6K, "Q8_0")] {
        let dest = tmp.path().join(format!("{quant:?}.gguf"));
        let (r, out) = run(
            &model,
            &DropPlan::empty(),
            ExportFormat::Gguf,
            Some(quant),
            &dest,
        )
        .unwrap();
        assert!(!r.lossless);
        for t in out.weights().tensors() {
            let want = if t.shape.len() == 2 { want } else { "F32" };
            assert_eq!(t.dtype, want, "{quant:?}: {}", t.name);
        }
    }
}
