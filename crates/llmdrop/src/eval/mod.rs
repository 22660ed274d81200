//! Measuring what a drop costs: perplexity and multiple-choice accuracy.

pub mod formats;
pub mod mc;
pub mod ppl;
pub mod suite;
pub mod task;

pub use mc::{evaluate_task, score_example, McResult, TaskScore};
pub use ppl::{perplexity, PplOptions, PplResult};
pub use task::{McExample, Task};
