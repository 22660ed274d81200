//! Reports: serde structs first; SVG plots are renderings of them.

pub(crate) mod eval;
pub(crate) mod scores;
pub(crate) mod svg;
pub(crate) mod sweep;

pub use eval::{mean_acc, EvalReport, ModelColumn};
pub use scores::{ScoreReport, ScoreSettings, SCORES_SCHEMA};
pub use sweep::{SweepKey, SweepResults};
