//! What multiple-choice scoring holds in memory, estimated from the planned passes before
//! any weight is read: the model with its head, the widest pass's working memory, KV
//! cache and logits (in memory), or, layer-streamed, one layer and the hidden states of
//! a group of examples, then those states and one slice of the head with one pass's
//! logits of that slice.

use super::head_need::{largest_group, HeadNeed};
use super::need::ScoreNeed;
use super::{Need, StreamShape};
use crate::io::source::ModelSource;
use crate::quant::Precision;

/// One pass of an example through the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McPass {
    /// Positions run at once (a batch's rows together).
    pub rows: u64,
    /// Sequences among them.
    pub seqs: u64,
    /// Positions each attends to (its cache's included).
    pub keys: u64,
    /// Whether it fills or reads a KV cache.
    pub cached: bool,
    /// Positions of it the head computes logits for at once.
    pub head_rows: u64,
    /// Tokens of it scored.
    pub scored: u64,
}

/// The parts of multiple-choice scoring's memory for one task, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McNeed {
    /// The weights the in-memory decoder holds for logits.
    pub model: u64,
    /// The largest layer as held.
    pub layer: u64,
    /// The embedding rows of the task's tokens, as held (layer-streamed).
    pub embed_rows: u64,
    pub head: HeadNeed,
    /// The widest pass's working memory through one layer (with that layer's KV cache).
    pub working: u64,
    /// In memory: the widest pass's KV cache of every layer and its logits.
    pub held_extra: u64,
    /// The most positions one head unit holds.
    pub unit_rows: u64,
    /// One position's hidden state.
    pub token_state: u64,
    /// Per example: positions embedded, tokens scored.
    pub examples: Vec<(u64, u64)>,
    /// Examples through the layers at once (streamed).
    pub group: u64,
    /// Passes that run at once.
    pub lanes: u64,
}

impl McNeed {
    /// The estimate for `examples` (each its passes) on `src` at `precision`, with
    /// `unique_tokens` distinct ids and `lanes` passes at once; all examples at once.
    pub fn estimate(
        src: &ModelSource,
        precision: Precision,
        examples: &[Vec<McPass>],
        unique_tokens: usize,
        lanes: usize,
    ) -> Self {
        let c = src.config();
        let score = ScoreNeed::estimate(src, precision, 1, 1, unique_tokens, lanes, false);
        let head = HeadNeed::estimate(src, precision);
        let dtype = precision.compute_dtype();
        let f = dtype.size_in_bytes() as u64;
        let h = c.hidden_size as u64;
        let (q, kv) = (
            (c.num_heads * c.head_dim) as u64,
            (c.num_kv_heads * c.head_dim) as u64,
        );
        let cache = |p: &McPass| match p.cached {
            true => (p.seqs + 1) * p.keys.max(256) * kv * 2 * f,
            false => 0,
        };
        let work = |p: &McPass| {
            let attn = p.rows * (2 * q + 2 * kv + h) * f + c.num_heads as u64 * p.rows * p.keys * 4;
            let mlp = p.rows * (3 * c.intermediate_size as u64 + h) * f;
            attn.max(mlp) + 2 * p.rows * h * f + cache(p)
        };
        let passes = || examples.iter().flatten();
        let layers = c.num_layers as u64;
        let held_extra = passes()
            .map(|p| layers * cache(p) + 2 * p.head_rows * c.vocab_size as u64 * 4)
            .max()
            .unwrap_or(0);
        Self {
            model: score.model - head.scoring_embed + head.logits_model,
            layer: score.layer,
            embed_rows: head.embed_row * unique_tokens as u64,
            head,
            working: passes().map(work).max().unwrap_or(0),
            held_extra,
            unit_rows: passes().map(|p| p.head_rows).max().unwrap_or(1),
            token_state: h * (f + if f == 4 { 0 } else { 4 }),
            examples: examples
                .iter()
                .map(|e| {
                    let rows = e.iter().map(|p| p.rows).sum();
                    (rows, e.iter().map(|p| p.scored).sum())
                })
                .collect(),
            group: examples.len().max(1) as u64,
            lanes: lanes.max(1) as u64,
        }
    }

    /// The most examples at once, and the largest head slice beside their states, that
    /// fit `budget`; one example and the smallest slice when nothing fits.
    pub fn shape_within(&self, budget: u64) -> StreamShape {
        let n = self.examples.len().max(1) as u64;
        let g = largest_group(n, &self.head, |g, rows| {
            let s = self.with_shape(g, rows);
            s.layers_bytes() <= budget && s.head_bytes() <= budget
        });
        let fixed = self.with_shape(g, 0).head_bytes();
        let rows = self
            .head
            .rows_within(budget.saturating_sub(fixed), self.unit_rows);
        StreamShape {
            group: Some(g as usize),
            head_rows: Some(rows as usize),
        }
    }

    /// The same estimate with `group` examples at once and `head_rows` rows of the head.
    pub fn with_shape(&self, group: u64, head_rows: u64) -> Self {
        let mut n = self.clone();
        n.group = group.clamp(1, self.examples.len().max(1) as u64);
        n.head.rows = head_rows.min(self.head.vocab);
        n
    }

    /// [`McNeed::with_shape`] of a [`StreamShape`] (None: all examples, the whole head).
    pub fn shaped(&self, s: StreamShape) -> Self {
        let g = s.group.map_or(self.examples.len() as u64, |g| g as u64);
        self.with_shape(g, s.head_rows.map_or(self.head.vocab, |r| r as u64))
    }

    /// The most positions and scored tokens of `group` consecutive examples.
    fn window(&self) -> (u64, u64) {
        let g = (self.group as usize).clamp(1, self.examples.len().max(1));
        let most = |f: fn(&(u64, u64)) -> u64| {
            let v: Vec<u64> = self.examples.iter().map(f).collect();
            v.windows(g.min(v.len()).max(1))
                .map(|w| w.iter().sum())
                .max()
                .unwrap_or(0)
        };
        (most(|e| e.0), most(|e| e.1))
    }

    fn layers_bytes(&self) -> u64 {
        let (positions, _) = self.window();
        self.layer + self.embed_rows + positions * self.token_state + self.lanes * self.working
    }

    fn head_bytes(&self) -> u64 {
        let (positions, scored) = self.window();
        positions * self.token_state + self.head.bytes(scored, self.unit_rows)
    }
}

impl Need for McNeed {
    /// The model with its head, and the widest pass with its cache and logits.
    fn in_memory(&self) -> u64 {
        self.model + self.working + self.held_extra
    }
    fn streamed(&self) -> u64 {
        self.layers_bytes().max(self.head_bytes())
    }
    fn spill(&self) -> u64 {
        0
    }
    fn spills(&self) -> bool {
        false
    }
    fn streamed_detail(&self) -> String {
        use super::format_size as s;
        let (positions, scored) = self.window();
        format!(
            "{}: one layer {}, embedding rows {}, hidden states of {} examples ({positions} positions) {}, working memory of {} passes at once {}; then {}",
            s(self.streamed()),
            s(self.layer),
            s(self.embed_rows),
            self.group,
            s(positions * self.token_state),
            self.lanes,
            s(self.lanes * self.working),
            self.head.detail(scored, self.unit_rows, "one pass's"),
        )
    }
}
