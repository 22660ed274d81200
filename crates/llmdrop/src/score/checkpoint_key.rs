//! What a scoring checkpoint is of ([`CheckpointKey`]): only a run with the same key
//! resumes from it.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::checkpoint_file::FORMAT;
use super::ScoreOptions;
use crate::model::LayerStream;
use crate::plan::DropPlan;

/// What a checkpoint is of; only a run with the same key resumes from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointKey {
    /// The checkpoint files' layout.
    pub format: u32,
    pub llmdrop_version: String,
    pub model_sha256: String,
    /// sha256 of the calibration blocks: each block's length (u64) then its ids (u32),
    /// little-endian.
    pub blocks_sha256: String,
    pub blocks: usize,
    pub layers: usize,
    pub precision: String,
    pub plan: DropPlan,
    pub options: ScoreOptions,
}

impl CheckpointKey {
    /// The key of scoring `blocks` with `opts` on `stream`, a model whose files hash to
    /// `model_sha256` ([`crate::io::model_sha256`]).
    pub fn new(
        model_sha256: &str,
        stream: &LayerStream<'_>,
        blocks: &[Vec<u32>],
        opts: &ScoreOptions,
    ) -> Self {
        let mut h = Sha256::new();
        for b in blocks {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>());
        }
        Self {
            format: FORMAT,
            llmdrop_version: crate::VERSION.into(),
            model_sha256: model_sha256.into(),
            blocks_sha256: hex(&h.finalize()),
            blocks: blocks.len(),
            layers: stream.config().num_layers,
            precision: stream.precision().name().into(),
            plan: stream.plan().clone(),
            options: *opts,
        }
    }

    /// The most disk a checkpoint of scoring `blocks` on `stream` takes at once: every
    /// block's unit hidden states (with the consecutive matrix) and two layer files (the
    /// new one is written before the old one goes).
    pub fn disk_bytes(&self, stream: &LayerStream<'_>, blocks: &[Vec<u32>]) -> u64 {
        let c = stream.config();
        let tokens: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let units = match self.options.consecutive {
            true => (c.num_layers as u64 + 1) * tokens * c.hidden_size as u64 * 4,
            false => 0,
        };
        let dtype = stream.precision().compute_dtype().size_in_bytes() as u64;
        let l = c.num_layers as u64;
        let per_block = 3 * l * 16 + (l + 1) * (l + 1) * 8 + 96;
        let layer_file = tokens * c.hidden_size as u64 * dtype + blocks.len() as u64 * per_block;
        units + 2 * (layer_file + 128)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
