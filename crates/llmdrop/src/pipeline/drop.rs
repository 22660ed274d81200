//! The drop workflow: calibration -> scores (reused when they match) -> strategy ->
//! plan -> export -> reload check.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use super::calibrate::{calibrate, CalibOptions};
use super::drop_scores::{self, Rescorer, ScoreRequest};
use super::events::{Event, Observer};
use super::export::{export_and_check, ExportTarget};
use super::score::ScoringOptions;
use super::ModelOptions;
use crate::budget::MemoryPolicy;
use crate::dest::{self, Inputs, Kind};
use crate::error::Result;
use crate::export::ExportFormat;
use crate::plan::DropPlan;
use crate::score::ScoreTable;
use crate::strategy::{select, select_iterative, SelectOptions, Strategy};

/// What [`drop_layers`] drops and where it writes the pruned model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropOptions {
    pub calib: CalibOptions,
    pub strategy: Strategy,
    /// How many modules (blocks, attention or MLP layers) to drop.
    pub n: usize,
    /// Drop one module at a time and re-score the pruned model in between.
    pub iterative: bool,
    /// Protect the first K layers.
    pub keep_first: usize,
    /// Protect the last K layers.
    pub keep_last: usize,
    /// Scores file: reused when it was computed from this model, data and settings;
    /// otherwise the model is scored and the file (re)written.
    pub scores: Option<PathBuf>,
    /// The pruned model's format and path.
    pub target: ExportTarget,
    /// Whether scoring (and the export's reload check) holds the model or streams its
    /// layers, and the memory the run may use.
    pub memory: MemoryPolicy,
    /// Where layer-streamed scoring spills the consecutive matrix's unit hidden states
    /// (None: beside the scores file, or the output).
    pub spill_dir: Option<PathBuf>,
}

impl DropOptions {
    /// Drops `n` modules chosen by `strategy`, written as hf-llmdrop to `out`; everything
    /// else as by default.
    pub fn new(strategy: Strategy, n: usize, out: impl Into<PathBuf>) -> Self {
        Self {
            calib: CalibOptions::default(),
            strategy,
            n,
            iterative: false,
            keep_first: 0,
            keep_last: 0,
            scores: None,
            target: ExportTarget::new(ExportFormat::HfLlmdrop, out),
            memory: MemoryPolicy::default(),
            spill_dir: None,
        }
    }
}

/// What [`drop_layers`] dropped and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DropReport {
    pub out: String,
    pub strategy: String,
    pub iterative: bool,
    pub n: usize,
    pub plan: DropPlan,
    pub scores_reused: bool,
    /// max |Δlogit| between the reloaded output and the in-memory pruned model.
    pub reload_max_abs_diff: f32,
}

/// Scores the model (or reuses `opts.scores`), selects what to drop, writes the pruned
/// model and checks that it reloads with the same logits.
///
/// The outputs are checked before any work: never onto an input, never over a file
/// llmdrop did not write, a model replaced only with `force`.
pub fn drop_layers(
    model: &ModelOptions,
    opts: &DropOptions,
    obs: &mut dyn Observer,
) -> Result<DropReport> {
    let src = model.open()?;
    let mut inputs = Inputs::of_model(src.path());
    inputs.add("calibration data", &opts.calib.data_path()?);
    if let Some(p) = &opts.scores {
        dest::check(p, Kind::ScoresFile, &inputs, false)?;
    }
    let mut out_inputs = inputs.clone();
    out_inputs.add_opt("scores file", opts.scores.as_deref());
    let t = &opts.target;
    dest::check(&t.out, t.format.dest_kind(), &out_inputs, t.force)?;
    let tok = src.tokenizer()?;
    let model_sha = crate::io::hash::model_sha256(&src)?;
    let cal = calibrate(&opts.calib, model.dtype, &tok)?;
    drop(tok);
    let o = SelectOptions {
        n: opts.n,
        keep_first: opts.keep_first,
        keep_last: opts.keep_last,
    };
    // scored as `score` scores: held, or layer by layer when the model does not fit
    let scoring = ScoringOptions {
        calib: opts.calib.clone(),
        out: opts.scores.clone().unwrap_or_else(|| t.out.clone()),
        plot: None,
        memory: opts.memory,
        spill_dir: opts.spill_dir.clone(),
        // a stopped drop resumes its streamed scoring as `score` does
        resume: super::Resume::default(),
    };
    let request = ScoreRequest {
        model,
        scoring,
        file: opts.scores.clone(),
        model_sha256: &model_sha,
        cal: &cal,
    };
    let (report, reused) = drop_scores::scores(request, obs)?;

    let plan = if opts.iterative {
        let rescorer = Rescorer::new(&src, model, &cal, &opts.memory)?;
        let mut rescore = |plan: &DropPlan| -> Result<ScoreTable> {
            if plan.is_empty() {
                return Ok(report.table.clone());
            }
            obs.event(Event::Rescoring {
                attn: plan.attn.len(),
                mlp: plan.mlp.len(),
            });
            rescorer.score(plan, &cal)
        };
        select_iterative(opts.strategy, &o, src.config().num_layers, &mut rescore)?.0
    } else {
        select(&report.table, opts.strategy, &o)?
    };

    let details = json!({
        "strategy": opts.strategy, "n": opts.n, "iterative": opts.iterative,
        "keep_first": opts.keep_first, "keep_last": opts.keep_last,
        "calibration": {"data": cal.data_path.display().to_string(),
                        "data_sha256": cal.blocks.hash, "settings": cal.settings},
    });
    let res = export_and_check(&src, &model_sha, &plan, t, &opts.memory, details, obs)?;
    Ok(DropReport {
        out: res.path.display().to_string(),
        strategy: opts.strategy.to_string(),
        iterative: opts.iterative,
        n: opts.n,
        plan,
        scores_reused: reused,
        reload_max_abs_diff: res.reload_max_abs_diff,
    })
}
