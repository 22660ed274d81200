//! Measuring what a drop costs: perplexity and multiple-choice accuracy.

pub(crate) mod formats;
pub(crate) mod mc;
pub(crate) mod ppl;
pub(crate) mod ppl_streamed;
pub(crate) mod suite;
pub(crate) mod task;

pub use formats::LAYOUTS;
pub use mc::{evaluate_task, score_example, McResult, TaskScore};
pub use ppl::{perplexity, PplOptions, PplResult};
pub use ppl_streamed::perplexity_streamed;
pub use suite::{default_suite, resolve};
pub use task::{McExample, Task};
