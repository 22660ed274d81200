//! Scoring with the layers read one at a time ([`LayerStream`]): the same table, bit for
//! bit, as [`super::score`] on the model held in memory; resumable from a [`Checkpoint`].

use std::sync::Arc;

use candle_core::Tensor;

use super::checkpoint::{Checkpoint, Loaded};
use super::{ScoreOptions, ScoreProbe, ScoreTable};
use crate::dest::SpillDir;
use crate::error::{Error, Result};
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
    let mut probes = probes_for(
        layers,
        opts,
        spill.filter(|_| opts.consecutive),
        blocks.len(),
    );
    stream.run(&mut states, &mut probes, lanes(blocks), progress)?;
    drop(states);
    total(layers, opts, probes, &mut || Ok(()))
}

/// As [`score_streamed`], saving the state after every layer in `checkpoint` (the unit
/// hidden states go there too) and continuing from the layer it holds when a run of the
/// same key stopped: the same table, bit for bit, as a run that never stopped.
///
/// Where it starts is what [`Checkpoint::prepare`] says (called here if the caller did
/// not): a checkpoint that does not hold is cleared and the run starts over. Between
/// layers (after the save) it asks [`Progress::cancelled`]: when asked to stop it returns
/// [`Error::Cancelled`] with the checkpoint's folder, kept for the next run. `checkpoint`
/// must have been opened with this run's [`CheckpointKey`](super::CheckpointKey).
pub fn score_streamed_resumable(
    stream: &LayerStream<'_>,
    blocks: &[Vec<u32>],
    opts: &ScoreOptions,
    checkpoint: &mut Checkpoint,
    progress: &mut dyn Progress,
) -> Result<ScoreTable> {
    let start = checkpoint.take_start(stream, blocks, opts)?;
    let layers = stream.config().num_layers;
    let spill = opts.consecutive.then(|| Arc::clone(checkpoint.units()));
    let mut probes = probes_for(layers, opts, spill.as_ref(), blocks.len());
    let (from, mut states) = match start {
        Some(Loaded {
            done,
            probes: saved,
            states,
        }) => {
            for (p, s) in probes.iter_mut().zip(&saved) {
                p.restore(s)?;
            }
            (done, states)
        }
        None => (0, stream.embed(blocks, Outputs::HiddenStates)?),
    };
    let path = checkpoint.path().to_path_buf();
    let stopped = |done| Error::Cancelled {
        done,
        total: layers,
        checkpoint: Some(path.clone()),
    };
    stream.run_from(
        &mut states,
        &mut probes,
        lanes(blocks),
        from,
        progress,
        &mut |i, states: &[Tensor], probes: &mut [ScoreProbe], progress: &mut dyn Progress| {
            checkpoint.save(i + 1, states, probes)?;
            match i + 1 < layers && progress.cancelled() {
                true => Err(stopped(i + 1)),
                false => Ok(()),
            }
        },
    )?;
    drop(states);
    // the unit files are read back, never changed: a stop here resumes after every layer
    total(layers, opts, probes, &mut || match progress.cancelled() {
        true => Err(stopped(layers)),
        false => Ok(()),
    })
}

fn lanes(blocks: &[Vec<u32>]) -> usize {
    rayon::current_num_threads().clamp(1, blocks.len().max(1))
}

fn probes_for(
    layers: usize,
    opts: &ScoreOptions,
    spill: Option<&Arc<SpillDir>>,
    blocks: usize,
) -> Vec<ScoreProbe> {
    (0..blocks)
        .map(|k| {
            let p = ScoreProbe::new(layers, opts);
            match spill {
                Some(dir) => p.spilling(Arc::clone(dir), k),
                None => p,
            }
        })
        .collect()
}

/// The probes' sums added in block order, each block's spilled unit hidden states read
/// back first; `check` runs before each block (an error stops there).
fn total(
    layers: usize,
    opts: &ScoreOptions,
    mut probes: Vec<ScoreProbe>,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<ScoreTable> {
    probes.iter_mut().for_each(ScoreProbe::drop_rows);
    let mut units = Vec::new();
    let mut total = ScoreProbe::new(layers, opts);
    for p in &mut probes {
        check()?;
        p.add_spilled_pairs(&mut units)?;
        total.absorb(p);
    }
    Ok(total.finish())
}
