//! Exports: every format reloads as the pruned model; keys engines rely on are present;
//! refusals leave nothing behind. GGUF exports: export_gguf.rs.

mod export_common;

use export_common::{logits_equal, run};
use llmdrop::export::{ffn_mult_to_intermediate, ExportFormat};
use llmdrop::DropPlan;
use llmdrop_testkit as testkit;
use serde_json::Value;

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
    // layer 0 keeps its attention: vLLM cannot run a first kept layer without one
    // (export_nemotron.rs)
    let plan = DropPlan::new([1, 2], [0]);
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
        e.to_string().contains("never replaced, even with `force`"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(dest.join("keep.txt")).unwrap(), "x");
    // its own output, without force: refused, saying how
    let own = tmp.path().join("own");
    run(&model, &plan, ExportFormat::HfLlmdrop, None, &own).unwrap();
    let e = run(&model, &plan, ExportFormat::HfLlmdrop, None, &own).unwrap_err();
    assert!(e.to_string().contains("replacing it needs `force`"), "{e}");
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
