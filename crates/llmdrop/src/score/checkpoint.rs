//! Checkpoints of layer-streamed scoring, so that a stopped run (Ctrl-C, a kill, a crash, a
//! full disk) continues from its last finished layer and gives the same bits as a run that
//! never stopped.
//!
//! After every layer, [`score_streamed_resumable`](super::score_streamed_resumable) saves
//! in the checkpoint's folder ([`ResumeDir`]) every block's hidden state and probe sums as
//! `layer-N.ckpt` (written beside, flushed to disk, then renamed into place; the one before
//! is removed after), with the length and checksum of each block's unit hidden states
//! (the consecutive matrix's, appended to `block-K.f32` files in the same folder and
//! flushed before). A run resumes from the newest `layer-N.ckpt` whose checksum and counts
//! hold, cutting the unit files back to what it counts; anything else (a damaged or cut
//! file, a unit file that does not match) is cleared and the run starts over.
//!
//! A checkpoint is for one [`CheckpointKey`]: the model's sha256, the exact calibration
//! blocks, the options, the precision, the drop plan and the llmdrop version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use sha2::{Digest, Sha256};

use super::checkpoint_file::{self as file, Expect, Saved};
use super::checkpoint_key::hex;
use super::probe::ProbeState;
use super::{CheckpointKey, ScoreOptions, ScoreProbe};
use crate::dest::{free_bytes, Inputs, Removed, ResumeDir, SpillDir};
use crate::error::{Error, Result};
use crate::model::LayerStream;

/// A scoring run's checkpoint folder, open and locked; see the module docs.
pub struct Checkpoint {
    dir: ResumeDir,
    key: CheckpointKey,
    units: Arc<SpillDir>,
    /// Layers the folder holds saved (0: nothing worth keeping).
    saved: usize,
    finished: bool,
    /// What [`Checkpoint::prepare`] found, for the run to take.
    prepared: Option<Option<Loaded>>,
}

/// Where a run with a checkpoint starts ([`Checkpoint::prepare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// From the first layer: nothing was saved.
    Fresh,
    /// After `layer` layers (the next to run is layer `layer`, counted from 0), saved by a
    /// run that stopped.
    At { layer: usize },
    /// From the first layer: what was saved does not hold (`reason`: damaged, cut short, a
    /// unit file that does not match) and was cleared.
    Cleared { reason: String },
}

/// What [`Checkpoint::prepare`] read for the run to start from: the layers done, each
/// block's probe state and hidden state.
pub(crate) struct Loaded {
    pub done: usize,
    pub probes: Vec<ProbeState>,
    pub states: Vec<Tensor>,
}

impl Checkpoint {
    /// Opens the checkpoint of `key` in `parent` (created if needed) for a run writing
    /// `out`, refusing a folder that overlaps `inputs`: the one a stopped run left, unless
    /// `fresh`, else a new one. Stale checkpoints of `out` are removed and returned. The
    /// file system must have `need` bytes free ([`CheckpointKey::disk_bytes`]), less what
    /// the checkpoint already holds.
    pub fn open(
        parent: &Path,
        key: CheckpointKey,
        out: &Path,
        fresh: bool,
        need: u64,
        inputs: &Inputs,
    ) -> Result<(Self, Vec<Removed>)> {
        let json = serde_json::to_value(&key).map_err(|e| Error::context("checkpoint key", e))?;
        let id = hex(&Sha256::digest(json.to_string().as_bytes()));
        let (dir, removed, existed) = ResumeDir::open(parent, &id, &json, out, fresh, inputs)?;
        let held = folder_bytes(dir.path());
        let free = free_bytes(dir.path())?;
        if need > held + free {
            if !existed {
                let _ = dir.remove();
            }
            return Err(Error::SpillSpace {
                dir: parent.into(),
                need: need - held,
                free,
            });
        }
        let units = Arc::new(SpillDir::kept(dir.path(), key.blocks, need));
        let saved = layer_files(dir.path()).last().map_or(0, |(n, _)| *n);
        let mut me = Self {
            dir,
            key,
            units,
            saved,
            finished: false,
            prepared: None,
        };
        me.dir.set_disposable(saved == 0);
        Ok((me, removed))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self) -> &CheckpointKey {
        &self.key
    }

    /// The layers the folder holds saved; when some are, it is kept when this value is
    /// dropped (unless [`Checkpoint::finish`]ed).
    pub fn layers_saved(&self) -> usize {
        self.saved
    }

    /// Where the unit hidden states go.
    pub(crate) fn units(&self) -> &Arc<SpillDir> {
        &self.units
    }

