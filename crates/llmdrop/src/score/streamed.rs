//! Scoring with the layers read one at a time ([`LayerStream`]): the same table, bit for
//! bit, as [`super::score`] on the model held in memory.

use std::sync::Arc;

use super::{ScoreOptions, ScoreProbe, ScoreTable};
use crate::dest::SpillDir;
use crate::error::Result;
use crate::model::{LayerStream, Outputs};
use crate::progress::Progress;

/// Runs every calibration block through the model layer by layer and returns the
/// similarities.
///
/// Each block is scored into a probe of its own, as [`super::score`] scores it, and the
/// probes are added to the total in block order: the same sums in the same order, so the
/// same bits. Memory holds one layer and the hidden states of every block. The
/// consecutive-layer matrix needs every layer's unit hidden states of a block at once:
/// without `spill` every block's are held until the end; with it each is appended to the
/// block's file in `spill` as soon as computed, and at the end the blocks are read back
/// one at a time, in order, into the same pairwise sums ([`ScoreNeed::spill`](crate::budget::ScoreNeed::spill) bytes
/// on disk).
pub fn score_streamed(
    stream: &LayerStream<'_>,
    blocks: &[Vec<u32>],
    opts: &ScoreOptions,
    spill: Option<&Arc<SpillDir>>,
    progress: &mut dyn Progress,
) -> Result<ScoreTable> {
    let layers = stream.config().num_layers;
    let mut states = stream.embed(blocks, Outputs::HiddenStates)?;
    let spill = spill.filter(|_| opts.consecutive);
    let mut probes: Vec<ScoreProbe> = (0..blocks.len())
        .map(|k| {
            let p = ScoreProbe::new(layers, opts);
            match spill {
                Some(dir) => p.spilling(Arc::clone(dir), k),
                None => p,
            }
        })
        .collect();
    let lanes = rayon::current_num_threads().clamp(1, blocks.len().max(1));
    stream.run(&mut states, &mut probes, lanes, progress)?;
    drop(states);
    probes.iter_mut().for_each(ScoreProbe::drop_rows);
    let mut units = Vec::new();
    let mut total = ScoreProbe::new(layers, opts);
    for p in &mut probes {
        p.add_spilled_pairs(&mut units)?;
        total.absorb(p);
    }
    Ok(total.finish())
}
