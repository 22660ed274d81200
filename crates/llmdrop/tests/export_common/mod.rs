//! What the export tests share: export a plan and reload it; compare logits.

#![allow(dead_code)]

use candle_core::{DType, Device};
use llmdrop::export::{export, ExportFormat, ExportInfo, ExportRequest};
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit as testkit;
use serde_json::Value;

pub fn info() -> ExportInfo {
    ExportInfo {
        tool_version: llmdrop::VERSION.into(),
        source_model: "test".into(),
        source_sha256: None,
        details: Value::Null,
    }
}

pub fn probe() -> Vec<u32> {
    (0..40).map(|i| (i * 29 + 11) % 256).collect()
}

/// Exports `plan` of `model` as `format` into `dest` and returns the reloaded source.
pub fn run(
    model: &std::path::Path,
    plan: &DropPlan,
    format: ExportFormat,
    quant: Option<candle_core::quantized::GgmlDType>,
    dest: &std::path::Path,
) -> llmdrop::Result<(llmdrop::export::ExportResult, ModelSource)> {
    run_with(model, plan, format, quant, dest, false)
}

/// [`run`], with `allow_first_attn_drop` set as given.
pub fn run_with(
    model: &std::path::Path,
    plan: &DropPlan,
    format: ExportFormat,
    quant: Option<candle_core::quantized::GgmlDType>,
    dest: &std::path::Path,
    allow_first_attn_drop: bool,
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
        reference: llmdrop::export::Reference::Held(&reference),
        probe: &probe(),
        allow_first_attn_drop,
    })?;
    let out = ModelSource::open(&r.path)?;
    Ok((r, out))
}

pub fn logits_equal(a: &std::path::Path, plan_a: &DropPlan, b: &std::path::Path) {
    let ids = vec![probe()];
    let (_, da) = testkit::load(a, plan_a).unwrap();
    let (_, db) = testkit::load(b, &DropPlan::empty()).unwrap();
    let d = testkit::max_abs_diff(
        &testkit::logits(&da, &ids).unwrap(),
        &testkit::logits(&db, &ids).unwrap(),
    );
    assert!(d <= 1e-5, "max |Δlogit| {d}");
}
