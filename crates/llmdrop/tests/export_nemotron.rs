//! nemotron-nas exports against an independent reference, and the plans vLLM cannot run.
//!
//! tests/fixtures/tiny/llama/nemotron_ref.json holds the logits transformers computed for the
//! tiny llama's nemotron-nas export (attention and MLP drops), loaded with
//! `trust_remote_code` through the export's own configuration and modeling files
//! (scripts/fixtures/make_nemotron.py, which also checks those files against transformers'
//! LlamaForCausalLM on the same weights).

mod export_common;

use candle_core::{DType, Device, Tensor};
use export_common::{run, run_with};
use llmdrop::export::{nemotron_auto_map as auto_map, ExportFormat, NEMOTRON_PY_FILES as PY_FILES};
use llmdrop::{DropPlan, PlanError};
use llmdrop_testkit as testkit;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    plan: DropPlan,
    ids: Vec<u32>,
    /// Per position, every logit.
    logits: Vec<Vec<f32>>,
    /// The same export run in float64.
    logits_f64: Vec<Vec<f64>>,
}

fn fixture() -> Fixture {
    let p = testkit::tiny_dir("llama").join("nemotron_ref.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// The tiny llama exported as nemotron-nas with the fixture's plan, into `dir`/nas.
fn export_fixture_plan(
    fx: &Fixture,
    dir: &std::path::Path,
) -> (llmdrop::export::ExportResult, llmdrop::ModelSource) {
    run(
        &testkit::tiny_dir("llama"),
        &fx.plan,
        ExportFormat::NemotronNas,
        None,
        &dir.join("nas"),
    )
    .unwrap()
}

fn config(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// llmdrop's logits of its own export equal what transformers computed for that export with
/// the export's modeling file; the files `auto_map` names are written.
#[test]
fn nemotron_export_matches_transformers_with_its_modeling_file() {
    let fx = fixture();
    assert!(!fx.plan.attn.is_empty() && !fx.plan.mlp.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let (r, out) = export_fixture_plan(&fx, tmp.path());
    assert_eq!(out.stored_plan(), &fx.plan);
    let (_, dec) = testkit::load(&r.path, &DropPlan::empty()).unwrap();
    let got = testkit::logits(&dec, std::slice::from_ref(&fx.ids)).unwrap();
    let want: Vec<f32> = fx.logits.concat();
    assert_eq!(got.len(), want.len());
    let d = testkit::max_abs_diff(&got, &want);
    assert!(d <= 1e-4, "max |Δlogit| {d} against transformers");
    // the dropped modules matter: the unpruned model is far from the fixture
    let (_, full) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::empty()).unwrap();
    let d_full = testkit::max_abs_diff(&testkit::logits(&full, &[fx.ids]).unwrap(), &want);
    assert!(
        d_full > 1e-2,
        "the fixture does not tell the plan apart: {d_full}"
    );

    let cfg = config(&r.path);
    assert_eq!(cfg["auto_map"], auto_map());
    for class in cfg["auto_map"].as_object().unwrap().values() {
        let module = class.as_str().unwrap().split('.').next().unwrap();
        assert!(r.path.join(format!("{module}.py")).is_file(), "{class}");
    }
    for (name, text) in PY_FILES {
        assert_eq!(std::fs::read_to_string(r.path.join(name)).unwrap(), text);
    }
    // the repository's files are what is embedded
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/formats/nemotron_py");
    for (name, text) in PY_FILES {
        assert_eq!(std::fs::read_to_string(src.join(name)).unwrap(), text);
    }
}

/// In the reference precision (`--dtype f64`) llmdrop and the modeling file agree to the
/// last digits f64 keeps, far closer than either float32 run is to them: every step of the
/// f64 path computes in f64.
#[test]
fn nemotron_export_in_f64_matches_transformers_in_float64() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (r, _) = export_fixture_plan(&fx, tmp.path());
    let src = llmdrop::ModelSource::open(&r.path).unwrap();
    let ids = Tensor::new(fx.ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = |dtype: DType| -> Vec<f64> {
        let dec = src
            .load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)
            .unwrap();
        let l = dec.exact_logits(&ids).unwrap();
        assert_eq!(
            l.dtype(),
            if dtype == DType::F64 {
                DType::F64
            } else {
                DType::F32
            }
        );
        l.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let want: Vec<f64> = fx.logits_f64.concat();
    let dist = |got: &[f64]| {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    let d64 = dist(&logits(DType::F64));
    let d32 = dist(&logits(DType::F32));
    assert!(
        d64 <= 1e-12,
        "f64: max |Δlogit| {d64} against transformers in float64"
    );
    assert!(
        d32 > 1e-8,
        "the float32 run is as close as f64 ({d32}): the check tells nothing"
    );
}

/// Re-exporting an export in another format does not carry `auto_map` over without its
/// files, and writes a llama config.
#[test]
fn other_formats_do_not_copy_auto_map() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = DropPlan::new([1], []);
    let (r, _) = run(
        &testkit::tiny_dir("llama"),
        &plan,
        ExportFormat::NemotronNas,
        None,
        &tmp.path().join("nas"),
    )
    .unwrap();
    let (again, _) = run(
        &r.path,
        &DropPlan::new([], [2]),
        ExportFormat::HfLlmdrop,
        None,
        &tmp.path().join("hf"),
    )
    .unwrap();
    let cfg = config(&again.path);
    assert!(cfg.get("auto_map").is_none());
    assert!(!again.path.join(PY_FILES[1].0).exists());
    // a llama config: DeciLM's block_configs would disagree with the re-export's weights
    assert_eq!(cfg["model_type"], "llama");
    assert_eq!(
        cfg["architectures"],
        serde_json::json!(["LlamaForCausalLM"])
    );
    assert!(cfg.get("block_configs").is_none());
    let tiny = config(&testkit::tiny_dir("llama"));
    for k in [
        "intermediate_size",
        "num_key_value_heads",
        "num_attention_heads",
    ] {
        assert_eq!(cfg[k], tiny[k], "{k}");
    }
    // both plans recorded, and it reloads as the model with both
    let (_, reloaded) = testkit::load(&again.path, &DropPlan::empty()).unwrap();
    let (_, want) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::new([1], [2])).unwrap();
    let ids = [vec![1u32, 5, 9, 3]];
    let d = testkit::max_abs_diff(
        &testkit::logits(&reloaded, &ids).unwrap(),
        &testkit::logits(&want, &ids).unwrap(),
    );
    assert_eq!(d, 0.0);
}

/// vLLM's DeciLM layer calls its fused residual RMSNorm with no residual when the first layer
/// that keeps anything has no attention: refused (nothing written) unless allowed.
#[test]
fn first_kept_layer_without_attention_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    for (attn, mlp, layer) in [(vec![0], vec![], 0), (vec![0, 1], vec![0], 1)] {
        let plan = DropPlan::new(attn, mlp);
        let dest = tmp.path().join(format!("refused{layer}"));
        let e = run(&model, &plan, ExportFormat::NemotronNas, None, &dest).unwrap_err();
        assert!(
            matches!(e, llmdrop::Error::Plan(PlanError::FirstAttentionDropped { layer: l }) if l == layer),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("vLLM") && msg.contains("residual = None"),
            "{msg}"
        );
        assert!(msg.contains("allow_first_attn_drop"), "{msg}");
        assert!(!dest.exists());
        // allowed: written, and it reloads as the pruned model
        let dest = tmp.path().join(format!("allowed{layer}"));
        let (r, out) =
            run_with(&model, &plan, ExportFormat::NemotronNas, None, &dest, true).unwrap();
        assert_eq!(r.reload_max_abs_diff, 0.0);
        assert_eq!(out.stored_plan(), &plan);
    }
    // safe plans: leading blocks dropped whole, then a kept attention; other formats
    for (plan, format) in [
        (DropPlan::new([0], [0]), ExportFormat::NemotronNas),
        (DropPlan::new([0, 2], [0, 1]), ExportFormat::NemotronNas),
        (DropPlan::new([0], []), ExportFormat::HfLlmdrop),
    ] {
        let dest = tmp.path().join(format!("ok-{:?}-{:?}", plan.attn, format));
        run(&model, &plan, format, None, &dest).unwrap();
    }
}
