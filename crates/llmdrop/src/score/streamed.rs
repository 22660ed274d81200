//! Scoring with the layers read one at a time ([`LayerStream`]): the same table, bit for
//! bit, as [`super::score`] on the model held in memory.

use super::{ScoreOptions, ScoreProbe, ScoreTable};
use crate::error::Result;
use crate::model::LayerStream;
use crate::progress::Progress;

/// Runs every calibration block through the model layer by layer and returns the
/// similarities.
///
/// Each block is scored into a probe of its own, as [`super::score`] scores it, and the
/// probes are added to the total in block order: the same sums in the same order, so the
/// same bits. Memory holds one layer, the hidden states of every block, and (for the
/// consecutive-layer matrix) every block's unit hidden states of every layer.
pub fn score_streamed(
    stream: &LayerStream<'_>,
    blocks: &[Vec<u32>],
    opts: &ScoreOptions,
    progress: &mut dyn Progress,
) -> Result<ScoreTable> {
    let layers = stream.config().num_layers;
    let mut states = stream.embed(blocks)?;
    let mut probes: Vec<ScoreProbe> = blocks
        .iter()
        .map(|_| ScoreProbe::new(layers, opts))
        .collect();
    let lanes = rayon::current_num_threads().clamp(1, blocks.len().max(1));
    stream.run(&mut states, &mut probes, lanes, progress)?;
    let mut total = ScoreProbe::new(layers, opts);
    for p in &mut probes {
        total.absorb(p);
    }
    Ok(total.finish())
}
