use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::pipeline::{self, Resume, ScoringOptions, DEFAULT_SCORES_FILE};
use llmdrop::report::ScoreReport;
use llmdrop::score::ScoreTable;
use serde::Serialize;

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
    /// Start over: layer-streamed scoring saves its progress after every layer (in
    /// .llmdrop-resume-ID beside --out, or in --spill-dir) and a rerun of the same model,
    /// data and settings resumes from it; this removes that checkpoint first.
    #[arg(long, conflicts_with = "no_checkpoint")]
    no_resume: bool,
    /// Layer-streamed scoring without a checkpoint: an interrupted run starts over.
    #[arg(long)]
    no_checkpoint: bool,
}

/// `score --json`: the report and the machine's f32 limit measured in the same run.
#[derive(Serialize)]
struct ScoreJson<'a> {
    #[serde(flatten)]
    report: &'a ScoreReport,
    /// f32 fused multiply-adds on registers, all threads of this run, GFLOP/s.
    fma_peak_gflops: f64,
    /// `gflops_per_sec` / `fma_peak_gflops`.
    fraction_of_fma_peak: f64,
    /// With `--dtype bf16` or `bf16-mixed`: the bf16 kernels' limit (AMX tiles or
    /// `vdpbf16ps`), all threads of this run, GFLOP/s, and `gflops_per_sec` against it
    /// (the products run there; the rest of the FLOPs are few).
    #[serde(skip_serializing_if = "Option::is_none")]
    bf16_peak_gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fraction_of_bf16_peak: Option<f64>,
    /// The share of the machine's CPU time the hypervisor gave to other guests during the
    /// run (Linux's `steal`; 0 on bare metal, None where it cannot be read).
    cpu_stolen_fraction: Option<f64>,
    /// `fraction_of_fma_peak` against the CPU time the run had: the limit scaled by
    /// 1 − `cpu_stolen_fraction`.
    fraction_of_fma_peak_unstolen: Option<f64>,
}

pub fn run(a: ScoreArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let opts = ScoringOptions {
        calib: a.calib.options(),
        out: a.out.clone(),
        plot: a.plot.clone(),
        memory: a.memory.policy(),
        spill_dir: a.memory.spill_dir.clone(),
        resume: match (a.no_resume, a.no_checkpoint) {
            (_, true) => Resume::Off,
            (true, _) => Resume::Fresh,
            _ => Resume::Auto,
        },
    };
    let cpu_before = llmdrop_kernels::steal::CpuTimes::now();
    let report = pipeline::score_model(&a.model.options(), &opts, &mut Console::new(ctx));
    let stolen = cpu_before
        .zip(llmdrop_kernels::steal::CpuTimes::now())
        .and_then(|(a, b)| a.stolen_until(&b));
    crate::progress::checkpoint_done();
    let report = report?;
    if ctx.json {
        // measured after the run, with the same threads: the yardstick of `gflops_per_sec`
        let fma_peak_gflops = llmdrop_kernels::peak::fma_peak_gflops(50_000_000, 5);
        let bf16 = matches!(a.model.dtype.name(), "bf16" | "bf16-mixed");
        let bf16_peak_gflops = bf16
            .then(|| llmdrop_kernels::peak::bf16_peak_gflops(50_000_000, 5))
            .flatten();
        let fraction = report.gflops_per_sec / fma_peak_gflops;
        let doc = ScoreJson {
            fraction_of_fma_peak: fraction,
            cpu_stolen_fraction: stolen,
            fraction_of_fma_peak_unstolen: stolen
                .filter(|&s| s < 1.0)
                .map(|s| fraction / (1.0 - s)),
            fma_peak_gflops,
            fraction_of_bf16_peak: bf16_peak_gflops.map(|p| report.gflops_per_sec / p),
            bf16_peak_gflops,
            report: &report,
        };
        output::print_json("score", &doc)?;
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
