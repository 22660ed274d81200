use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use candle_core::{DType, Device};
use clap::Args;
use llmdrop::dest::{self, Inputs};
use llmdrop::export::gguf::parse_quant;
use llmdrop::export::{export, ExportFormat, ExportInfo, ExportResult};
use llmdrop::{DropPlan, ModelSource};
use serde::Deserialize;
use serde_json::json;

use crate::args::{DropArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// A plan.json (as `llmdrop drop` writes) to apply to --model.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// A pruned model directory (its drop lists are the plan); replaces --model.
    #[arg(long)]
    pruned: Option<PathBuf>,
    /// hf-llmdrop, hf (block drops), nemotron-nas, gguf.
    #[arg(long)]
    format: String,
    /// Tensor type for GGUF output from a safetensors model: f32, f16 (default), q8_0, q6_k,
    /// q5_0, q4_k, q4_1, q4_0. K-quants fall back as llama.cpp's quantizer does for rows that
    /// are not a multiple of 256 (q4_k -> q5_0, q6_k -> q8_0).
    #[arg(long)]
    quant: Option<String>,
    /// Output directory (or .gguf file).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct PlanFile {
    plan: DropPlan,
    #[serde(default)]
    info: Option<serde_json::Value>,
}

/// Ids the export is checked on: a fixed sentence with words, digits and code.
pub const PROBE_TEXT: &str =
    "The quick brown fox jumps over the lazy dog. In 1969, 3 astronauts flew to the Moon; print('hello')";

pub fn run(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let format: ExportFormat = a.format.parse()?;
    let quant = a.quant.as_deref().map(parse_quant).transpose()?;
    let src = match &a.pruned {
        Some(d) => ModelSource::open(d)?,
        None => a.model.open()?,
    };
    let mut inputs = Inputs::of_model(src.path());
    inputs.add_opt("plan", a.plan.as_deref());
    dest::check(&a.out, format.dest_kind(), &inputs, a.force)?;
    let sha = llmdrop::io::hash::model_sha256(&src)?;
    let mut plan = a.drop.plan()?;
    if let Some(p) = &a.plan {
        let text = llmdrop::io::text::read_utf8_limited(p, llmdrop::io::text::MAX_JSON_BYTES)?;
        let f: PlanFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a plan.json", p.display()))?;
        if let Some(want) = f.info.as_ref().and_then(|i| i["source_sha256"].as_str()) {
            if want != sha {
                anyhow::bail!(
                    "{}: the plan was made for another model (sha256 {want}), not {} ({sha})",
                    p.display(),
                    src.path().display()
                );
            }
        }
        plan = plan.union(&f.plan);
    }
    plan.validate(src.config().num_layers)?;
    let result = export_and_check(
        &src,
        &sha,
        &plan,
        format,
        quant,
        json!({"via": "llmdrop export"}),
        &a.out,
        a.force,
    )?;
    report(&result, a.json)
}

/// Exports with verification against the in-memory pruned model (f32).
#[allow(clippy::too_many_arguments)]
pub fn export_and_check(
    src: &ModelSource,
    sha: &str,
    plan: &DropPlan,
    format: ExportFormat,
    quant: Option<candle_core::quantized::GgmlDType>,
    details: serde_json::Value,
    out: &std::path::Path,
    force: bool,
) -> anyhow::Result<ExportResult> {
    let tok = src.tokenizer()?;
    let reference = src.load_decoder(plan, DType::F32, &Device::Cpu)?;
    let probe = tok.encode(PROBE_TEXT)?;
    let info = ExportInfo {
        tool_version: llmdrop::VERSION.into(),
        source_model: src.path().display().to_string(),
        source_sha256: Some(sha.to_string()),
        details,
    };
    let r = export(
        src, &tok, plan, format, quant, &info, out, force, &reference, &probe,
    )?;
    for p in &r.stale_removed {
        eprintln!(
            "llmdrop: removed {}, left by an interrupted run",
            output::printable(&p.display().to_string())
        );
    }
    Ok(r)
}

pub fn report(r: &ExportResult, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json("export", r)?;
    } else {
        output::print_text(&format!(
            "wrote {} ({:?}): attention {:?}, MLP {:?} dropped\nreloaded: max |Δlogit| {:e}, same next token at {:.1}% of positions{}\n",
            r.path.display(),
            r.format,
            r.plan.attn,
            r.plan.mlp,
            r.reload_max_abs_diff,
            100.0 * r.reload_argmax_agreement,
            if r.lossless { "" } else { " (quantized)" }
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
