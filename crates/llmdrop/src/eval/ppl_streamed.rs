//! Perplexity with the layers read one at a time ([`LayerStream`]) and the output head a
//! slice of the vocabulary at a time ([`crate::model::HeadSlices`]): the same result,
//! bit for bit, as [`super::perplexity`] on the model held in memory.

use super::head_scores::{score_units, Unit};
use super::ppl::{NllSum, Windows};
use super::{PplOptions, PplResult};
use crate::budget::StreamShape;
use crate::error::Result;
use crate::model::{LayerStream, Outputs};
use crate::probe::NoProbe;
use crate::progress::Progress;

/// Perplexity of `ids` as [`super::perplexity`] measures it, the windows run through the
/// model layer by layer, `shape.group` windows at a time, and through the head
/// `shape.head_rows` vocabulary rows at a time.
///
/// For each group, every window passes through layer `i` before layer `i + 1` is read;
/// then the layers are gone, each window's states go through the final norm, and the
/// head's slices are read in vocabulary order, twice (once when one slice is the whole
/// head): the first time for each scored position's largest logit, the second for its
/// sum of exponentials and its target's logit (one slice's logits of one window at a
/// time). The log-probabilities are the in-memory path's (one sliced log-softmax for
/// both), added in window and position order: the same sums in the same order, so the
/// same bits. Memory holds one layer (or one slice of the head), the group's hidden
/// states and one window's logits of one slice.
pub fn perplexity_streamed(
    stream: &LayerStream<'_>,
    ids: &[u32],
    opts: &PplOptions,
    shape: StreamShape,
    progress: &mut dyn Progress,
) -> Result<PplResult> {
    let w = Windows::cut(ids, opts)?;
    let group = shape.group.unwrap_or(w.wins.len()).clamp(1, w.wins.len());
    let rows = shape.head_rows.unwrap_or(stream.config().vocab_size);
    let mut sum = NllSum::default();
    for wins in w.wins.chunks(group) {
        let mut states = stream.embed(wins, Outputs::Logits)?;
        let mut probes: Vec<NoProbe> = wins.iter().map(|_| NoProbe).collect();
        let lanes = rayon::current_num_threads().clamp(1, wins.len());
        stream.run(&mut states, &mut probes, lanes, progress)?;
        let head = stream.head_slices(rows)?;
        let units = states
            .into_iter()
            .zip(wins)
            .map(|(x, win)| {
                Ok(Unit {
                    x: head.norm(&x)?,
                    picks: (w.first..win.len() - 1).map(|p| (p, win[p + 1])).collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let scores = score_units(&head, &units, progress)?;
        drop(units);
        head.release();
        for s in scores.iter().flatten() {
            sum.add_log_prob(s.log_prob());
        }
    }
    Ok(sum.finish(&w))
}
