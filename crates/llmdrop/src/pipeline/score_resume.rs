//! Layer-streamed scoring in [`super::score_model`]: checkpointed and resumed (the default),
//! or with a private spill folder ([`Resume::Off`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::calibrate::Calibration;
use super::events::{Event, Observer};
use super::score::{score_options, Resume, ScoringOptions};
use crate::budget::MemoryChoice;
use crate::dest::{self, Inputs, Removed, SpillDir};
use crate::error::{Error, Result};
use crate::model::LayerStream;
use crate::score::{
    score_streamed, score_streamed_resumable, Checkpoint, CheckpointKey, ScoreTable, Start,
};

/// One layer-streamed scoring of [`super::score_model`].
pub(super) struct StreamedRun<'a> {
    pub stream: &'a LayerStream<'a>,
    pub model_sha256: &'a str,
    pub cal: &'a Calibration,
    pub choice: MemoryChoice,
    pub opts: &'a ScoringOptions,
    pub inputs: &'a Inputs,
}

impl StreamedRun<'_> {
    /// The folder the spill (and the checkpoint) go into: `spill_dir`, else `out`'s.
    fn parent(&self) -> PathBuf {
        match &self.opts.spill_dir {
            Some(d) => d.clone(),
            None => dest::resolve(&self.opts.out)
                .parent()
                .map_or_else(|| ".".into(), Path::to_path_buf),
        }
    }

    /// The table, and the checkpoint to remove once the scores are written. The disk is
    /// checked (and the folders made) before any weight is read.
    pub fn score(&self, obs: &mut dyn Observer) -> Result<(ScoreTable, Option<Checkpoint>)> {
        let blocks = &self.cal.blocks.blocks;
        let so = score_options(self.cal);
        let parent = self.parent();
        if self.opts.resume == Resume::Off {
            let spill = match self.choice.spill_bytes {
                Some(bytes) if bytes > 0 => {
                    // never inside the model or the data
                    dest::check_apart(&parent.join(".llmdrop-spill"), self.inputs)?;
                    Some(Arc::new(SpillDir::new(&parent, bytes)?))
                }
                _ => None,
            };
            obs.event(Event::ScoringMode {
                choice: self.choice,
                spill_dir: spill.as_deref().map(SpillDir::path),
            });
            let table = score_streamed(self.stream, blocks, &so, spill.as_ref(), obs)?;
            return Ok((table, None));
        }
        let key = CheckpointKey::new(self.model_sha256, self.stream, blocks, &so);
        let need = key.disk_bytes(self.stream, blocks);
        let fresh = self.opts.resume == Resume::Fresh;
        let (mut ckpt, removed) =
            Checkpoint::open(&parent, key, &self.opts.out, fresh, need, self.inputs)?;
        for r in &removed {
            obs.event(match r {
                Removed::Stale(path) => Event::CheckpointStale { path },
                Removed::Discarded(path) => Event::CheckpointDiscarded { path },
            });
        }
        obs.event(Event::ScoringMode {
            choice: self.choice,
            spill_dir: Some(ckpt.path()),
        });
        obs.event(Event::Checkpointing { path: ckpt.path() });
        let path = ckpt.path().to_path_buf();
        match ckpt.prepare(self.stream, blocks, &so)? {
            Start::At { layer } => obs.event(Event::Resuming {
                layer,
                layers: self.stream.config().num_layers,
                path: &path,
            }),
            Start::Cleared { reason } => obs.event(Event::CheckpointIgnored {
                path: &path,
                reason: &reason,
            }),
            Start::Fresh => {}
        }
        match score_streamed_resumable(self.stream, blocks, &so, &mut ckpt, obs) {
            Ok(table) => Ok((table, Some(ckpt))),
            Err(e) => {
                if ckpt.layers_saved() > 0 && !matches!(e, Error::Cancelled { .. }) {
                    obs.event(Event::CheckpointKept {
                        layer: ckpt.layers_saved(),
                        layers: self.stream.config().num_layers,
                        path: ckpt.path(),
                    });
                }
                Err(e)
            }
        }
    }
}
