use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::pipeline::{self, ScoringOptions, DEFAULT_SCORES_FILE};
use llmdrop::report::ScoreReport;
use llmdrop::score::ScoreTable;

use crate::args::{CalibArgs, Ctx, ModelArgs};
use crate::memory_args::MemoryArgs;
use crate::output;
use crate::progress::Console;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Where to write the scores.
    #[arg(long, default_value = DEFAULT_SCORES_FILE)]
    out: PathBuf,
    /// Also write SVG plots (per-layer bars, consecutive heatmap) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(a: ScoreArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let opts = ScoringOptions {
        calib: a.calib.options(),
        out: a.out.clone(),
        plot: a.plot.clone(),
        memory: a.memory.policy(),
    };
    let report = pipeline::score_model(&a.model.options(), &opts, &mut Console::new(ctx))?;
    if ctx.json {
        output::print_json("score", &report)?;
    } else {
        output::print_text(&render_table(&report))?;
        if !ctx.quiet {
            eprintln!("scores written to {}", a.out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-layer table: similarity and rank (1 = most redundant) of each kind.
pub fn render_table(r: &ScoreReport) -> String {
    let t = &r.table;
    let (rb, ra, rm) = (
        ScoreTable::ranks(&t.block),
        ScoreTable::ranks(&t.attn),
        ScoreTable::ranks(&t.mlp),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} calibration tokens ({} x {}), {:.0} tokens/s ({:.1} GFLOP/s), {} threads{}",
        t.tokens,
        r.settings.samples,
        r.settings.seq_len,
        r.tokens_per_sec,
        r.gflops_per_sec,
        r.threads,
        if t.residual { "" } else { ", without residual" }
    );
    let _ = writeln!(s, "layer  block sim  rank  attn sim  rank  mlp sim   rank");
    for i in 0..t.num_layers {
        let _ = writeln!(
            s,
            "{i:>5}  {:>9.6}  {:>4}  {:>8.6}  {:>4}  {:>8.6}  {:>4}",
            t.block[i], rb[i], t.attn[i], ra[i], t.mlp[i], rm[i]
        );
    }
    s
}
