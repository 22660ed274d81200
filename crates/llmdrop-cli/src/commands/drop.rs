use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::pipeline::{self, DropOptions, ExportTarget};

use crate::args::{CalibArgs, ModelArgs};
use crate::output;
use crate::progress::Console;

#[derive(Args)]
pub struct DropArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// block, consecutive, attn, mlp or joint.
    #[arg(long)]
    strategy: String,
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
    /// Output format: hf-llmdrop (default), hf (block drops), nemotron-nas, gguf.
    #[arg(long, default_value = "hf-llmdrop")]
    format: String,
    /// Tensor type for GGUF output from a safetensors model: f32, f16, q8_0, q4_k.
    #[arg(long)]
    quant: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: DropArgs) -> anyhow::Result<ExitCode> {
    let opts = DropOptions {
        calib: a.calib.options(),
        strategy: a.strategy.parse()?,
        n: a.n,
        iterative: a.iterative,
        keep_first: a.keep_first,
        keep_last: a.keep_last,
        scores: a.scores.clone(),
        target: ExportTarget {
            format: a.format.parse()?,
            quant: a
                .quant
                .as_deref()
                .map(llmdrop::export::gguf::parse_quant)
                .transpose()?,
            out: a.out.clone(),
            force: a.force,
        },
    };
    let r = pipeline::drop_layers(&a.model.options()?, &opts, &mut Console::new(a.json))?;
    if a.json {
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