    /// Removes the folder: the run it was for is done.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        self.dir.set_disposable(false);
        let dir = self.path();
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
    }

    /// Reads what a stopped run saved, checked against scoring `blocks` with `opts` on
    /// `stream` (this checkpoint's key): where the run starts. A checkpoint that does not
    /// hold is cleared. [`super::score_streamed_resumable`] calls it when the caller did not
    /// (call it first to say where the run starts).
    pub fn prepare(
        &mut self,
        stream: &LayerStream<'_>,
        blocks: &[Vec<u32>],
        opts: &ScoreOptions,
    ) -> Result<Start> {
        self.check_key(stream, blocks, opts)?;
        let path = self.path().to_path_buf();
        let files = layer_files(&path);
        let Some((done, file_path)) = files.last().cloned() else {
            self.clear();
            self.prepared = Some(None);
            return Ok(Start::Fresh);
        };
        let want = Expect {
            id: self.dir.id(),
            done,
            layers: self.key.layers,
            tokens: blocks.iter().map(Vec::len).collect(),
            hidden: stream.config().hidden_size,
            dtype: stream.precision().compute_dtype(),
        };
        let saved = file::read(&file_path, &want, stream.device())
            .and_then(|s| check_counts(&s, &want, self.key.options.consecutive).map(|_| s))
            .and_then(|s| self.units.restore(&s.marks).map(|_| s));
        match saved {
            Ok(Saved { probes, states, .. }) => {
                for (_, p) in &files[..files.len() - 1] {
                    let _ = std::fs::remove_file(p);
                }
                self.saved = done;
                self.prepared = Some(Some(Loaded {
                    done,
                    probes,
                    states,
                }));
                Ok(Start::At { layer: done })
            }
            Err(reason) => {
                self.clear();
                self.prepared = Some(None);
                Ok(Start::Cleared {
                    reason: format!("{}: {reason}", file_path.display()),
                })
            }
        }
    }

    /// What [`Checkpoint::prepare`] read (preparing first if the caller did not); None to
    /// start fresh.
    pub(crate) fn take_start(
        &mut self,
        stream: &LayerStream<'_>,
        blocks: &[Vec<u32>],
        opts: &ScoreOptions,
    ) -> Result<Option<Loaded>> {
        self.check_key(stream, blocks, opts)?;
        if self.prepared.is_none() {
            self.prepare(stream, blocks, opts)?;
        }
        Ok(self.prepared.take().flatten())
    }

    /// Refuses a run other than the one this checkpoint was opened for.
    fn check_key(
        &self,
        stream: &LayerStream<'_>,
        blocks: &[Vec<u32>],
        opts: &ScoreOptions,
    ) -> Result<()> {
        let key = CheckpointKey::new(&self.key.model_sha256, stream, blocks, opts);
        if key != self.key {
            return Err(Error::Argument {
                option: "checkpoint",
                reason: "was opened for another model, plan, precision, data or options".into(),
            });
        }
        Ok(())
    }

    /// Saves the state after `done` layers: the unit files flushed, the layer file written
    /// beside, flushed and renamed into place, the older one removed.
    pub(crate) fn save(
        &mut self,
        done: usize,
        states: &[Tensor],
        probes: &[ScoreProbe],
    ) -> Result<()> {
        let probes = probes
            .iter()
            .map(ScoreProbe::state)
            .collect::<Result<Vec<_>>>()?;
        self.units.sync()?;
        let mut marks = self.units.marks();
        marks.resize(states.len(), Default::default());
        let saved = Saved {
            probes,
            marks,
            states: states.to_vec(),
        };
        let dir = self.path().to_path_buf();
        let path = dir.join(format!("layer-{done}.ckpt"));
        let tmp = dir.join(format!("layer-{done}.ckpt.tmp"));
        let failed = |cause| Error::CheckpointWrite {
            path: path.clone(),
            layer: done,
            bytes: file::file_bytes(self.key.layers, states),
            cause,
        };
        let written = file::write(&tmp, self.dir.id(), done, self.key.layers, &saved)
            .and_then(|_| std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e)))
            .and_then(|_| sync_dir(&dir));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(match e {
                Error::Io { cause, .. } => failed(cause),
                e => e,
            });
        }
        for (n, p) in layer_files(&dir) {
            if n != done {
                let _ = std::fs::remove_file(p);
            }
        }
        self.saved = done;
        self.dir.set_disposable(false);
        Ok(())
    }

    /// Clears every saved layer and unit file: the run starts over.
    fn clear(&mut self) {
        for (_, p) in layer_files(self.path()) {
            let _ = std::fs::remove_file(p);
        }
        self.units.clear();
        self.saved = 0;
        self.dir.set_disposable(true);
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        // nothing saved worth resuming from: no folder left behind
        if !self.finished && self.saved == 0 {
            let _ = std::fs::remove_dir_all(self.dir.path());
        }
    }
}

/// The counters of every block agree with the layers done and the unit files: after N
/// layers a block has the inputs of layers 0..N in its unit file, and the last output too
/// once every layer is done.
fn check_counts(
    s: &Saved,
    want: &Expect<'_>,
    consecutive: bool,
) -> std::result::Result<(), String> {
    let filled = match consecutive {
        true => (want.done + usize::from(want.done == want.layers)) as u64,
        false => 0,
    };
    for (k, (p, m)) in s.probes.iter().zip(&s.marks).enumerate() {
        let t = want.tokens[k] as u64;
        let [_, tokens, unit_tokens, hidden, got] = p.counts;
        let units = match consecutive {
            true => unit_tokens == t && hidden == want.hidden as u64,
            false => unit_tokens == 0,
        };
        if tokens != t || got != filled || !units || m.bytes != filled * t * want.hidden as u64 * 4
        {
            return Err(format!(
                "block {k}: its counts do not agree with {} layers done",
                want.done
            ));
        }
    }
    Ok(())
}

/// `layer-N.ckpt` files in `dir` by N, oldest first; leftover `.tmp` files are removed.
fn layer_files(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ckpt.tmp") {
            let _ = std::fs::remove_file(e.path());
        }
        let n = name
            .strip_prefix("layer-")
            .and_then(|r| r.strip_suffix(".ckpt"));
        if let Some(n) = n.and_then(|n| n.parse::<usize>().ok()) {
            out.push((n, e.path()));
        }
    }
    out.sort();
    out
}

/// Bytes of the files directly in `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}
