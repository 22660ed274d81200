//! Multiple-choice log-likelihood scoring as lm-eval-harness's HF backend does it.

use candle_core::Tensor;
use rayon::prelude::*;
use serde::Serialize;

use super::log_softmax::whole_row;
use super::mc_plan::{add_token, batch_rows, plan_example, result_of, Part};
use super::task::{McExample, Task};
use crate::error::{Error, Result};
use crate::io::tokenizer::Tokenizer;
use crate::json_f64;
use crate::model::{Decoder, Logits};
use crate::probe::NoProbe;
use crate::progress::Progress;

/// Context and continuation token ids, split as lm-eval's `_encode_pair`: trailing
/// whitespace of the context moves to the continuation; the continuation's tokens are those of
/// `context + continuation` beyond the context's own token count. An empty context becomes
/// the model's BOS (or EOS) token.
pub fn encode_pair(
    tok: &Tokenizer,
    context: &str,
    continuation: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = context.trim_end();
    let n_spaces = context.len() - trimmed.len();
    let (context, continuation) = if n_spaces > 0 {
        (
            trimmed.to_string(),
            format!("{}{continuation}", &context[trimmed.len()..]),
        )
    } else {
        (context.to_string(), continuation.to_string())
    };
    if context.is_empty() {
        let prefix = tok.bos.or(tok.eos.first().copied()).ok_or_else(|| {
            Error::unsupported(
                "the tokenizer",
                "has no BOS or EOS token for an empty context",
            )
        })?;
        return Ok((vec![prefix], tok.encode(&continuation)?));
    }
    let mut ctx = Vec::new();
    if tok.add_bos {
        ctx.extend(tok.bos);
    }
    let whole_text = format!("{context}{continuation}");
    let mut whole = ctx.clone();
    whole.extend(tok.encode(&whole_text)?);
    ctx.extend(tok.encode(&context)?);
    let cont = whole[ctx.len().min(whole.len())..].to_vec();
    Ok((ctx, cont))
}

/// Scores of one example.
#[derive(Debug, Clone, Serialize)]
pub struct McResult {
    /// Sum of the continuation tokens' log-probabilities, per choice.
    #[serde(serialize_with = "json_f64::vec::serialize")]
    pub loglikelihoods: Vec<f64>,
    /// Whether each continuation is the greedy one token by token.
    pub greedy: Vec<bool>,
    pub gold: usize,
    pub pred: usize,
    pub pred_norm: usize,
}

impl McResult {
    pub fn acc(&self) -> f64 {
        (self.pred == self.gold) as u8 as f64
    }
    pub fn acc_norm(&self) -> f64 {
        (self.pred_norm == self.gold) as u8 as f64
    }

    /// Whether every choice's log-likelihood is finite. When one is not (a NaN from a model
    /// that overflows; -inf for a probability that underflows to 0), the predictions, and so
    /// `acc` / `acc_norm`, are not a measurement.
    pub fn is_finite(&self) -> bool {
        self.loglikelihoods.iter().all(|x| x.is_finite())
    }
}

/// Scores one example. Requests that share a context are scored together: the context
/// runs once into a KV cache, then all continuations run as one right-padded batch on top
/// of it (a causal model never looks at the padding). The input is lm-eval's: context ids
/// then continuation ids. Requests longer than the model's window are cut from the left and
/// run without sharing.
pub fn score_example(dec: &Decoder, tok: &Tokenizer, ex: &McExample) -> Result<McResult> {
    let parts = plan_example(tok, ex, dec.config().max_position_embeddings)?;
    let mut scored = vec![(0.0, true); ex.requests.len()];
    for part in &parts {
        match part {
            Part::Shared {
                members,
                ctx,
                conts,
            } => {
                for (&j, s) in members.iter().zip(score_shared(dec, tok, ctx, conts)?) {
                    scored[j] = s;
                }
            }
            Part::Alone {
                member,
                input,
                start,
                targets,
            } => scored[*member] = score_alone(dec, input, *start, targets)?,
        }
    }
    Ok(result_of(ex, scored))
}

/// Log-probability of `target` under `row`, and whether it is the row's argmax.
pub(crate) fn token_score(row: &[f32], target: u32) -> (f64, bool) {
    let r = whole_row(row, target as usize);
    (r.log_prob(), r.greedy())
}

/// One context, several continuations: context once, continuations batched on its cache.
fn score_shared(
    dec: &Decoder,
    tok: &Tokenizer,
    ctx: &[u32],
    conts: &[Vec<u32>],
) -> Result<Vec<(f64, bool)>> {
    let mut cache = dec.new_cache();
    let input = Tensor::new(ctx, dec.device())?.unsqueeze(0)?;
    let last = dec
        .forward(&input, Some(&mut cache), &mut NoProbe, Logits::Last)?
        .expect("logits requested")
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut out: Vec<(f64, bool)> = conts.iter().map(|k| token_score(&last, k[0])).collect();
    let pad = tok.eos.first().copied().unwrap_or(0);
    let Some(rows) = batch_rows(conts, pad) else {
        return Ok(out);
    };
    let mut batch_cache = cache.repeat_batch(conts.len())?;
    let logits = dec
        .forward(
            &Tensor::new(rows, dec.device())?,
            Some(&mut batch_cache),
            &mut NoProbe,
            Logits::All,
        )?
        .expect("logits requested");
    for (b, k) in conts.iter().enumerate() {
        if k.len() < 2 {
            continue;
        }
        let rows = logits.get(b)?.narrow(0, 0, k.len() - 1)?.to_vec2::<f32>()?;
        for (row, &t) in rows.iter().zip(&k[1..]) {
            add_token(&mut out[b], token_score(row, t));
        }
    }
    Ok(out)
}

