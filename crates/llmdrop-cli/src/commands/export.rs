use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::export::gguf::parse_quant;
use llmdrop::export::ExportResult;
use llmdrop::pipeline::{self, ExportOptions, ExportTarget, ModelOptions};

use crate::args::{DropArgs, ModelArgs};
use crate::output;
use crate::progress::Console;

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

pub fn run(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = a.format.parse()?;
    let quant = a.quant.as_deref().map(parse_quant).transpose()?;
    // a pruned folder replaces --model (its drop lists are the plan)
    let model = match &a.pruned {
        Some(d) => ModelOptions::new(d),
        None => ModelOptions {
            path: a.model.model.clone(),
            ..ModelOptions::default()
        },
    };
    let opts = ExportOptions {
        target: ExportTarget {
            format,
            quant,
            out: a.out.clone(),
            force: a.force,
        },
        plan: a.drop.plan()?,
        plan_file: a.plan.clone(),
    };
    let result = pipeline::export_model(&model, &opts, &mut Console::new(a.json))?;
    report(&result, a.json)
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
