//! How one multiple-choice example runs through the model, decided once for the
//! in-memory and the layer-streamed paths: requests that share a context run it once
//! into a KV cache and their continuations as one right-padded batch on top; a request
//! longer than the model's window runs alone, cut from the left. Both paths run these
//! passes with the same shapes and add the tokens' log-probabilities in the same order.

use super::mc::{encode_pair, McResult};
use super::task::McExample;
use crate::budget::McPass;
use crate::error::{Error, Result};
use crate::io::tokenizer::Tokenizer;

/// One pass of an example (or two, context then continuations).
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Requests `members` share `ctx`; `conts[b]` is request `members[b]`'s continuation.
    Shared {
        members: Vec<usize>,
        ctx: Vec<u32>,
        conts: Vec<Vec<u32>>,
    },
    /// Request `member` alone: `input` (cut from the left to the window), whose positions
    /// `start..` predict `targets`.
    Alone {
        member: usize,
        input: Vec<u32>,
        start: usize,
        targets: Vec<u32>,
    },
}

/// The passes of `ex` for a model of `max_len` positions, in the order both paths run
/// them.
pub(crate) fn plan_example(tok: &Tokenizer, ex: &McExample, max_len: usize) -> Result<Vec<Part>> {
    if ex.requests.is_empty() {
        return Err(Error::NotEnough {
            what: "an example".into(),
            reason: "has no choices".into(),
        });
    }
    let mut pairs = Vec::with_capacity(ex.requests.len());
    for (ctx, cont) in &ex.requests {
        let (c, k) = encode_pair(tok, ctx, cont)?;
        if k.is_empty() {
            return Err(Error::NotEnough {
                what: format!("choice {cont:?}"),
                reason: "encodes to no tokens".into(),
            });
        }
        pairs.push((c, k));
    }
    let mut done = vec![false; pairs.len()];
    let mut parts = Vec::new();
    for i in 0..pairs.len() {
        if done[i] {
            continue;
        }
        let group: Vec<usize> = (i..pairs.len())
            .filter(|&j| !done[j] && pairs[j].0 == pairs[i].0)
            .collect();
        for &j in &group {
            done[j] = true;
        }
        let fits = group
            .iter()
            .all(|&j| pairs[j].0.len() + pairs[j].1.len() - 1 <= max_len);
        if fits {
            parts.push(Part::Shared {
                ctx: pairs[i].0.clone(),
                conts: group.iter().map(|&j| pairs[j].1.clone()).collect(),
                members: group,
            });
            continue;
        }
        for j in group {
            let (ctx, cont) = &pairs[j];
            let mut input: Vec<u32> = ctx.iter().chain(cont).copied().collect();
            input.pop();
            if input.len() > max_len {
                input.drain(..input.len() - max_len);
            }
            let start = input.len().saturating_sub(cont.len());
            let targets = cont[cont.len() - (input.len() - start)..].to_vec();
            parts.push(Part::Alone {
                member: j,
                input,
                start,
                targets,
            });
        }
    }
    Ok(parts)
}

/// The continuations of a shared part as a right-padded batch of their inputs (every
/// token but the last), or None when every continuation is one token.
pub(crate) fn batch_rows(conts: &[Vec<u32>], pad: u32) -> Option<Vec<Vec<u32>>> {
    let width = conts.iter().map(|k| k.len() - 1).max().unwrap_or(0);
    (width > 0).then(|| {
        conts
            .iter()
            .map(|k| {
                let mut r = k[..k.len() - 1].to_vec();
                r.resize(width, pad);
                r
            })
            .collect()
    })
}

/// A request's log-likelihood and greedy flag with one more token's added.
pub(crate) fn add_token(acc: &mut (f64, bool), token: (f64, bool)) {
    acc.0 += token.0;
    acc.1 &= token.1;
}

/// The example's result from each request's log-likelihood and greedy flag.
pub(crate) fn result_of(ex: &McExample, scored: Vec<(f64, bool)>) -> McResult {
    let (lls, greedy): (Vec<f64>, Vec<bool>) = scored.into_iter().unzip();
    let normed: Vec<f64> = lls
        .iter()
        .zip(&ex.choices)
        .map(|(ll, c)| ll / c.chars().count().max(1) as f64)
        .collect();
    McResult {
        pred: argmax(&lls),
        pred_norm: argmax(&normed),
        loglikelihoods: lls,
        greedy,
        gold: ex.gold,
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The passes of an example's parts as the memory estimate counts them, and every token
/// they embed (`pad` included where a batch is padded).
pub(crate) fn passes(parts: &[Part], pad: u32, tokens: &mut Vec<u32>) -> Vec<McPass> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Shared { ctx, conts, .. } => {
                let c = ctx.len() as u64;
                tokens.extend(ctx);
                conts.iter().for_each(|k| tokens.extend(k));
                out.push(McPass {
                    rows: c,
                    seqs: 1,
                    keys: c,
                    cached: true,
                    head_rows: 1,
                    scored: conts.len() as u64,
                });
                if let Some(rows) = batch_rows(conts, pad) {
                    tokens.push(pad);
                    let (n, w) = (rows.len() as u64, rows.first().map_or(0, Vec::len) as u64);
                    out.push(McPass {
                        rows: n * w,
                        seqs: n,
                        keys: c + w,
                        cached: true,
                        head_rows: n * w,
                        scored: conts.iter().map(|k| k.len() as u64 - 1).sum(),
                    });
                }
            }
            Part::Alone { input, targets, .. } => {
                tokens.extend(input);
                let t = input.len() as u64;
                out.push(McPass {
                    rows: t,
                    seqs: 1,
                    keys: t,
                    cached: false,
                    head_rows: t,
                    scored: targets.len() as u64,
                });
            }
        }
    }
    out
}
