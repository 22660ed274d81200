//! Multiple-choice scoring with the layers read one at a time ([`LayerStream`]) and the
//! output head a slice of the vocabulary at a time: the same log-likelihoods, bit for
//! bit, as [`super::evaluate_task`] on the model held in memory.
//!
//! The passes are the in-memory path's ([`plan_example`]): a shared context runs into a
//! KV cache and its continuations as one padded batch on top, a long request alone. Here
//! every pass of a group of examples goes through layer `i` before layer `i + 1` is read:
//! a context through the layer fills that layer's cache slot, which is repeated for the
//! batch as the in-memory path repeats the whole cache, and the continuations run through
//! the layer on it, at the same offset with the same masks. The head then scores the
//! tensors the in-memory head is given (the context's last position, the continuation
//! batch, the lone request), and the tokens' log-probabilities are added in the same
//! order. Memory holds one layer (or one slice of the head), the group's hidden states
//! and one pass's logits of one slice; no KV cache outlives its layer.

use candle_core::Tensor;
use rayon::prelude::*;

use super::head_scores::{score_units, Unit};
use super::log_softmax::RowScore;
use super::mc::{task_score, McResult, TaskScore};
use super::mc_plan::{add_token, batch_rows, plan_example, result_of, Part};
use super::task::{McExample, Task};
use crate::budget::StreamShape;
use crate::error::{Error, Result};
use crate::io::tokenizer::Tokenizer;
use crate::model::decoder::Layer;
use crate::model::frame::Frame;
use crate::model::{KvCache, LayerStream, Outputs};
use crate::probe::NoProbe;
use crate::progress::Progress;

/// Scores every example of `task` as [`super::evaluate_task`] does, `shape.group`
/// examples through the layers at once (all when None) and the head `shape.head_rows`
/// vocabulary rows at a time (all when None).
pub fn evaluate_task_streamed(
    stream: &LayerStream<'_>,
    tok: &Tokenizer,
    task: &Task,
    shape: StreamShape,
    progress: &mut dyn Progress,
) -> Result<(TaskScore, Vec<McResult>)> {
    if task.examples.is_empty() {
        return Err(Error::NotEnough {
            what: format!("task {}", task.name),
            reason: "has no examples".into(),
        });
    }
    let cfg = stream.config();
    let plans = task
        .examples
        .iter()
        .map(|ex| plan_example(tok, ex, cfg.max_position_embeddings))
        .collect::<Result<Vec<_>>>()?;
    let group = shape.group.unwrap_or(plans.len()).clamp(1, plans.len());
    let rows = shape.head_rows.unwrap_or(cfg.vocab_size);
    let pad = tok.eos.first().copied().unwrap_or(0);
    let mut results = Vec::with_capacity(plans.len());
    for (exs, plans) in task.examples.chunks(group).zip(plans.chunks(group)) {
        let scored = score_group(stream, exs, plans, rows, pad, progress)?;
        results.extend(exs.iter().zip(scored).map(|(ex, s)| result_of(ex, s)));
    }
    Ok((task_score(task, &results), results))
}

/// One pass's hidden states: a context (with its continuation batch) or a lone request.
struct Run<'p> {
    part: &'p Part,
    x: Tensor,
    cont: Option<Tensor>,
}

/// How a unit's scores go into an example's requests.
enum Use<'p> {
    /// The context's last position: each continuation's first token.
    First(usize, &'p [usize]),
    /// The continuation batch: each continuation's further tokens.
    Rest(usize, &'p [usize], &'p [Vec<u32>]),
    /// A lone request's tokens.
    Alone(usize, usize),
}

