use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::pipeline::{
    self, SweepOptions, DEFAULT_FEWSHOT_SEED, DEFAULT_PPL_SEQ_LEN, DEFAULT_STRATEGIES,
    DEFAULT_SWEEP_DIR, DEFAULT_TASKS,
};
use llmdrop::strategy::Strategy;

use crate::args::{strategy_parser, CalibArgs, Ctx, ModelArgs};
use crate::output;
use crate::progress::Console;

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// Strategies to sweep, comma-separated.
    #[arg(long, default_value = DEFAULT_STRATEGIES, value_delimiter = ',',
          value_parser = strategy_parser())]
    strategies: Vec<Strategy>,
    /// Largest number of units to drop.
    #[arg(long, default_value_t = SweepOptions::default().max)]
    max: usize,
    /// Step between drop counts (0, step, 2 step, … max).
    #[arg(long, default_value_t = SweepOptions::default().step)]
    step: usize,
    #[arg(long, default_value_t = 0)]
    keep_first: usize,
    #[arg(long, default_value_t = 0)]
    keep_last: usize,
    /// Tasks (as for `llmdrop eval`).
    #[arg(long, default_value = DEFAULT_TASKS, value_delimiter = ',')]
    tasks: Vec<String>,
    #[arg(long, default_value_t = 0)]
    shots: usize,
    #[arg(long, default_value_t = DEFAULT_FEWSHOT_SEED)]
    seed_fewshot: u64,
    /// Use only the first N examples of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Perplexity text (default: the cached docutils reStructuredText primer).
    #[arg(long)]
    ppl_data: Option<PathBuf>,
    #[arg(long, default_value_t = DEFAULT_PPL_SEQ_LEN)]
    ppl_seq_len: usize,
    /// Output directory: scores.json, results.json (resumable), report.md, *.svg.
    #[arg(long, default_value = DEFAULT_SWEEP_DIR)]
    out: PathBuf,
}

pub fn run(a: SweepArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    if a.step == 0 {
        anyhow::bail!("--step must be positive");
    }
    let opts = SweepOptions {
        calib: a.calib.options(),
        strategies: a.strategies.clone(),
        max: a.max,
        step: a.step,
        keep_first: a.keep_first,
        keep_last: a.keep_last,
        tasks: a.tasks.clone(),
        shots: a.shots,
        seed_fewshot: a.seed_fewshot,
        limit: a.limit,
        ppl_data: a.ppl_data.clone(),
        ppl_seq_len: a.ppl_seq_len,
        out: a.out.clone(),
    };
    let done = pipeline::sweep(&a.model.options(), &opts, &mut Console::new(ctx))?;
    if ctx.json {
        output::print_json("sweep", &done.results)?;
    } else {
        output::print_text(&done.markdown)?;
        if !ctx.quiet {
            eprintln!("wrote {}", a.out.display());
        }
    }
    Ok(output::checked(done.results.non_finite()))
}
