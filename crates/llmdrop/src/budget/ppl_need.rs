//! What perplexity holds in memory, estimated before any weight is read: the model with
//! its output head and one window's pass (in memory), or, layer-streamed, one layer and
//! the hidden states of a group of windows, then those states and one slice of the output
//! head with one window's logits of that slice.

use super::head_need::{largest_group, HeadNeed};
use super::need::ScoreNeed;
use super::{Need, StreamShape};
use crate::io::source::ModelSource;
use crate::quant::Precision;

/// The parts of perplexity's memory, in bytes (the program itself not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PplNeed {
    /// The layers, embedding rows, one window's states and working memory (`blocks` is
    /// the windows of a streamed group).
    pub pass: ScoreNeed,
    /// The output head, whole or by slices.
    pub head: HeadNeed,
    /// The weights the in-memory decoder holds for logits (its head included).
    pub model: u64,
    /// One window's logits, f32, with the copy the NLL reads (in memory).
    pub logits: u64,
    /// Positions of one window (its logits' rows).
    pub seq_len: u64,
    /// Windows in all.
    pub windows: u64,
}

impl PplNeed {
    /// The estimate for `windows` windows of `seq_len` tokens of `src` at `precision`
    /// (`unique_tokens` distinct ids), streamed `group` windows at a time, `lanes` at once,
    /// with the whole head.
    pub fn estimate(
        src: &ModelSource,
        precision: Precision,
        windows: usize,
        group: usize,
        seq_len: usize,
        unique_tokens: usize,
        lanes: usize,
    ) -> Self {
        let c = src.config();
        let group = group.clamp(1, windows.max(1));
        let mut pass =
            ScoreNeed::estimate(src, precision, group, seq_len, unique_tokens, lanes, false);
        let head = HeadNeed::estimate(src, precision);
        // the rows are loaded as the logits load holds the table
        pass.embed_rows = head.embed_row * unique_tokens as u64;
        Self {
            pass,
            model: pass.model - head.scoring_embed + head.logits_model,
            head,
            logits: 2 * seq_len as u64 * c.vocab_size as u64 * 4,
            seq_len: seq_len as u64,
            windows: windows as u64,
        }
    }

    /// The most windows at once, and the largest head slice beside their states, that
    /// fit `budget`; one window and the smallest slice when nothing fits (the need then
    /// says what streaming needs at least).
    pub fn shape_within(&self, budget: u64) -> StreamShape {
        let g = largest_group(self.windows, &self.head, |g, rows| {
            let n = self.with_shape(g, rows);
            n.layers_bytes() <= budget && n.head_bytes() <= budget
        });
        let fixed = self.with_shape(g, 0).head_bytes();
        let rows = self
            .head
            .rows_within(budget.saturating_sub(fixed), self.seq_len);
        StreamShape {
            group: Some(g as usize),
            head_rows: Some(rows as usize),
        }
    }

    /// The same estimate, streamed `group` windows at a time with `head_rows` rows of the
    /// head at once.
    pub fn with_shape(&self, group: u64, head_rows: u64) -> Self {
        let mut n = *self;
        n.pass.blocks = group.clamp(1, self.windows.max(1));
        n.pass.lanes = n.pass.lanes.min(n.pass.blocks);
        n.head.rows = head_rows.min(self.head.vocab);
        n
    }

    /// [`PplNeed::with_shape`] of a [`StreamShape`] (None: all windows, the whole head).
    pub fn shaped(&self, s: StreamShape) -> Self {
        let g = s.group.map_or(self.windows, |g| g as u64);
        let r = s.head_rows.map_or(self.head.vocab, |r| r as u64);
        self.with_shape(g, r)
    }

    fn states(&self) -> u64 {
        self.pass.blocks * self.pass.block_states
    }

    /// While the layers run.
    fn layers_bytes(&self) -> u64 {
        self.pass.layer
            + self.pass.embed_rows
            + self.states()
            + self.pass.lanes * self.pass.block_working
    }

    /// While the head runs: the states (and one window's being normed), each position's
    /// score, and the head's slice with one window's logits of it.
    fn head_bytes(&self) -> u64 {
        let positions = self.pass.blocks * self.seq_len;
        self.states() + self.pass.block_states + self.head.bytes(positions, self.seq_len)
    }

    fn streamed_bytes(&self) -> u64 {
        self.layers_bytes().max(self.head_bytes())
    }
}

impl Need for PplNeed {
    /// The model with its head, one window's states and working memory, and its logits.
    fn in_memory(&self) -> u64 {
        self.model + self.pass.block_states + self.pass.block_working + self.logits
    }
    fn streamed(&self) -> u64 {
        self.streamed_bytes()
    }
    fn spill(&self) -> u64 {
        0
    }
    fn spills(&self) -> bool {
        false
    }
    fn streamed_detail(&self) -> String {
        use super::format_size as s;
        let p = &self.pass;
        format!(
            "{}: one layer {}, embedding rows {}, hidden states of {} {}, working memory of {} at once {}; then {}",
            s(self.streamed_bytes()),
            s(p.layer),
            s(p.embed_rows),
            windows(p.blocks),
            s(self.states()),
            windows(p.lanes),
            s(p.lanes * p.block_working),
            self.head.detail(self.pass.blocks * self.seq_len, self.seq_len, "one window's"),
        )
    }
}

/// `1 window`, `3 windows`.
fn windows(n: u64) -> String {
    if n == 1 {
        "1 window".into()
    } else {
        format!("{n} windows")
    }
}
