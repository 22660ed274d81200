//! Reports: serde structs first; SVG plots are renderings of them.

pub mod eval;
pub mod scores;
pub mod svg;
pub mod sweep;

pub use scores::{ScoreReport, ScoreSettings};
