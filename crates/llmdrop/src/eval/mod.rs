//! Measuring what a drop costs: perplexity and multiple-choice accuracy.

pub(crate) mod formats;
pub(crate) mod head_scores;
pub(crate) mod log_softmax;
pub(crate) mod mc;
pub(crate) mod mc_plan;
pub(crate) mod mc_streamed;
pub(crate) mod ppl;
pub(crate) mod ppl_streamed;
pub(crate) mod suite;
pub(crate) mod task;

pub use crate::budget::StreamShape;
pub use formats::LAYOUTS;
pub use mc::{evaluate_task, score_example, McResult, TaskScore};
pub use mc_streamed::evaluate_task_streamed;
pub use ppl::{perplexity, PplOptions, PplResult};
pub use ppl_streamed::perplexity_streamed;
pub use suite::{default_suite, resolve};
pub use task::{McExample, Task};
