//! Exports: every format reloads as the pruned model; keys engines rely on are present;
//! refusals leave nothing behind.

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use llmdrop::export::{export, ffn_mult_to_intermediate, ExportFormat, ExportInfo, ExportRequest};
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn info() -> ExportInfo {
    ExportInfo {
        tool_version: llmdrop::VERSION.into(),
        source_model: "test".into(),
        source_sha256: None,
        details: Value::Null,
    }
}

fn probe() -> Vec<u32> {
    (0..40).map(|i| (i * 29 + 11) % 256).collect()
}

/// Exports `plan` of `model` as `format` into `dest` and returns the reloaded source.
fn run(
    model: &std::path::Path,
    plan: &DropPlan,
    format: ExportFormat,
    quant: Option<candle_core::quantized::GgmlDType>,
    dest: &std::path::Path,
) -> llmdrop::Result<(llmdrop::export::ExportResult, ModelSource)> {
    let src = ModelSource::open(model)?;
    let tok = src.tokenizer()?;
    let reference = src.load_decoder(plan, DType::F32, &Device::Cpu)?;
    let r = export(&ExportRequest {
        source: &src,
        tokenizer: &tok,
        plan,
        format,
        quant,
        info: &info(),
        dest,
        force: false,
        reference: &reference,
        probe: &probe(),
    })?;
    let out = ModelSource::open(&r.path)?;
    Ok((r, out))
}

fn logits_equal(a: &std::path::Path, plan_a: &DropPlan, b: &std::path::Path) {
    let ids = vec![probe()];
    let (_, da) = testkit::load(a, plan_a).unwrap();
    let (_, db) = testkit::load(b, &DropPlan::empty()).unwrap();
    let d = testkit::max_abs_diff(
        &testkit::logits(&da, &ids).unwrap(),
        &testkit::logits(&db, &ids).unwrap(),
    );
    assert!(d <= 1e-5, "max |Δlogit| {d}");
}

#[test]
fn hf_block_export_renumbers_layers_and_config_arrays() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("mistral");
    let plan = DropPlan::new([1], [1]);
    let (r, out) = run(
        &model,
        &plan,
        ExportFormat::Hf,
        None,
        &tmp.path().join("hf"),
    )
    .unwrap();
    assert_eq!(r.reload_max_abs_diff, 0.0);
    assert_eq!(out.config().num_layers, 2);
    assert!(out.stored_plan().is_empty());
    let names: Vec<String> = out
        .weights()
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.iter().any(|n| n.starts_with("model.layers.1.")));
    assert!(!names.iter().any(|n| n.starts_with("model.layers.2.")));
    logits_equal(&model, &plan, &r.path);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path.join("config.json")).unwrap())
            .unwrap();
    let src_cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    for (k, v) in src_cfg.as_object().unwrap() {
        if v.as_array().is_some_and(|a| a.len() == 3) {
            assert_eq!(cfg[k].as_array().unwrap().len(), 2, "per-layer array {k}");
        }
    }
    let e = run(
        &model,
        &DropPlan::new([1], []),
        ExportFormat::Hf,
        None,
        &tmp.path().join("x"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("whole blocks only"), "{e}");
    assert!(!tmp.path().join("x").exists());
}

