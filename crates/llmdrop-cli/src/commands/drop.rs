use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::Tensor;
use clap::Args;
use llmdrop::export::{write_hf_llmdrop, ExportInfo, Staging};
use llmdrop::plan::strategy::{select, select_iterative, SelectOptions, Strategy};
use llmdrop::progress::NoProgress;
use llmdrop::report::ScoreReport;
use llmdrop::score::{score, ScoreOptions};
use llmdrop::{DropPlan, Logits, NoProbe};
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
    let src = a.model.open()?;
    let staging = Staging::new(&a.out, src.path(), a.force)?;
    let (src, dec, tok) = a.model.load(&DropPlan::empty())?;
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
                r.write(p)?;
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

    let info = ExportInfo {
        tool_version: llmdrop::VERSION.into(),
        source_model: src.path().display().to_string(),
        source_sha256: Some(model_sha.clone()),
        details: json!({
            "strategy": strategy, "n": a.n, "iterative": a.iterative,
            "keep_first": a.keep_first, "keep_last": a.keep_last,
            "calibration": {"data": cal.data_path.display().to_string(),
                            "data_sha256": cal.blocks.hash, "settings": cal.settings},
        }),
    };
    write_hf_llmdrop(&src, &tok, &plan, &info, staging.dir())?;
    let out = staging.commit()?;

    // the export must load as the model we evaluated: same plan, same logits
    let osrc = llmdrop::ModelSource::open(&out)?;
    let odec = osrc.load_decoder(&DropPlan::empty(), dec.dtype(), dec.device())?;
    if osrc.stored_plan() != &plan {
        anyhow::bail!(
            "{}: reloaded plan {:?} differs from {:?}",
            out.display(),
            osrc.stored_plan(),
            plan
        );
    }
    let probe: Vec<u32> = cal.blocks.blocks[0].iter().take(64).copied().collect();
    let ids = Tensor::new(probe.as_slice(), dec.device())?.unsqueeze(0)?;
    let want = dec
        .pruned(&plan)?
        .forward(&ids, None, &mut NoProbe, Logits::All)?
        .expect("logits");
    let got = odec
        .forward(&ids, None, &mut NoProbe, Logits::All)?
        .expect("logits");
    let diff = (want - got)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    if diff > 1e-5 {
        anyhow::bail!(
            "{}: reloaded export differs from the pruned model (max |Δlogit| {diff})",
            out.display()
        );
    }

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
