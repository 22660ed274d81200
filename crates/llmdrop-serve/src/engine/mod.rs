//! The model worker: one thread owns the forward passes (the decoder spreads each over
//! rayon's pool), takes jobs from a bounded queue and answers with [`Event`]s.
//!
//! Scoring jobs (`max_tokens` 0 or 1: lm-eval's log-likelihood requests) waiting together
//! run together (groups of different jobs on the same prefix join one batch), and run
//! their prompts in groups that share a prefix: the prefix once into a KV cache, the rest of every prompt
//! as one right-padded batch on top of it (a causal model never looks at the padding), as
//! `llmdrop eval` scores the choices of one question. Generation jobs run with continuous
//! batching ([`batch`]): every prompt into its own KV cache, a bounded part of the
//! prompts' prefill per step, then the running prompts of all jobs (up to
//! [`batch::MAX_SEQS`]) one token at a time in one forward pass per step; a scoring set
//! runs in pieces between two steps.

mod batch;
mod generate;
mod groups;
mod logprobs;
mod prefill;
mod score;
#[cfg(test)]
mod test_model;
#[cfg(test)]
mod worker_tests;

use std::sync::Arc;

use candle_core::Tensor;
use llmdrop::Decoder;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::model::Model;
use prefill::PREFILL_CHUNK;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the first of equal maxima, as torch.argmax).
    pub temperature: f64,
    /// Nucleus: the smallest set of most likely tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Prompt i of a request samples with seed `seed + i`.
    pub seed: u64,
}

/// What one job runs on every prompt.
#[derive(Debug, Clone)]
pub struct Params {
    pub max_tokens: usize,
    /// Send the prompt's tokens (with their log-probabilities when `logprobs`).
    pub echo: bool,
    /// Top log-probabilities per position (0: only the token's own).
    pub logprobs: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Token ids that end generation (the model's EOS unless `ignore_eos`); not part of the text.
    pub stop_ids: Vec<u32>,
    pub skip_special: bool,
}

/// A job: prompts (token ids, each within the model's positions and vocabulary).
pub struct Job {
    pub prompts: Vec<Vec<u32>>,
    pub params: Params,
    pub events: mpsc::UnboundedSender<Event>,
}

/// A token with its log-probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: u32,
    /// The token decoded alone (special tokens kept).
    pub text: String,
    /// None for the first prompt token (nothing predicts it) or when not asked.
    pub logprob: Option<f64>,
    /// Most likely first: (id, text, log-probability).
    pub top: Vec<(u32, String, f64)>,
}

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// EOS, a stop token or a stop string.
    Stop,
    /// `max_tokens`, or the end of the model's positions.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the worker reports, per prompt (`index`) in order: `Prompt` (with echo), `Token`s,
/// `Done`. `Failed` ends the job.
#[derive(Debug, Clone)]
pub enum Event {
    Prompt {
        index: usize,
        tokens: Vec<TokenInfo>,
    },
    Token {
        index: usize,
        /// New text this token releases ("" while a stop string may be starting, or a
        /// character is incomplete).
        text: String,
        token: TokenInfo,
    },
    Done {
        index: usize,
        finish: Finish,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    Failed(ApiError),
}

/// Most prompts of several requests scored in one set.
const MERGE_PROMPTS: usize = 1024;

/// Runs jobs until every sender of `rx` is gone. Generation jobs join the running batch
/// while it has room (the others wait in the queue); a scoring job starts at once, taking
/// along the scoring jobs already waiting behind it that ask the same of the model (up to
/// [`MERGE_PROMPTS`] prompts), so that several clients' requests share forward passes.
/// The scoring set runs in pieces of at most [`PREFILL_CHUNK`] positions (or one pass),
/// one between two generation steps, so that it pauses the running streams no longer than
/// a prompt's prefill does; the next scoring job waits for the set to end.
pub fn run_worker(model: Arc<Model>, mut rx: mpsc::Receiver<Job>) {
    let mut gen = batch::Batch::new(&model);
    let mut scoring: Option<score::ScoreSet> = None;
    let mut next: Option<Job> = None;
    let mut open = true;
    loop {
        while (open || next.is_some()) && gen.has_room() {
            let job = match next.take() {
                Some(j) => j,
                None if gen.is_idle() && scoring.is_none() => match rx.blocking_recv() {
                    Some(j) => j,
                    None => {
                        open = false;
                        break;
                    }
                },
                None => match rx.try_recv() {
                    Ok(j) => j,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                },
            };
            if job.events.is_closed() {
                continue; // the client left while the job waited
            }
            if !score::is_scoring(&job) {
                gen.admit(job);
            } else if scoring.is_some() {
                next = Some(job);
                break;
            } else {
                let (jobs, after) = merge_waiting(job, &mut rx);
                scoring = Some(score::ScoreSet::new(&model, jobs));
                next = after;
            }
        }
        if let Some(set) = scoring.as_mut() {
            if score_piece(&model, set) {
                scoring = None;
            }
        }
        if gen.is_idle() {
            if !open && next.is_none() && scoring.is_none() {
                break;
            }
            continue;
        }
        gen.step();
    }
}

/// Scoring `job` with the mergeable jobs waiting behind it; and the first job that could
/// not join (it runs next, in its turn).
fn merge_waiting(job: Job, rx: &mut mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
    let mut next = None;
    let mut batch = vec![job];
    let mut prompts = batch[0].prompts.len();
    while prompts < MERGE_PROMPTS {
        match rx.try_recv() {
            Ok(j) if j.events.is_closed() => {}
            Ok(j) if score::mergeable(&batch[0], &j) => {
                prompts += j.prompts.len();
                batch.push(j);
            }
            Ok(j) => {
                next = Some(j);
                break;
            }
            Err(_) => break,
        }
    }
    (batch, next)
}

/// Runs a piece of `set`, and answers its jobs once it is scored (every job `Failed` when
/// the model fails). Returns whether the set is over.
fn score_piece(model: &Model, set: &mut score::ScoreSet) -> bool {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match set.work(model, PREFILL_CHUNK) {
            Ok(true) => set.finish(model).map(|()| true).map_err(Ok),
            r => r,
        }
    }));
    let failure = match r {
        Ok(Ok(over)) => return over,
        Ok(Err(Err(Gone))) => return true,
        Ok(Err(Ok(e))) => e,
        Err(p) => internal(panic_message(p.as_ref())),
    };
    for j in set.jobs() {
        let _ = j.events.send(Event::Failed(failure.clone()));
    }
    true
}

/// What a caught panic says.
fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| p.downcast_ref::<&str>().copied())
        .unwrap_or("a panic")
}

/// The client went away: stop working on its job.
struct Gone;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("the model failed: {e}"))
}

/// An error to report, or the client gone.
type Step<T> = Result<T, Result<ApiError, Gone>>;

fn send(job: &Job, e: Event) -> Step<()> {
    job.events.send(e).map_err(|_| Err(Gone))
}

fn fail<T>(e: impl std::fmt::Display) -> Step<T> {
    Err(Ok(internal(e)))
}

fn ids_tensor(dec: &Decoder, rows: Vec<Vec<u32>>) -> Step<Tensor> {
    Tensor::new(rows, dec.device()).or_else(fail)
}
