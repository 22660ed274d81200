use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::quantized::GgmlDType;
use clap::Args;
use llmdrop::export::{ExportFormat, ExportResult};
use llmdrop::pipeline::{self, ExportOptions, ExportTarget, ModelOptions};

use crate::args::{format_parser, quant_parser, Ctx, DropArgs, ModelArgs};
use crate::memory_args::BudgetArgs;
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
    /// Output format (hf: block drops only).
    #[arg(long, value_parser = format_parser())]
    format: ExportFormat,
    /// Tensor type for GGUF output from a safetensors model (default f16). K-quants fall
    /// back as llama.cpp's quantizer does for rows that are not a multiple of 256
    /// (q4_k -> q5_0, q6_k -> q8_0).
    #[arg(long, value_parser = quant_parser())]
    quant: Option<GgmlDType>,
    /// Output directory (or .gguf file).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    /// nemotron-nas: write the export even when the first layer it keeps anything of has no
    /// attention. vLLM cannot run such an export (its DeciLM layer calls the fused residual
    /// RMSNorm with no residual and fails); llmdrop and transformers can.
    #[arg(long)]
    allow_first_attn_drop: bool,
    #[command(flatten)]
    memory: BudgetArgs,
}

pub fn run(a: ExportArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
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
            format: a.format,
            quant: a.quant,
            out: a.out.clone(),
            force: a.force,
            allow_first_attn_drop: a.allow_first_attn_drop,
        },
        plan: a.drop.plan(),
        plan_file: a.plan.clone(),
        memory: a.memory.policy(),
    };
    let result = pipeline::export_model(&model, &opts, &mut Console::new(ctx))?;
    report(&result, ctx.json)
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
