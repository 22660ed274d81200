//! Gemma 3 exports on the tiny checkpoint saved by transformers (tests/fixtures/tiny/gemma3:
//! layers 0, 1, 3 sliding, 2 global): `hf-llmdrop` and `hf` reload as the pruned model, the
//! sandwich norms go with their modules, `layer_types` stays with its layers through
//! renumbering; GGUF (where llama.cpp would run other layer kinds, or from safetensors) and
//! nemotron-nas are refused before anything is written.

mod export_common;

use export_common::{logits_equal, run};
use llmdrop::export::ExportFormat;
use llmdrop::DropPlan;
use llmdrop_testkit as testkit;
use serde_json::{json, Value};

fn config(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn tensor_names(dir: &std::path::Path) -> Vec<String> {
    let src = llmdrop::ModelSource::open(dir).unwrap();
    src.weights()
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Attention, MLP, both, and whole blocks (the global layer among them): each reloads with
/// the pruned model's logits, lists LLM-Drop's drops, keeps every layer's kind, and holds
/// neither the dropped modules' weights nor their pre- and post-norms.
#[test]
fn tiny_gemma3_hf_llmdrop_exports_reload_as_the_pruned_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("gemma3");
    let kinds = config(&model)["layer_types"].clone();
    for (k, plan) in [
        DropPlan::new([1, 2], []),
        DropPlan::new([], [0, 3]),
        DropPlan::new([2], [1]),
        DropPlan::new([1, 2], [1, 2]),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = tmp.path().join(format!("out{k}"));
        let (r, out) = run(&model, &plan, ExportFormat::HfLlmdrop, None, &dest).unwrap();
        assert!(r.reload_max_abs_diff <= 1e-4, "{plan:?}: {r:?}");
        assert_eq!(out.stored_plan(), &plan);
        logits_equal(&model, &plan, &dest);
        let c = config(&dest);
        assert_eq!(c["drop_attn_list"], json!(plan.attn), "{plan:?}");
        assert_eq!(c["drop_mlp_list"], json!(plan.mlp), "{plan:?}");
        assert_eq!(c["layer_types"], kinds, "{plan:?}");
        assert_eq!(c["num_hidden_layers"], 4);
        let names = tensor_names(&dest);
        for &i in &plan.attn {
            for s in [
                "input_layernorm",
                "post_attention_layernorm",
                "self_attn.q_norm",
            ] {
                let n = format!("model.layers.{i}.{s}.weight");
                assert!(!names.contains(&n), "{plan:?}: {n} kept");
            }
        }
        for &i in &plan.mlp {
            for s in ["pre_feedforward_layernorm", "post_feedforward_layernorm"] {
                let n = format!("model.layers.{i}.{s}.weight");
                assert!(!names.contains(&n), "{plan:?}: {n} kept");
            }
        }
        for i in (0..4).filter(|i| !plan.drops_attn(*i)) {
            let n = format!("model.layers.{i}.post_attention_layernorm.weight");
            assert!(names.contains(&n), "{plan:?}: {n} missing");
        }
    }
}

/// A block drop renumbers the layers: `layer_types` lists the kept layers' kinds in order,
/// the sandwich norms move with their layers, and the logits are the pruned model's (the
/// global layer stays global under its new index; a sliding one after it stays sliding).
#[test]
fn tiny_gemma3_hf_block_drop_keeps_each_layer_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("gemma3");
    let kinds: Vec<String> = serde_json::from_value(config(&model)["layer_types"].clone()).unwrap();
    for (k, blocks) in [vec![1], vec![2], vec![0, 3], vec![0, 1]]
        .into_iter()
        .enumerate()
    {
        let plan = DropPlan::new(blocks.clone(), blocks.clone());
        let dest = tmp.path().join(format!("out{k}"));
        let (r, out) = run(&model, &plan, ExportFormat::Hf, None, &dest).unwrap();
        assert!(r.reload_max_abs_diff <= 1e-4, "{blocks:?}: {r:?}");
        logits_equal(&model, &plan, &dest);
        let want: Vec<&String> = (0..4)
            .filter(|i| !blocks.contains(i))
            .map(|i| &kinds[i])
            .collect();
        let c = config(&dest);
        assert_eq!(c["layer_types"], json!(want), "{blocks:?}");
        assert_eq!(c["num_hidden_layers"], json!(want.len()));
        assert!(c.get("drop_attn_list").is_none());
        assert_eq!(out.config().num_layers, want.len());
        let names = tensor_names(&dest);
        assert!(!names
            .iter()
            .any(|n| n.starts_with(&format!("model.layers.{}.", want.len()))));
        for j in 0..want.len() {
            for s in [
                "input_layernorm",
                "post_attention_layernorm",
                "pre_feedforward_layernorm",
                "post_feedforward_layernorm",
            ] {
                let n = format!("model.layers.{j}.{s}.weight");
                assert!(names.contains(&n), "{blocks:?}: {n} missing");
            }
        }
        // the config reads back as the same per-layer kinds and settings
        for (j, want) in want.iter().enumerate() {
            let kind = out.config().attn_kind(j).hf_name();
            assert_eq!(kind, want.as_str(), "{blocks:?}: layer {j}");
        }
        assert_eq!(
            out.config().local_rope,
            llmdrop::ModelSource::open(&model)
                .unwrap()
                .config()
                .local_rope
        );
    }
    // `hf` holds whole blocks only: an attention drop is refused, naming the alternatives
    let dest = tmp.path().join("attn");
    let e = run(
        &model,
        &DropPlan::new([1], []),
        ExportFormat::Hf,
        None,
        &dest,
    )
    .unwrap_err();
    assert!(e.to_string().contains("hf-llmdrop"), "{e}");
    assert!(!dest.exists());
}

