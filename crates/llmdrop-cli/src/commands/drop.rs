use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::quantized::GgmlDType;
use clap::Args;
use llmdrop::export::ExportFormat;
use llmdrop::pipeline::{self, DropOptions, ExportTarget};
use llmdrop::strategy::Strategy;

use crate::args::{format_parser, quant_parser, strategy_parser, CalibArgs, Ctx, ModelArgs};
use crate::memory_args::MemoryArgs;
use crate::output;
use crate::progress::Console;

#[derive(Args)]
pub struct DropArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// What is ranked and dropped: blocks, consecutive blocks, attention or MLP layers, or
    /// attention and MLP layers ranked together.
    #[arg(long, value_parser = strategy_parser())]
    strategy: Strategy,
    /// How many modules (blocks, attention or MLP layers) to drop.
    #[arg(short = 'n', long = "count")]
    n: usize,
    /// Drop one module at a time and re-score the pruned model in between.
    #[arg(long)]
    iterative: bool,
    /// Protect the first K layers.
    #[arg(long, default_value_t = 0)]
    keep_first: usize,
    /// Protect the last K layers.
    #[arg(long, default_value_t = 0)]
    keep_last: usize,
    /// Scores file: reused when it was computed from this model, data and settings;
    /// otherwise the model is scored and the file (re)written.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Output directory for the pruned model (HF format with drop lists).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Output format (hf: block drops only).
    #[arg(long, default_value = "hf-llmdrop", value_parser = format_parser())]
    format: ExportFormat,
    /// Tensor type for GGUF output from a safetensors model (as for `llmdrop export`).
    #[arg(long, value_parser = quant_parser())]
    quant: Option<GgmlDType>,
    /// nemotron-nas: write the export even when the first layer it keeps anything of has no
    /// attention. vLLM cannot run such an export (its DeciLM layer calls the fused residual
    /// RMSNorm with no residual and fails); llmdrop and transformers can.
    #[arg(long)]
    allow_first_attn_drop: bool,
    #[command(flatten)]
    memory: MemoryArgs,
}

pub fn run(a: DropArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let opts = DropOptions {
        calib: a.calib.options(),
        strategy: a.strategy,
        n: a.n,
        iterative: a.iterative,
        keep_first: a.keep_first,
        keep_last: a.keep_last,
        scores: a.scores.clone(),
        target: ExportTarget {
            format: a.format,
            quant: a.quant,
            out: a.out.clone(),
            force: a.force,
            allow_first_attn_drop: a.allow_first_attn_drop,
        },
        memory: a.memory.policy(),
        spill_dir: a.memory.spill_dir.clone(),
    };
    let r = pipeline::drop_layers(&a.model.options(), &opts, &mut Console::new(ctx))?;
    if ctx.json {
        output::print_json("drop", &r)?;
    } else {
        output::print_text(&format!(
            "dropped attention {:?}, MLP {:?} ({}{} {})\nwrote {} (reloaded: max |Δlogit| {:e})\n",
            r.plan.attn,
            r.plan.mlp,
            if r.iterative { "iterative " } else { "" },
            r.strategy,
            r.n,
            r.out,
            r.reload_max_abs_diff
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