/// The keys vLLM's `DeciLMForCausalLM` (nemotron_nas.py) reads, and the weights it expects:
/// none for no-op modules (an unexpected weight fails its loader), all for the others.
#[test]
fn nemotron_nas_export_has_what_vllm_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let plan = DropPlan::new([0, 2], [1]);
    let (r, out) = run(
        &model,
        &plan,
        ExportFormat::NemotronNas,
        None,
        &tmp.path().join("nas"),
    )
    .unwrap();
    assert_eq!(r.reload_max_abs_diff, 0.0);
    assert_eq!(out.stored_plan(), &plan);
    logits_equal(&model, &plan, &r.path);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["architectures"],
        serde_json::json!(["DeciLMForCausalLM"])
    );
    assert_eq!(cfg["model_type"], "nemotron-nas");
    let (heads, kv, hidden, inter) = (4, 2, 64, 160);
    assert_eq!(cfg["num_attention_heads"], heads);
    let blocks = cfg["block_configs"].as_array().unwrap();
    assert_eq!(
        blocks.len(),
        cfg["num_hidden_layers"].as_u64().unwrap() as usize
    );
    let names: Vec<String> = out
        .weights()
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let has = |n: String| names.contains(&n);
    for (i, b) in blocks.iter().enumerate() {
        let a = &b["attention"];
        assert_eq!(a["no_op"].as_bool().unwrap(), plan.drops_attn(i));
        assert_eq!(a["replace_with_linear"], false);
        let attn_w = [
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "input_layernorm.weight",
        ];
        if plan.drops_attn(i) {
            assert!(attn_w.iter().all(|w| !has(format!("model.layers.{i}.{w}"))));
        } else {
            assert_eq!(heads / a["n_heads_in_group"].as_u64().unwrap(), kv);
            assert!(attn_w.iter().all(|w| has(format!("model.layers.{i}.{w}"))));
        }
        let f = &b["ffn"];
        assert_eq!(f["no_op"].as_bool().unwrap(), plan.drops_mlp(i));
        let mlp_w = [
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
            "post_attention_layernorm.weight",
        ];
        if plan.drops_mlp(i) {
            assert!(mlp_w.iter().all(|w| !has(format!("model.layers.{i}.{w}"))));
        } else {
            let size = match f.get("ffn_mult").and_then(Value::as_f64) {
                Some(m) => ffn_mult_to_intermediate(m, hidden),
                None => f["intermediate_size"].as_u64().unwrap() as usize,
            };
            assert_eq!(size, inter);
            assert!(mlp_w.iter().all(|w| has(format!("model.layers.{i}.{w}"))));
        }
    }
    // SmolLM2's shape: ffn_mult 4.0 gives 1536 exactly, as vLLM computes it
    assert_eq!(ffn_mult_to_intermediate(4.0, 576), 1536);
    let e = run(
        &testkit::tiny_dir("qwen2"),
        &DropPlan::new([0], [1]),
        ExportFormat::NemotronNas,
        None,
        &tmp.path().join("q"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("llama-family"), "{e}");
}

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
        let name = hf_to_gguf(&t.name).unwrap();
        if plan.drops_tensor(&t.name) {
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

#[test]
fn refusals_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let plan = DropPlan::new([1], []);
    // an existing folder llmdrop did not write: refused (the library call has no force)
    let dest = tmp.path().join("exists");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), "x").unwrap();
    let e = run(&model, &plan, ExportFormat::HfLlmdrop, None, &dest).unwrap_err();
    assert!(
        e.to_string().contains("never replaced, even with --force"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(dest.join("keep.txt")).unwrap(), "x");
    // its own output, without force: refused, saying how
    let own = tmp.path().join("own");
    run(&model, &plan, ExportFormat::HfLlmdrop, None, &own).unwrap();
    let e = run(&model, &plan, ExportFormat::HfLlmdrop, None, &own).unwrap_err();
    assert!(e.to_string().contains("use --force to replace it"), "{e}");
    // into the input model
    let e = run(
        &model,
        &plan,
        ExportFormat::HfLlmdrop,
        None,
        &model.join("out"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("lies inside the model"), "{e}");
    // plan out of range
    let e = run(
        &model,
        &DropPlan::new([9], []),
        ExportFormat::HfLlmdrop,
        None,
        &tmp.path().join("r"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    // every layer removed: nothing to run
    let e = run(
        &model,
        &DropPlan::new([0, 1, 2], [0, 1, 2]),
        ExportFormat::Gguf,
        None,
        &tmp.path().join("empty.gguf"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("removes all 3 layers"), "{e}");
    // a read-only parent directory: the write fails, nothing is left behind
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm.clone()).unwrap();
    let writable_anyway = std::fs::write(ro.join("probe"), "x").is_ok(); // root ignores modes
    if !writable_anyway {
        let e = run(
            &model,
            &plan,
            ExportFormat::HfLlmdrop,
            None,
            &ro.join("out"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ro"), "{e}");
        assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);
    }
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&ro, perm).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.contains(".tmp-").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
