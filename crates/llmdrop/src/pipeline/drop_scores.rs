//! The scores the drop workflow selects on: a matching scores file reused, else the model
//! scored as [`score_model`] scores it (held, or layer-streamed within the memory policy);
//! and the re-scoring of pruned copies for iterative selection, held or streamed alike.

use std::path::PathBuf;

use candle_core::Device;

use super::calibrate::Calibration;
use super::events::{Event, Observer};
use super::score::{score_model, ScoringOptions};
use super::ModelOptions;
use crate::budget::{self, MemoryPolicy, ScoreMode, ScoreNeed};
use crate::dest::SpillDir;
use crate::error::Result;
use crate::io::source::ModelSource;
use crate::model::{Decoder, LayerStream, Outputs};
use crate::plan::DropPlan;
use crate::progress::NoProgress;
use crate::report::ScoreReport;
use crate::score::{score, score_streamed, ScoreOptions, ScoreTable};

/// Where and how [`scores`] scores.
pub(super) struct ScoreRequest<'a> {
    pub model: &'a ModelOptions,
    pub scoring: ScoringOptions,
    /// The scores file to reuse or (re)write; None: the scores are written to a private
    /// folder beside `scoring.out` and removed.
    pub file: Option<PathBuf>,
    pub model_sha256: &'a str,
    pub cal: &'a Calibration,
}

/// The scores of the model: the file's when it was computed from this model, data and
/// settings (then `true`), else scored by [`score_model`] and written to the file.
pub(super) fn scores(req: ScoreRequest<'_>, obs: &mut dyn Observer) -> Result<(ScoreReport, bool)> {
    let cal = req.cal;
    if let Some(p) = req.file.as_deref().filter(|p| p.exists()) {
        let r = ScoreReport::read(p)?;
        if r.matches(req.model_sha256, &cal.blocks.hash, &cal.settings) {
            obs.event(Event::ScoresReused { path: p });
            return Ok((r, true));
        }
        obs.event(Event::ScoresStale { path: p });
    }
    let mut scoring = req.scoring;
    // no scores file asked for: one in a private folder, gone with it (also on Ctrl-C)
    let private = match &req.file {
        Some(p) => {
            scoring.out = p.clone();
            None
        }
        None => {
            let parent = scoring.out.parent().map(PathBuf::from).unwrap_or_default();
            let parent = if parent.as_os_str().is_empty() {
                ".".into()
            } else {
                parent
            };
            let dir = SpillDir::new(&parent, 0)?;
            scoring.out = dir.path().join("scores.json");
            scoring.spill_dir.get_or_insert_with(|| dir.path().into());
            Some(dir)
        }
    };
    let r = score_model(req.model, &scoring, obs)?;
    drop(private);
    Ok((r, false))
}

/// A model to re-score pruned copies of: held, or read layer by layer for each.
pub(super) enum Rescorer<'a> {
    Held(Box<Decoder>),
    Streamed(&'a ModelSource, crate::quant::Precision),
}

impl<'a> Rescorer<'a> {
    /// Held when scoring without the consecutive matrix fits `memory` (and streaming is not
    /// forced), else streamed; the error of [`budget::choose`] when neither fits.
    pub fn new(
        src: &'a ModelSource,
        model: &ModelOptions,
        cal: &Calibration,
        memory: &MemoryPolicy,
    ) -> Result<Self> {
        let blocks = &cal.blocks.blocks;
        let mut ids: Vec<u32> = blocks.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let need = ScoreNeed::estimate(
            src,
            model.dtype,
            blocks.len(),
            blocks.iter().map(Vec::len).max().unwrap_or(0),
            ids.len(),
            rayon::current_num_threads(),
            false,
        );
        Ok(match budget::choose(&need, memory)?.mode {
            ScoreMode::InMemory => Rescorer::Held(Box::new(src.load_decoder_for(
                &DropPlan::empty(),
                model.dtype,
                &Device::Cpu,
                Outputs::HiddenStates,
            )?)),
            ScoreMode::Streamed => Rescorer::Streamed(src, model.dtype),
        })
    }

    /// The scores of the model with `plan` applied (no consecutive matrix).
    pub fn score(&self, plan: &DropPlan, cal: &Calibration) -> Result<ScoreTable> {
        let opts = ScoreOptions {
            residual: cal.settings.residual,
            consecutive: false,
        };
        let blocks = &cal.blocks.blocks;
        match self {
            Rescorer::Held(dec) => score(&dec.pruned(plan)?, blocks, &opts, &mut NoProgress),
            Rescorer::Streamed(src, precision) => {
                let stream = LayerStream::open(src, plan, *precision, &Device::Cpu)?;
                score_streamed(&stream, blocks, &opts, None, &mut NoProgress)
            }
        }
    }
}
