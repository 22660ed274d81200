//! Scoring: calibration -> score table -> scores.json (and plots), or a matching
//! scores.json reused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::calibrate::{calibrate, CalibOptions, Calibration};
use super::events::{Event, Observer};
use super::score_resume::StreamedRun;
use super::ModelOptions;
use crate::budget::{self, MemoryPolicy, ScoreMode, ScoreNeed};
use crate::config::Config;
use crate::dest::{self, Inputs, Kind};
use crate::error::{Error, Result};
use crate::io::source::ModelSource;
use crate::model::{Decoder, LayerStream, Outputs};
use crate::plan::DropPlan;
use crate::report::{svg, ScoreReport};
use crate::score::{score, ScoreOptions, ScoreTable};

/// File the scores go to, unless asked otherwise.
pub const DEFAULT_SCORES_FILE: &str = "scores.json";

/// What [`score_model`] scores on and where it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringOptions {
    pub calib: CalibOptions,
    /// Where to write the scores (a file llmdrop wrote, or a new one).
    pub out: PathBuf,
    /// Also write SVG plots (per-layer bars, consecutive heatmap) into this folder.
    pub plot: Option<PathBuf>,
    /// Whether the model is held or its layers streamed ([`budget::choose`]).
    pub memory: MemoryPolicy,
    /// Where layer-streamed scoring spills the unit hidden states (a private folder made
    /// inside, removed at the end) and keeps its checkpoint; None: beside `out`.
    pub spill_dir: Option<PathBuf>,
    /// Whether layer-streamed scoring checkpoints every layer and resumes.
    pub resume: Resume,
}

/// Whether layer-streamed scoring saves its progress after every layer (in
/// `.llmdrop-resume-ID` in the spill folder, removed once the scores are written) and
/// continues from what a stopped run of the same model, data and settings saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resume {
    /// Checkpoint, and resume from a matching checkpoint.
    #[default]
    Auto,
    /// Checkpoint, but start over: a matching checkpoint is removed first.
    Fresh,
    /// No checkpoint (a stopped run starts over); the unit hidden states go to a private
    /// spill folder, removed at the end.
    Off,
}

impl Default for ScoringOptions {
    fn default() -> Self {
        Self {
            calib: CalibOptions::default(),
            out: DEFAULT_SCORES_FILE.into(),
            plot: None,
            memory: MemoryPolicy::default(),
            spill_dir: None,
            resume: Resume::default(),
        }
    }
}

/// Scores every block, attention and MLP layer of the model on the calibration text and
/// writes the report to `opts.out` (and the plots to `opts.plot`).
///
/// The outputs are checked before any work: never onto an input, never over a file
/// llmdrop did not write.
pub fn score_model(
    model: &ModelOptions,
    opts: &ScoringOptions,
    obs: &mut dyn Observer,
) -> Result<ScoreReport> {
    let src = model.open()?;
    let mut inputs = Inputs::of_model(src.path());
    inputs.add("calibration data", &opts.calib.data_path()?);
    dest::check(&opts.out, Kind::ScoresFile, &inputs, false)?;
    if let Some(dir) = &opts.plot {
        dest::check_folder(dir, &inputs)?;
        if dest::resolve(dir) == dest::resolve(&opts.out) {
            return Err(Error::SamePath {
                first: "plot",
                second: "out",
                path: dir.clone(),
            });
        }
    }
    // the calibration tokens first: the tokenizer is freed before the weights arrive, so
    // the two never count together in the peak memory
    let cal = calibrate(&opts.calib, model.dtype, &src.tokenizer()?)?;
    obs.event(Event::Freed);
    let choice = budget::choose(&score_need(&src, model, &cal), &opts.memory)?;
    let model_sha = crate::io::hash::model_sha256(&src)?;
    let (mut report, checkpoint) = match choice.mode {
        ScoreMode::InMemory => {
            obs.event(Event::ScoringMode {
                choice,
                spill_dir: None,
            });
            let dec = src.load_decoder_for(
                &DropPlan::empty(),
                model.dtype,
                &candle_core::Device::Cpu,
                Outputs::HiddenStates,
            )?;
            // the load's transient copies (file blocks, dequantized tensors) go back too
            obs.event(Event::Freed);
            (run_scoring(&src, &model_sha, &dec, &cal, obs)?, None)
        }
        ScoreMode::Streamed => {
            let stream = LayerStream::open(
                &src,
                &DropPlan::empty(),
                model.dtype,
                &candle_core::Device::Cpu,
            )?;
            let t0 = Instant::now();
            let run = StreamedRun {
                stream: &stream,
                model_sha256: &model_sha,
                cal: &cal,
                choice,
                opts,
                inputs: &inputs,
            };
            let (table, checkpoint) = run.score(obs)?;
            let seconds = t0.elapsed().as_secs_f64();
            let (cfg, plan) = (stream.config(), stream.plan());
            let r = report_of(&src, &model_sha, cfg, plan, &cal, table, seconds);
            (r, checkpoint)
        }
    };
    report.memory = Some(choice);
    report.write(&opts.out, &inputs)?;
    // the scores are in place: what the run saved to resume from goes (best effort: a
    // folder left here is stale for the next run of this output, which removes it)
    if let Some(c) = checkpoint {
        let _ = c.finish();
    }
    if let Some(dir) = &opts.plot {
        write_plots(&report.table, dir, &inputs)?;
    }
    Ok(report)
}

