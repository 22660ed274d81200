//! Measuring what a drop costs.

pub mod ppl;

pub use ppl::{perplexity, PplOptions, PplResult};
