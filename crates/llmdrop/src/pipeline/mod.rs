//! Workflows: what the `llmdrop` commands do, as one library call each.
//!
//! | workflow | does | returns |
//! |---|---|---|
//! | [`score_model`] | calibration -> scores.json (and plots) | [`ScoreReport`] |
//! | [`drop_layers`] | calibration -> scores (reused when they match) -> strategy -> export -> reload check | [`DropReport`] |
//! | [`export_model`] | plan -> export -> reload check | [`ExportResult`] |
//! | [`evaluate_models`] | tasks (and perplexity) of the model and its pruned variants | [`EvalReport`] |
//! | [`sweep`] | quality against modules dropped, per strategy; resumable | [`SweepOutcome`] |
//!
//! Each takes the model ([`ModelOptions`]), an options struct whose `Default` (or `new`)
//! holds the defaults, and an [`Observer`] that receives progress and [`Event`]s (pass
//! [`NoProgress`](crate::progress::NoProgress) for none). Outputs are checked before any
//! work: never onto an input, never over a file llmdrop did not write, a model replaced
//! only with `force`. Nothing is printed; a result that is not a number is reported (e.g.
//! [`EvalReport::non_finite`]), never turned into an exit.
//!
//! # Example
//!
//! Score the tiny llama fixture on a little text, drop its most redundant attention
//! layer and write the pruned model (checked by reloading it):
//!
//! ```
//! use llmdrop::pipeline::{drop_layers, DropOptions, ModelOptions};
//! use llmdrop::strategy::Strategy;
//! use llmdrop::progress::NoProgress;
//!
//! # fn main() -> llmdrop::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let text = dir.path().join("calib.txt");
//! std::fs::write(&text, "The quick brown fox jumps over the lazy dog. ".repeat(8)).unwrap();
//!
//! let model = ModelOptions::new(llmdrop_testkit::tiny_dir("llama"));
//! let mut opts = DropOptions::new(Strategy::Attn, 1, dir.path().join("pruned"));
//! opts.calib.data = Some(text);
//! opts.calib.samples = 2;
//! opts.calib.seq_len = 32;
//! opts.scores = Some(dir.path().join("scores.json"));
//!
//! let report = drop_layers(&model, &opts, &mut NoProgress)?;
//! assert_eq!(report.plan.attn.len(), 1);
//! assert!(report.reload_max_abs_diff < 1e-4);
//!
//! // a second run with the same model, text and settings reuses the scores
//! opts.target.force = true;
//! assert!(drop_layers(&model, &opts, &mut NoProgress)?.scores_reused);
//! # Ok(())
//! # }
//! ```

mod calibrate;
mod drop;
mod drop_scores;
mod eval;
mod eval_memory;
mod events;
mod export;
mod ppl;
mod score;
mod score_resume;
mod sweep;

use std::path::PathBuf;

use candle_core::Device;

pub use calibrate::{calibrate, CalibOptions, Calibration, DEFAULT_SAMPLES, DEFAULT_SEQ_LEN};
pub use drop::{drop_layers, DropOptions, DropReport};
pub use eval::{
    describe, evaluate, evaluate_models, load_tasks, EvalOptions, Runner, DEFAULT_FEWSHOT_SEED,
    DEFAULT_PPL_SEQ_LEN, DEFAULT_TASKS,
};
pub use eval_memory::EvalShapes;
pub use events::{Event, Observer};
pub use export::{export_and_check, export_model, ExportOptions, ExportTarget, PROBE_TEXT};
pub use ppl::{ppl_model, PplRun};
pub use score::{
    run_scoring, score_model, scores_for, write_plots, Resume, ScoringOptions, DEFAULT_SCORES_FILE,
};
pub use sweep::{sweep, SweepOptions, SweepOutcome, DEFAULT_STRATEGIES, DEFAULT_SWEEP_DIR};

#[cfg(doc)]
use crate::{export::ExportResult, report::eval::EvalReport, report::ScoreReport};

use crate::error::Result;
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::model::{Decoder, Outputs};
use crate::plan::DropPlan;
use crate::quant::Precision;

/// Which model a workflow runs on, and in what precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    /// An HF folder (config.json + safetensors) or a GGUF file; `None`: the cached default
    /// model ([`crate::assets::default_model`]).
    pub path: Option<PathBuf>,
    /// Weights and compute (f32 unless asked otherwise).
    pub dtype: Precision,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            path: None,
            dtype: Precision::Float(candle_core::DType::F32),
        }
    }
}

impl ModelOptions {
    /// The model at `path`, in f32.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::default()
        }
    }

    /// The model's path: `path`, or the default model when it is cached.
    pub fn path(&self) -> Result<PathBuf> {
        match &self.path {
            Some(p) => Ok(p.clone()),
            None => crate::assets::default_model(),
        }
    }

    /// Opens the model files (no tensor data read).
    pub fn open(&self) -> Result<ModelSource> {
        ModelSource::open(&self.path()?)
    }

    /// Opens and loads the model with `plan` (logits out), and its tokenizer.
    pub fn load(&self, plan: &DropPlan) -> Result<(ModelSource, Decoder, Tokenizer)> {
        self.load_for(plan, Outputs::Logits)
    }

    /// As [`ModelOptions::load`], for what `outputs` asks.
    pub fn load_for(
        &self,
        plan: &DropPlan,
        outputs: Outputs,
    ) -> Result<(ModelSource, Decoder, Tokenizer)> {
        let src = self.open()?;
        let dec = src.load_decoder_for(plan, self.dtype, &Device::Cpu, outputs)?;
        let tok = src.tokenizer()?;
        Ok((src, dec, tok))
    }
}
