//! Perplexity with the layers read one at a time ([`LayerStream`]): the same result, bit
//! for bit, as [`super::perplexity`] on the model held in memory.

use super::ppl::{NllSum, Windows};
use super::{PplOptions, PplResult};
use crate::error::Result;
use crate::model::{LayerStream, Outputs};
use crate::probe::NoProbe;
use crate::progress::Progress;

/// Perplexity of `ids` as [`super::perplexity`] measures it, the windows run through the
/// model layer by layer, `group` windows at a time (all at once when None).
///
/// For each group, every window passes through layer `i` before layer `i + 1` is read;
/// then the layers are gone, the output head (the final norm and the projection, the
/// whole embedding matrix when tied) is loaded by the in-memory decoder's code and gives
/// each window's logits in turn, and the window's NLL is added as the in-memory path adds
/// it, in window order: the same sums in the same order, so the same bits. Memory holds
/// one layer (or the head), the group's hidden states and one window's logits.
pub fn perplexity_streamed(
    stream: &LayerStream<'_>,
    ids: &[u32],
    opts: &PplOptions,
    group: Option<usize>,
    progress: &mut dyn Progress,
) -> Result<PplResult> {
    let w = Windows::cut(ids, opts)?;
    let group = group.unwrap_or(w.wins.len()).clamp(1, w.wins.len());
    let mut sum = NllSum::default();
    for wins in w.wins.chunks(group) {
        let mut states = stream.embed(wins, Outputs::Logits)?;
        let mut probes: Vec<NoProbe> = wins.iter().map(|_| NoProbe).collect();
        let lanes = rayon::current_num_threads().clamp(1, wins.len());
        stream.run(&mut states, &mut probes, lanes, progress)?;
        let head = stream.head()?;
        for (x, win) in states.iter().zip(wins) {
            sum.add(&head.logits(x)?, win, w.first)?;
        }
        drop(head);
        stream.release_head();
    }
    Ok(sum.finish(&w))
}