/// What scoring `src` on `cal` holds in memory, held or layer-streamed.
fn score_need(src: &ModelSource, model: &ModelOptions, cal: &Calibration) -> ScoreNeed {
    let blocks = &cal.blocks.blocks;
    let mut ids: Vec<u32> = blocks.iter().flatten().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    ScoreNeed::estimate(
        src,
        model.dtype,
        blocks.len(),
        blocks.iter().map(Vec::len).max().unwrap_or(0),
        ids.len(),
        rayon::current_num_threads(),
        score_options(cal).consecutive,
    )
}

pub(super) fn score_options(cal: &Calibration) -> ScoreOptions {
    ScoreOptions {
        residual: cal.settings.residual,
        consecutive: true,
    }
}

/// Scores `dec` on the calibration blocks and wraps the table in a report.
pub fn run_scoring(
    src: &ModelSource,
    model_sha256: &str,
    dec: &Decoder,
    cal: &Calibration,
    progress: &mut dyn crate::progress::Progress,
) -> Result<ScoreReport> {
    let t0 = Instant::now();
    let table = score(dec, &cal.blocks.blocks, &score_options(cal), progress)?;
    let seconds = t0.elapsed().as_secs_f64();
    let (cfg, plan) = (dec.config(), dec.plan());
    Ok(report_of(src, model_sha256, cfg, plan, cal, table, seconds))
}

/// The report of `table`, scored in `seconds` on the model `cfg` with `plan` applied.
fn report_of(
    src: &ModelSource,
    model_sha256: &str,
    cfg: &Config,
    plan: &DropPlan,
    cal: &Calibration,
    table: ScoreTable,
    seconds: f64,
) -> ScoreReport {
    ScoreReport {
        schema_version: crate::report::scores::SCORES_SCHEMA,
        llmdrop_version: crate::VERSION.into(),
        model_path: src.path().display().to_string(),
        model_sha256: model_sha256.into(),
        data_path: cal.data_path.display().to_string(),
        data_sha256: cal.blocks.hash.clone(),
        settings: cal.settings.clone(),
        threads: candle_core::utils::get_num_threads(),
        seconds,
        tokens_per_sec: table.tokens as f64 / seconds,
        gflops_per_sec: cal.blocks.blocks.len() as f64
            * crate::bench::forward_flops_of(cfg, plan, cal.settings.seq_len)
            / seconds
            / 1e9,
        peak_rss_bytes: crate::bench::peak_rss_bytes(),
        memory: None,
        table,
    }
}

/// The scores of `dec`: those in `file` when it was computed from this model, data and
/// settings (then `true`), else freshly scored and written to `file` when given.
pub fn scores_for(
    src: &ModelSource,
    model_sha256: &str,
    dec: &Decoder,
    cal: &Calibration,
    file: Option<&Path>,
    inputs: &Inputs,
    obs: &mut dyn Observer,
) -> Result<(ScoreReport, bool)> {
    let cached = file
        .filter(|p| p.exists())
        .map(ScoreReport::read)
        .transpose()?
        .filter(|r| r.matches(model_sha256, &cal.blocks.hash, &cal.settings));
    if let Some(r) = cached {
        obs.event(Event::ScoresReused {
            path: file.expect("cached"),
        });
        return Ok((r, true));
    }
    if let Some(p) = file.filter(|p| p.exists()) {
        obs.event(Event::ScoresStale { path: p });
    }
    let r = run_scoring(src, model_sha256, dec, cal, obs)?;
    if let Some(p) = file {
        r.write(p, inputs)?;
    }
    Ok((r, false))
}

/// Writes the SVG plots into `dir` (created if needed; a file there is replaced only when
/// llmdrop wrote it).
pub fn write_plots(t: &ScoreTable, dir: &Path, inputs: &Inputs) -> Result<()> {
    dest::check_folder(dir, inputs)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::context(dir.display().to_string(), e))?;
    let min = t
        .block
        .iter()
        .chain(&t.attn)
        .chain(&t.mlp)
        .copied()
        .fold(1.0f64, f64::min);
    let y_min = ((min * 10.0).floor() / 10.0).max(0.0);
    let bars = svg::layer_bars(
        "Similarity per layer (higher = more redundant)",
        &[("block", &t.block), ("attention", &t.attn), ("MLP", &t.mlp)],
        y_min,
    );
    dest::write_file(
        &dir.join("similarity.svg"),
        Kind::Svg,
        inputs,
        bars.as_bytes(),
    )?;
    if let Some(c) = &t.consecutive {
        let hm = svg::heatmap("cos(h_i, h_i+n)", c, "start layer i", "gap n");
        dest::write_file(
            &dir.join("consecutive.svg"),
            Kind::Svg,
            inputs,
            hm.as_bytes(),
        )?;
    }
    Ok(())
}
