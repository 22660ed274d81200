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
//! - [`model::LayerStream`]: the layers read one at a time, every sequence through layer
//!   `i` before layer `i + 1` is read; [`score::score_streamed`] scores with it, bit for bit
//!   as [`score::score`] on the held model (the consecutive matrix's unit hidden states
//!   spilled to a [`dest::SpillDir`] and read back a block at a time), and [`budget`]
//!   chooses between the two. [`score::score_streamed_resumable`] saves every finished
//!   layer in a [`score::Checkpoint`], from which a stopped run continues to the same bits.
//! - Building blocks of the workflows: [`calib`] (text -> packed token blocks),
//!   [`score::score`] (-> [`ScoreTable`]), [`strategy::select`] (-> [`DropPlan`]),
//!   [`export::export`] (an [`export::ExportRequest`]), [`eval`] (perplexity, multiple
//!   choice), [`bench`](mod@bench) (prefill / decode speed, memory).
//! - Errors are one [`Error`] enum (`#[non_exhaustive]`, with sources); every function
//!   returns [`Result`].
//!
//! # Example
//!
//! The method by hand, on the tiny random llama checkpoint the tests use: pack calibration
//! text, score every module, select the most redundant attention layer, export the pruned
//! model (the export is reloaded and compared with the in-memory pruned model before it is
//! renamed into place), load it back and measure its perplexity. [`pipeline::drop_layers`]
//! does the same in one call, with score reuse and output checks.
//!
//! ```
//! use candle_core::{DType, Device};
//! use llmdrop::calib::{pack, PackOptions};
//! use llmdrop::eval::{perplexity, PplOptions};
//! use llmdrop::export::{export, ExportFormat, ExportInfo, ExportRequest, Reference};
//! use llmdrop::progress::NoProgress;
//! use llmdrop::score::{score, ScoreOptions};
//! use llmdrop::strategy::{select, SelectOptions, Strategy};
//! use llmdrop::{DropPlan, ModelSource};
//!
//! # fn main() -> llmdrop::Result<()> {
//! // load
//! let model = ModelSource::open(&llmdrop_testkit::tiny_dir("llama"))?;
//! let tok = model.tokenizer()?;
//! let full = model.load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)?;
//!
//! // score: 4 blocks of 32 tokens
//! let docs = vec!["The quick brown fox jumps over the lazy dog. ".repeat(12)];
//! let opts = PackOptions { seq_len: 32, samples: 4, shuffle: false, seed: 0 };
//! let calib = pack(&docs, &tok, &opts)?;
//! let table = score(&full, &calib.blocks, &ScoreOptions::default(), &mut NoProgress)?;
//! assert_eq!(table.attn.len(), model.config().num_layers);
//!
//! // select
//! let keep = SelectOptions { n: 1, keep_first: 0, keep_last: 0 };
//! let plan = select(&table, Strategy::Attn, &keep)?;
//! assert_eq!((plan.attn.len(), plan.mlp.len()), (1, 0));
//!
//! // drop and export, checked by reloading
//! let pruned = full.pruned(&plan)?;
//! let dir = tempfile::tempdir().unwrap();
//! let info = ExportInfo {
//!     tool_version: llmdrop::VERSION.into(),
//!     source_model: "tiny llama".into(),
//!     source_sha256: None,
//!     details: serde_json::Value::Null,
//! };
//! let written = export(&ExportRequest {
//!     source: &model,
//!     tokenizer: &tok,
//!     plan: &plan,
//!     format: ExportFormat::HfLlmdrop,
//!     quant: None,
//!     info: &info,
//!     dest: &dir.path().join("pruned"),
//!     force: false,
//!     reference: Reference::Held(&pruned),
//!     probe: &calib.blocks[0],
//!     allow_first_attn_drop: false,
//! })?;
//! assert!(written.lossless && written.reload_max_abs_diff < 1e-4);
//!
//! // perplexity of the written model
//! let reloaded = ModelSource::open(&written.path)?;
//! assert_eq!(reloaded.stored_plan(), &plan);
//! let dec = reloaded.load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)?;
//! let ids = tok.encode(&docs[0])?;
//! let ppl_opts = PplOptions {
//!     seq_len: 32,
//!     max_windows: None,
//!     second_half: false,
//!     bos: tok.sequence_bos(), // BOS-led windows for a model whose tokenizer adds BOS
//! };
//! let ppl = perplexity(&dec, &ids, &ppl_opts, &mut NoProgress)?;
//! assert!(ppl.is_finite() && ppl.ppl > 1.0);
//! # Ok(())
//! # }
//! ```

mod arch;
pub mod assets;
pub mod bench;
pub mod budget;
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
mod tensor_values;

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
