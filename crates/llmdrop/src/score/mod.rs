//! Importance scores (DESIGN §1): a [`ScoreProbe`] streams per-token cosine similarities
//! of every layer into running sums; the result is a [`ScoreTable`].

pub mod cosine;
pub mod probe;
pub mod table;

pub use probe::{ScoreOptions, ScoreProbe};
pub use table::ScoreTable;

use candle_core::Tensor;

use crate::error::Result;
use crate::model::{Decoder, Logits};
use crate::progress::Progress;

/// Runs every calibration block through `dec` and returns the similarities.
pub fn score(
    dec: &Decoder,
    blocks: &[Vec<u32>],
    opts: &ScoreOptions,
    progress: &mut dyn Progress,
) -> Result<ScoreTable> {
    let mut probe = ScoreProbe::new(dec.config().num_layers, opts);
    progress.start("scoring", blocks.len() as u64);
    for b in blocks {
        let ids = Tensor::new(b.as_slice(), dec.device())?.unsqueeze(0)?;
        dec.forward(&ids, None, &mut probe, Logits::None)?;
        progress.advance(1);
    }
    progress.finish();
    Ok(probe.finish())
}
