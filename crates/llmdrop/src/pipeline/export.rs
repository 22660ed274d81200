//! Export with a reload check: the written model is read back and compared with the
//! in-memory pruned model.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use serde::Deserialize;
use serde_json::json;

use super::events::{Event, Observer};
use super::ModelOptions;
use crate::budget::{self, ExportNeed, MemoryPolicy, ScoreMode};
use crate::dest::{self, Inputs};
use crate::error::{Error, Result};
use crate::export::{export, ExportFormat, ExportInfo, ExportRequest, ExportResult, Reference};
use crate::io::source::ModelSource;
use crate::plan::DropPlan;

/// Ids the export is checked on: a fixed sentence with words, digits and code.
pub const PROBE_TEXT: &str =
    "The quick brown fox jumps over the lazy dog. In 1969, 3 astronauts flew to the Moon; print('hello')";

/// Where and how a pruned model is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    pub format: ExportFormat,
    /// Tensor type for GGUF output from a safetensors model (`None`: the format's default).
    pub quant: Option<GgmlDType>,
    /// Output folder (or .gguf file).
    pub out: PathBuf,
    /// Replace an existing model output.
    pub force: bool,
    /// nemotron-nas: write a plan whose first kept layer has no attention, which vLLM cannot
    /// run ([`crate::PlanError::FirstAttentionDropped`]).
    pub allow_first_attn_drop: bool,
}

impl ExportTarget {
    /// `format` to `out`, default tensor type, no replacing.
    pub fn new(format: ExportFormat, out: impl Into<PathBuf>) -> Self {
        Self {
            format,
            quant: None,
            out: out.into(),
            force: false,
            allow_first_attn_drop: false,
        }
    }
}

/// What [`export_model`] applies to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub target: ExportTarget,
    /// Layers to drop (joined with the plan file's).
    pub plan: DropPlan,
    /// A plan.json (as the drop workflow writes) to apply; it must name this model.
    pub plan_file: Option<PathBuf>,
    /// Whether the reload check holds both models or streams their layers, and the memory
    /// it may use.
    pub memory: MemoryPolicy,
}

impl ExportOptions {
    /// Writes the model unchanged (but for `plan`) as `format` to `out`.
    pub fn new(format: ExportFormat, out: impl Into<PathBuf>) -> Self {
        Self {
            target: ExportTarget::new(format, out),
            plan: DropPlan::empty(),
            plan_file: None,
            memory: MemoryPolicy::default(),
        }
    }
}

#[derive(Deserialize)]
struct PlanFile {
    plan: DropPlan,
    #[serde(default)]
    info: Option<serde_json::Value>,
}

/// Writes the model with `opts.plan` (and the plan file's drops) applied, then reloads it
/// and compares its logits with the in-memory pruned model.
pub fn export_model(
    model: &ModelOptions,
    opts: &ExportOptions,
    obs: &mut dyn Observer,
) -> Result<ExportResult> {
    let t = &opts.target;
    let src = model.open()?;
    let mut inputs = Inputs::of_model(src.path());
    inputs.add_opt("plan", opts.plan_file.as_deref());
    dest::check(&t.out, t.format.dest_kind(), &inputs, t.force)?;
    let sha = crate::io::hash::model_sha256(&src)?;
    let mut plan = opts.plan.clone();
    if let Some(p) = &opts.plan_file {
        let f: PlanFile = read_plan_file(p)?;
        if let Some(want) = f.info.as_ref().and_then(|i| i["source_sha256"].as_str()) {
            if want != sha {
                return Err(crate::PlanError::OtherModel {
                    plan_file: p.clone(),
                    want: want.into(),
                    model: src.path().into(),
                    found: sha,
                }
                .into());
            }
        }
        plan = plan.union(&f.plan);
    }
    plan.validate(src.config().num_layers)?;
    let details = json!({"via": "llmdrop export"});
    export_and_check(&src, &sha, &plan, t, &opts.memory, details, obs)
}

/// Reads a plan.json as the drop workflow writes it.
pub(crate) fn read_plan_file<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = crate::io::text::read_utf8_limited(p, crate::io::text::MAX_JSON_BYTES)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::context(format!("{}: not a plan.json", p.display()), e))
}

/// Exports `plan` applied to `src` (whose sha256 is `sha`) to `target`, verified against
/// the pruned model (f32): held beside the reloaded export when both fit `memory` (and
/// streaming is not forced), else both run layer by layer ([`Reference::Streamed`]); says
/// which ([`Event::ExportCheckMode`]) before writing. `details` go into the export's info.
pub fn export_and_check(
    src: &ModelSource,
    sha: &str,
    plan: &DropPlan,
    target: &ExportTarget,
    memory: &MemoryPolicy,
    details: serde_json::Value,
    obs: &mut dyn Observer,
) -> Result<ExportResult> {
    // a plan the format refuses is refused before the model is loaded
    crate::export::refuse_plan(src, plan, target.format, target.allow_first_attn_drop)?;
    let tok = src.tokenizer()?;
    let probe = tok.encode(PROBE_TEXT)?;
    let mut unique = probe.clone();
    unique.sort_unstable();
    unique.dedup();
    let models = if crate::export::rounds(src, target.format, target.quant) {
        3
    } else {
        2
    };
    let need = ExportNeed::estimate(src, probe.len(), unique.len(), models);
    let choice = budget::choose(&need, memory)?;
    obs.event(Event::ExportCheckMode { choice });
    let held = match choice.mode {
        ScoreMode::InMemory => Some(src.load_decoder(plan, DType::F32, &Device::Cpu)?),
        ScoreMode::Streamed => None,
    };
    let reference = match &held {
        Some(d) => Reference::Held(d),
        None => Reference::Streamed,
    };
    let info = ExportInfo {
        tool_version: crate::VERSION.into(),
        source_model: src.path().display().to_string(),
        source_sha256: Some(sha.to_string()),
        details,
    };
    let r = export(&ExportRequest {
        source: src,
        tokenizer: &tok,
        plan,
        format: target.format,
        quant: target.quant,
        info: &info,
        dest: &target.out,
        force: target.force,
        reference,
        probe: &probe,
        allow_first_attn_drop: target.allow_first_attn_drop,
    })?;
    for p in &r.stale_removed {
        obs.event(Event::StaleRemoved { path: p });
    }
    Ok(r)
}
