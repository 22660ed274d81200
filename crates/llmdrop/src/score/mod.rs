//! Importance scores (DESIGN §1): a [`ScoreProbe`] streams per-token cosine similarities
//! of every layer into running sums; the result is a [`ScoreTable`]. Layer-streamed
//! scoring can save its progress after every layer in a [`Checkpoint`] and resume from it.

// Reachable only for benches/kernels.rs (the row cosine it times); hidden from the docs.
pub(crate) mod checkpoint;
mod checkpoint_file;
mod checkpoint_key;
#[doc(hidden)]
pub mod cosine;
pub(crate) mod probe;
pub(crate) mod streamed;
pub(crate) mod table;

pub use checkpoint::{Checkpoint, Start};
pub use checkpoint_key::CheckpointKey;
pub use probe::{ScoreOptions, ScoreProbe};
pub use streamed::{score_streamed, score_streamed_resumable};
pub use table::ScoreTable;

use candle_core::Tensor;
use rayon::prelude::*;

use crate::error::Result;
use crate::model::{Decoder, Logits};
use crate::progress::Progress;

/// Runs every calibration block through `dec` and returns the similarities.
///
/// Blocks run side by side, one per thread of rayon's pool (a thread that finishes early
/// helps inside the others' kernels), so each thread runs whole layers on its own block
/// without waiting for the other at every product. Each block is scored into a probe of
/// its own and added to the total in block order: the result is the same bits on any
/// thread count. Memory holds one block's hidden states per thread.
pub fn score(
    dec: &Decoder,
    blocks: &[Vec<u32>],
    opts: &ScoreOptions,
    progress: &mut dyn Progress,
) -> Result<ScoreTable> {
    let layers = dec.config().num_layers;
    let mut total = ScoreProbe::new(layers, opts);
    let lanes = rayon::current_num_threads().clamp(1, blocks.len().max(1));
    let mut lane_probes: Vec<ScoreProbe> =
        (0..lanes).map(|_| ScoreProbe::new(layers, opts)).collect();
    progress.start("scoring", blocks.len() as u64);
    for group in blocks.chunks(lanes) {
        lane_probes
            .par_iter_mut()
            .zip(group)
            .try_for_each(|(probe, b)| -> Result<()> {
                let ids = Tensor::new(b.as_slice(), dec.device())?.unsqueeze(0)?;
                dec.forward(&ids, None, probe, Logits::None)?;
                Ok(())
            })?;
        for probe in &mut lane_probes[..group.len()] {
            total.absorb(probe);
        }
        progress.advance(group.len() as u64);
    }
    progress.finish();
    Ok(total.finish())
}
