//! llmdrop: score the blocks, attention and MLP layers of a decoder-only LLM by how little
//! they change the hidden states, drop the redundant ones, and measure what that costs.
//!
//! The library never prints and never exits; the `llmdrop` binary owns the terminal.
//!
//! Data flows one way:
//! text -> [`Tokenizer`] -> token ids -> [`Decoder::forward`] (with a [`Probe`]) ->
//! [`ScoreTable`] -> [`strategy`] -> [`DropPlan`] -> pruned [`Decoder`] or [`export`] ->
//! [`eval`] / [`bench`](mod@bench) -> [`report`].
//!
//! # Where to start
//!
//! - [`pipeline`]: each `llmdrop` command as one call ([`pipeline::score_model`],
//!   [`pipeline::drop_layers`], [`pipeline::export_model`], [`pipeline::evaluate_models`],
//!   [`pipeline::sweep`]), with an options struct that owns its defaults. Its docs open
//!   with a runnable example.
//! - [`ModelSource`]: an HF directory or a GGUF file; its [`Config`], [`Tokenizer`] and
//!   weights; [`ModelSource::load_decoder`] gives a [`Decoder`] with a [`DropPlan`]
//!   applied at load time (dropped weights are never read), at a [`Precision`].
//! - [`Decoder::forward`]: logits ([`Logits`]) and, through a [`Probe`], the hidden states
//!   at every layer's input, after attention and after the MLP ([`Site`]); a [`KvCache`]
//!   for generation ([`generate`]).
//! - Building blocks of the workflows: [`calib`] (text -> packed token blocks),
//!   [`score::score`] (-> [`ScoreTable`]), [`strategy::select`] (-> [`DropPlan`]),
//!   [`export::export`] (an [`export::ExportRequest`]), [`eval`] (perplexity, multiple
//!   choice), [`bench`](mod@bench) (prefill / decode speed, memory).
//! - Errors are one [`Error`] enum; every function returns [`Result`].

mod arch;
pub mod assets;
pub mod bench;
pub mod calib;
pub mod config;
pub mod dest;
pub mod error;
pub mod eval;
pub mod export;
mod formats;
pub mod generate;
pub mod io;
mod json_f64;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod quant;
pub mod report;
pub mod score;
pub mod strategy;

pub use arch::{ArchSpec, SlidingWindow};
pub use config::Config;
pub use error::{Error, PlanError, Result, StrategyError};
pub use io::{ModelSource, Tokenizer};
pub use model::{Decoder, KvCache, Logits};
pub use plan::DropPlan;
pub use probe::{NoProbe, Probe, Site};
pub use quant::Precision;
pub use score::ScoreTable;

/// The tool's version, recorded in every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