/// Each request's (log-likelihood, greedy) of the examples `exs` (planned as `plans`).
fn score_group(
    stream: &LayerStream<'_>,
    exs: &[McExample],
    plans: &[Vec<Part>],
    rows: usize,
    pad: u32,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<(f64, bool)>>> {
    let mut runs = embed(stream, plans, pad)?;
    let f = stream.frame();
    let kept: Vec<bool> = (0..f.cfg.num_layers)
        .map(|i| !f.plan.drops_attn(i))
        .collect();
    let lanes = rayon::current_num_threads().clamp(1, runs.len().max(1));
    progress.start("layer by layer", f.cfg.num_layers as u64);
    for i in 0..f.cfg.num_layers {
        let layer = stream.load_layer(i)?;
        stream.prefetch_layer(i + 1);
        for chunk in runs.chunks_mut(lanes) {
            chunk
                .par_iter_mut()
                .try_for_each(|r| step(f, i, &layer, &kept, r))?;
        }
        drop(layer);
        stream.release_layer(i);
        progress.advance(1);
    }
    progress.finish();

    let head = stream.head_slices(rows)?;
    let mut units = Vec::new();
    let mut uses = Vec::new();
    let mut e = 0;
    let mut left = plans.first().map_or(0, Vec::len);
    for r in runs {
        while left == 0 {
            e += 1;
            left = plans[e].len();
        }
        left -= 1;
        match r.part {
            Part::Shared { members, conts, .. } => {
                let c = r.x.dim(1)?;
                units.push(Unit {
                    x: head.norm(&r.x.narrow(1, c - 1, 1)?)?,
                    picks: conts.iter().map(|k| (0, k[0])).collect(),
                });
                uses.push(Use::First(e, members));
                if let Some(x) = r.cont {
                    let w = x.dim(1)?;
                    let picks = conts
                        .iter()
                        .enumerate()
                        .flat_map(|(b, k)| (0..k.len() - 1).map(move |j| (b * w + j, k[j + 1])))
                        .collect();
                    units.push(Unit {
                        x: head.norm(&x)?,
                        picks,
                    });
                    uses.push(Use::Rest(e, members, conts));
                }
            }
            Part::Alone {
                member,
                start,
                targets,
                ..
            } => {
                let picks = (*start..).zip(targets.iter().copied()).collect();
                units.push(Unit {
                    x: head.norm(&r.x)?,
                    picks,
                });
                uses.push(Use::Alone(e, *member));
            }
        }
    }
    let scores = score_units(&head, &units, progress)?;
    drop(units);
    head.release();
    let mut out: Vec<Vec<(f64, bool)>> = exs
        .iter()
        .map(|ex| vec![(0.0, true); ex.requests.len()])
        .collect();
    let token = |r: &RowScore| (r.log_prob(), r.greedy());
    for (u, s) in uses.into_iter().zip(scores) {
        match u {
            Use::First(e, members) => {
                for (&j, r) in members.iter().zip(&s) {
                    out[e][j] = token(r);
                }
            }
            Use::Rest(e, members, conts) => {
                let mut s = s.iter();
                for (&j, k) in members.iter().zip(conts) {
                    for r in s.by_ref().take(k.len() - 1) {
                        add_token(&mut out[e][j], token(r));
                    }
                }
            }
            Use::Alone(e, j) => {
                let mut acc = (0.0, true);
                for r in &s {
                    add_token(&mut acc, token(r));
                }
                out[e][j] = acc;
            }
        }
    }
    Ok(out)
}

/// Every pass's embedded input (`[1, t, hidden]`; a continuation batch `[n, width,
/// hidden]`), the embedding rows of the group's tokens read once.
fn embed<'p>(stream: &LayerStream<'_>, plans: &'p [Vec<Part>], pad: u32) -> Result<Vec<Run<'p>>> {
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    for p in plans.iter().flatten() {
        match p {
            Part::Shared { ctx, conts, .. } => {
                seqs.push(ctx.clone());
                seqs.extend(batch_rows(conts, pad).into_iter().flatten());
            }
            Part::Alone { input, .. } => seqs.push(input.clone()),
        }
    }
    let mut states = stream.embed(&seqs, Outputs::Logits)?.into_iter();
    drop(seqs);
    let mut runs = Vec::new();
    for part in plans.iter().flatten() {
        let Some(x) = states.next() else { break };
        let batch = match part {
            Part::Shared { conts, .. } if conts.iter().any(|k| k.len() > 1) => conts.len(),
            _ => 0,
        };
        let rows: Vec<Tensor> = states.by_ref().take(batch).collect();
        let cont = match rows.is_empty() {
            true => None,
            false => Some(Tensor::cat(&rows, 0)?),
        };
        runs.push(Run { part, x, cont });
    }
    Ok(runs)
}

/// Layer `i` on one pass, as the in-memory decoder runs it: a context into this layer's
/// cache slot at offset 0, then its continuation batch on that slot repeated, at the
/// context's length; a lone request without a cache.
fn step(f: &Frame, i: usize, layer: &Layer, kept: &[bool], r: &mut Run<'_>) -> Result<()> {
    let has_attn = |j: usize| kept[j];
    let t = r.x.dim(1)?;
    let mut cache = KvCache::new(kept);
    let shared = matches!(r.part, Part::Shared { .. });
    let masks = f.masks(t, 0, has_attn)?;
    let slot = shared.then_some(&mut cache);
    r.x = f.layer_forward(i, layer, r.x.clone(), &masks, 0, slot, &mut NoProbe)?;
    if let Some(x) = &mut r.cont {
        let (n, w) = (x.dim(0)?, x.dim(1)?);
        let mut batch = cache.repeat_batch(n)?;
        let masks = f.masks(w, t, has_attn)?;
        *x = f.layer_forward(
            i,
            layer,
            x.clone(),
            &masks,
            t,
            Some(&mut batch),
            &mut NoProbe,
        )?;
    }
    Ok(())
}
