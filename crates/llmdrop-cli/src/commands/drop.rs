use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::dest::{self, Inputs, Kind};
use llmdrop::export::ExportFormat;
use llmdrop::model::Outputs;
use llmdrop::plan::strategy::{select, select_iterative, SelectOptions, Strategy};
use llmdrop::progress::NoProgress;
use llmdrop::report::ScoreReport;
use llmdrop::score::{score, ScoreOptions};
use llmdrop::DropPlan;
use serde::Serialize;
use serde_json::json;

use super::score::{calibration, run_scoring};
use crate::args::{CalibArgs, ModelArgs};
use crate::output;

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

#[derive(Serialize)]
struct DropReport {
    out: String,
    strategy: String,
    iterative: bool,
    n: usize,
    plan: DropPlan,
    scores_reused: bool,
    /// max |Δlogit| between the reloaded output and the in-memory pruned model.
    reload_max_abs_diff: f32,
}

pub fn run(a: DropArgs) -> anyhow::Result<ExitCode> {
    let strategy: Strategy = a.strategy.parse()?;
    let format: ExportFormat = a.format.parse()?;
    let quant = a
        .quant
        .as_deref()
        .map(llmdrop::export::gguf::parse_quant)
        .transpose()?;
    let src = a.model.open()?;
    // outputs are checked before any work: never onto an input, never over a foreign file
    let mut inputs = Inputs::of_model(src.path());
    inputs.add("calibration data", &a.calib.data_path()?);
    if let Some(p) = &a.scores {
        dest::check(p, Kind::ScoresFile, &inputs, false)?;
    }
    let mut out_inputs = inputs.clone();
    out_inputs.add_opt("scores file", a.scores.as_deref());
    dest::check(&a.out, format.dest_kind(), &out_inputs, a.force)?;
    // scoring (and re-scoring pruned copies) needs hidden states only
    let (src, dec, tok) = a
        .model
        .load_for(&DropPlan::empty(), Outputs::HiddenStates)?;
    let model_sha = llmdrop::io::hash::model_sha256(&src)?;
    let cal = calibration(&a.calib, &a.model, &tok)?;
    let o = SelectOptions {
        n: a.n,
        keep_first: a.keep_first,
        keep_last: a.keep_last,
    };

    let cached = a
        .scores
        .as_ref()
        .filter(|p| p.exists())
        .map(|p| ScoreReport::read(p))
        .transpose()?
        .filter(|r| r.matches(&model_sha, &cal.blocks.hash, &cal.settings));
    let reused = cached.is_some();
    let report = match cached {
        Some(r) => {
            eprintln!(
                "reusing scores from {}",
                a.scores.as_ref().expect("cached").display()
            );
            r
        }
        None => {
            if let Some(p) = a.scores.as_ref().filter(|p| p.exists()) {
                eprintln!(
                    "{} is from another model, data or settings: scoring again",
                    p.display()
                );
            }
            let r = run_scoring(&src, &model_sha, &dec, &cal, a.json)?;
            if let Some(p) = &a.scores {
                r.write(p, &inputs)?;
            }
            r
        }
    };

    let plan = if a.iterative {
        let opts = ScoreOptions {
            residual: cal.settings.residual,
            consecutive: false,
        };
        let mut rescore = |plan: &DropPlan| -> llmdrop::Result<llmdrop::score::ScoreTable> {
            if plan.is_empty() {
                return Ok(report.table.clone());
            }
            if !a.json {
                eprintln!(
                    "re-scoring with {} attention / {} MLP layers dropped",
                    plan.attn.len(),
                    plan.mlp.len()
                );
            }
            score(
                &dec.pruned(plan)?,
                &cal.blocks.blocks,
                &opts,
                &mut NoProgress,
            )
        };
        select_iterative(strategy, &o, src.config().num_layers, &mut rescore)?.0
    } else {
        select(&report.table, strategy, &o)?
    };

    let details = json!({
        "strategy": strategy, "n": a.n, "iterative": a.iterative,
        "keep_first": a.keep_first, "keep_last": a.keep_last,
        "calibration": {"data": cal.data_path.display().to_string(),
                        "data_sha256": cal.blocks.hash, "settings": cal.settings},
    });
    let res = super::export::export_and_check(
        &src, &model_sha, &plan, format, quant, details, &a.out, a.force,
    )?;
    let (out, diff) = (res.path.clone(), res.reload_max_abs_diff);

    let r = DropReport {
        out: out.display().to_string(),
        strategy: strategy.to_string(),
        iterative: a.iterative,
        n: a.n,
        plan,
        scores_reused: reused,
        reload_max_abs_diff: diff,
    };
    if a.json {
        output::print_json("drop", &r)?;
    } else {
        output::print_text(&format!(
            "dropped attention {:?}, MLP {:?} ({}{} {})\nwrote {} (reloaded: max |Δlogit| {:e})\n",
            r.plan.attn,
            r.plan.mlp,
            if a.iterative { "iterative " } else { "" },
            r.strategy,
            r.n,
            r.out,
            diff
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
