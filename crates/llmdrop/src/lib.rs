//! llmdrop: score the blocks, attention and MLP layers of a decoder-only LLM by how little
//! they change the hidden states, drop the redundant ones, and measure what that costs.
//!
//! The library never prints and never exits; the `llmdrop` binary owns the terminal.
//!
//! Data flows one way:
//! text -> [`io::tokenizer`] -> token ids -> [`model::Decoder::forward`] (with a
//! [`probe::Probe`]) -> scores -> [`plan::DropPlan`] -> pruned decoder -> evaluation.

pub mod arch;
pub mod assets;
pub mod bench;
pub mod calib;
pub mod config;
pub mod dest;
pub mod error;
pub mod eval;
pub mod export;
pub mod formats;
pub mod generate;
pub mod io;
pub mod json_f64;
pub mod kernels;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod quant;
pub mod report;
pub mod score;
pub mod strategy;
pub mod testkit;

pub use config::Config;
pub use error::{Error, Result};
pub use io::source::ModelSource;
pub use io::tokenizer::Tokenizer;
pub use model::{Decoder, KvCache, Logits};
pub use plan::DropPlan;
pub use probe::{NoProbe, Probe, Site};
pub use quant::Precision;

/// The tool's version, recorded in every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