/// One request on its own: `input`, its positions `start..` predicting `targets`.
fn score_alone(dec: &Decoder, input: &[u32], start: usize, targets: &[u32]) -> Result<(f64, bool)> {
    let ids = Tensor::new(input, dec.device())?.unsqueeze(0)?;
    let logits = dec
        .forward(&ids, None, &mut NoProbe, Logits::All)?
        .expect("logits requested");
    let rows = logits
        .get(0)?
        .narrow(0, start, input.len() - start)?
        .to_vec2::<f32>()?;
    let mut acc = (0.0, true);
    for (row, &t) in rows.iter().zip(targets) {
        add_token(&mut acc, token_score(row, t));
    }
    Ok(acc)
}

/// Accuracy of a task with its standard error.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TaskScore {
    pub task: String,
    pub examples: usize,
    #[serde(with = "json_f64")]
    pub chance: f64,
    #[serde(with = "json_f64")]
    pub acc: f64,
    #[serde(with = "json_f64")]
    pub acc_stderr: f64,
    #[serde(with = "json_f64")]
    pub acc_norm: f64,
    #[serde(with = "json_f64")]
    pub acc_norm_stderr: f64,
    /// Examples with a log-likelihood that is not finite (see [`McResult::is_finite`]);
    /// when not 0 the accuracies are not a measurement.
    #[serde(default)]
    pub non_finite_examples: usize,
}

impl TaskScore {
    /// Whether the accuracies are a measurement: every example's log-likelihoods finite,
    /// and every number of the score finite.
    pub fn is_finite(&self) -> bool {
        self.non_finite_examples == 0
            && [
                self.acc,
                self.acc_stderr,
                self.acc_norm,
                self.acc_norm_stderr,
            ]
            .iter()
            .all(|x| x.is_finite())
    }

    /// Why the accuracies are not a measurement, or None when [`TaskScore::is_finite`].
    pub fn non_finite(&self) -> Option<String> {
        (!self.is_finite()).then(|| {
            format!(
                "task {}: {} of {} examples have log-likelihoods that are not finite (acc {}, acc_norm {}): the model's outputs are not finite",
                self.task, self.non_finite_examples, self.examples, self.acc, self.acc_norm
            )
        })
    }
}

/// Standard error of the mean with the sample standard deviation (n − 1), as lm-eval.
pub fn mean_stderr(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 2 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var / n).sqrt()
}

/// Examples in flight per thread between progress reports: enough to even out examples of
/// different lengths across the threads.
const EXAMPLES_PER_THREAD: usize = 4;

/// Scores every example of `task`, several at once on rayon's threads.
pub fn evaluate_task(
    dec: &Decoder,
    tok: &Tokenizer,
    task: &Task,
    progress: &mut dyn Progress,
) -> Result<(TaskScore, Vec<McResult>)> {
    if task.examples.is_empty() {
        return Err(Error::NotEnough {
            what: format!("task {}", task.name),
            reason: "has no examples".into(),
        });
    }
    progress.start(&task.name, task.examples.len() as u64);
    let mut results = Vec::with_capacity(task.examples.len());
    // examples side by side, one per thread (each one's products too small to keep two
    // cores busy); an example's numbers do not depend on which thread runs it
    let group = EXAMPLES_PER_THREAD * rayon::current_num_threads().max(1);
    for chunk in task.examples.chunks(group) {
        let scored: Vec<Result<McResult>> = chunk
            .par_iter()
            .with_max_len(1)
            .map(|ex| score_example(dec, tok, ex))
            .collect();
        for r in scored {
            results.push(r?);
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    Ok((task_score(task, &results), results))
}

/// A task's accuracies from its examples' results.
pub(crate) fn task_score(task: &Task, results: &[McResult]) -> TaskScore {
    let acc: Vec<f64> = results.iter().map(McResult::acc).collect();
    let accn: Vec<f64> = results.iter().map(McResult::acc_norm).collect();
    let n = acc.len() as f64;
    TaskScore {
        task: task.name.clone(),
        examples: results.len(),
        chance: task.chance(),
        acc: acc.iter().sum::<f64>() / n,
        acc_stderr: mean_stderr(&acc),
        acc_norm: accn.iter().sum::<f64>() / n,
        acc_norm_stderr: mean_stderr(&accn),
        non_finite_examples: results.iter().filter(|r| !r.is_finite()).count(),
    }
}

#[cfg(test)]
#[path = "mc_tests.rs"]
mod tests;