/// GGUF: llama.cpp runs layer j of a Gemma 3 file global iff j % 6 == 5 and has no layer
/// without attention or MLP, and llmdrop writes Gemma GGUF only from GGUF sources; each
/// refusal says which rule. nemotron-nas is a llama-family format. Nothing is written.
#[test]
fn tiny_gemma3_gguf_and_nemotron_exports_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("gemma3");
    let cases = [
        (
            ExportFormat::NemotronNas,
            DropPlan::new([], [1]),
            "llama-family",
        ),
        (
            ExportFormat::NemotronNas,
            DropPlan::new([1], [1]),
            "llama-family",
        ),
        (
            ExportFormat::Gguf,
            DropPlan::new([], [1]),
            "no layer without attention or without MLP",
        ),
        (
            ExportFormat::Gguf,
            DropPlan::new([1], []),
            "no layer without attention or without MLP",
        ),
        // the global layer 2 lands at index 1 (sliding in llama.cpp)
        (
            ExportFormat::Gguf,
            DropPlan::new([1], [1]),
            "layer 2 (full_attention) would be layer 1",
        ),
        // even undropped: this checkpoint's global layer 2 is not where llama.cpp puts one
        (
            ExportFormat::Gguf,
            DropPlan::empty(),
            "layer 2 (full_attention) would be layer 2",
        ),
        // the layout holds (one sliding layer left at index 0), but the source is safetensors
        (
            ExportFormat::Gguf,
            DropPlan::new([0, 1, 2], [0, 1, 2]),
            "from a GGUF source only",
        ),
    ];
    for (k, (format, plan, what)) in cases.into_iter().enumerate() {
        let dest = tmp.path().join(format!("case{k}"));
        let e = run(&model, &plan, format, None, &dest).unwrap_err();
        assert!(
            matches!(e, llmdrop::Error::Unsupported { .. }),
            "case {k}, {format:?}: {e}"
        );
        assert!(e.to_string().contains(what), "case {k}, {format:?}: {e}");
        assert!(!dest.exists(), "case {k} left {}", dest.display());
    }
}

/// A source without `layer_types` (only the pattern) gets it written out, so that a block
/// drop keeps the kinds: with pattern 2 the layers are sliding, global, sliding, global.
#[test]
fn tiny_gemma3_pattern_source_gets_explicit_layer_types() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    testkit::copy_hf_dir_with(&testkit::tiny_dir("gemma3"), &src, |_, _, d| Some(d)).unwrap();
    let mut c = config(&src);
    let o = c.as_object_mut().unwrap();
    o.remove("layer_types");
    o.remove("_sliding_window_pattern");
    o.insert("sliding_window_pattern".into(), json!(2));
    std::fs::write(src.join("config.json"), c.to_string()).unwrap();
    let plan = DropPlan::new([0], [0]);
    let dest = tmp.path().join("out");
    run(&src, &plan, ExportFormat::Hf, None, &dest).unwrap();
    logits_equal(&src, &plan, &dest);
    let c = config(&dest);
    assert_eq!(
        c["layer_types"],
        json!(["full_attention", "sliding_attention", "full_attention"])
    );
    assert!(c.get("sliding_window_pattern").is_none());
}
