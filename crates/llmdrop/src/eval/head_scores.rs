//! Log-probabilities of chosen tokens at chosen positions of many hidden states, from the
//! output head read in vocabulary slices ([`HeadSlices`]): memory holds one slice of the
//! head and one unit's logits of that slice, never a whole row of logits.
//!
//! Each unit is a tensor the in-memory path hands its head (a perplexity window, the last
//! position of a multiple-choice context, a batch of continuations), so the head computes
//! the same products on the same rows; [`RowScore`] sees every scored row slice by slice
//! in vocabulary order, twice (maxima, then sums), which gives the in-memory bits. A
//! sliced head's products thus run twice; a head read whole runs them once.

use candle_core::Tensor;
use rayon::prelude::*;

use super::log_softmax::RowScore;
use crate::error::Result;
use crate::model::{HeadSlice, HeadSlices};
use crate::progress::Progress;
use crate::tensor_values::with_f32;

/// Normed hidden states and the positions of them to score.
pub(crate) struct Unit {
    /// The final norm's output, `[b, t, hidden]`.
    pub x: Tensor,
    /// (position in the flattened `b * t` positions, target token), in scoring order.
    pub picks: Vec<(usize, u32)>,
}

#[derive(Clone, Copy)]
enum Pass {
    Max,
    Sum,
    /// Both, one after the other, on each unit's logits (a slice that is the whole head).
    Both,
}

/// Every pick of every unit scored: each slice of the head is read for the maxima, then
/// again for the sums; a head read whole is read once and each unit's logits computed
/// once, for both passes. Progress counts slice passes.
pub(crate) fn score_units(
    head: &HeadSlices<'_>,
    units: &[Unit],
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<RowScore>>> {
    let mut scores: Vec<Vec<RowScore>> = units
        .iter()
        .map(|u| {
            u.picks
                .iter()
                .map(|&(_, t)| RowScore::new(t as usize))
                .collect()
        })
        .collect();
    let ranges = head.ranges();
    if let [whole] = &ranges[..] {
        progress.start("output head", 1);
        visit(&head.load(whole.clone())?, units, &mut scores, Pass::Both)?;
        progress.advance(1);
        progress.finish();
        return Ok(scores);
    }
    progress.start("output head", 2 * ranges.len() as u64);
    for pass in [Pass::Max, Pass::Sum] {
        for r in &ranges {
            visit(&head.load(r.clone())?, units, &mut scores, pass)?;
            progress.advance(1);
        }
    }
    progress.finish();
    Ok(scores)
}

/// One pass of one slice over every unit, one unit's logits at a time.
fn visit(s: &HeadSlice, units: &[Unit], scores: &mut [Vec<RowScore>], pass: Pass) -> Result<()> {
    for (u, sc) in units.iter().zip(scores.iter_mut()) {
        if u.picks.is_empty() {
            continue;
        }
        let logits = s.logits(&u.x)?;
        let n = logits.dims().last().copied().unwrap_or(0);
        with_f32(&logits, |v| {
            sc.par_iter_mut()
                .zip(u.picks.par_iter())
                .for_each(|(r, &(p, _))| {
                    let row = &v[p * n..(p + 1) * n];
                    match pass {
                        Pass::Max => r.see_max(row),
                        Pass::Sum => r.see_sum(s.start, row),
                        Pass::Both => {
                            r.see_max(row);
                            r.see_sum(s.start, row);
                        }
                    }
                })
        })?;
    }
    Ok(())
}
