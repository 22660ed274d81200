//! What perplexity holds in memory, estimated before any weight is read: the model with
//! its output head and one window's pass (in memory), or, layer-streamed, one layer or
//! the head, the hidden states of a group of windows, and one window's logits.

use super::need::{held_bytes, ScoreNeed};
use super::Need;
use crate::io::source::ModelSource;
use crate::quant::Precision;

/// The parts of perplexity's memory, in bytes (the program itself not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PplNeed {
    /// The layers, embedding rows, one window's states and working memory (`blocks` is
    /// the windows of a streamed group).
    pub pass: ScoreNeed,
    /// The output head as held: the final norm and the projection (the whole embedding
    /// matrix when tied).
    pub head: u64,
    /// The weights the in-memory decoder holds for logits (its head included).
    pub model: u64,
    /// One window's logits, f32, with the copy the NLL reads.
    pub logits: u64,
    /// Windows in all.
    pub windows: u64,
}

impl PplNeed {
    /// The estimate for `windows` windows of `seq_len` tokens of `src` at `precision`
    /// (`unique_tokens` distinct ids), streamed `group` windows at a time, `lanes` at once.
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
        let w = src.weights();
        let group = group.clamp(1, windows.max(1));
        let pass = ScoreNeed::estimate(src, precision, group, seq_len, unique_tokens, lanes, false);
        let held = |name: &str| {
            w.tensors().iter().find(|t| t.name == name).map_or(0, |t| {
                held_bytes(&t.shape, t.bytes, w.ggml_type(name), precision)
            })
        };
        let embed = held("model.embed_tokens.weight");
        // scoring's load keeps a GGUF table as stored in f32; the logits load does not
        let scoring_embed = w
            .tensors()
            .iter()
            .find(|t| t.name == "model.embed_tokens.weight")
            .map_or(0, |t| {
                match (precision.compute_dtype(), w.ggml_type(&t.name)) {
                    (candle_core::DType::F32, Some(_)) => embed.min(t.bytes),
                    _ => embed,
                }
            });
        let projection = match c.tie_word_embeddings {
            true => embed,
            false => held("lm_head.weight"),
        };
        Self {
            pass,
            head: projection + held("model.norm.weight"),
            model: pass.model - scoring_embed
                + embed
                + if c.tie_word_embeddings { 0 } else { projection },
            logits: 2 * seq_len as u64 * c.vocab_size as u64 * 4,
            windows: windows as u64,
        }
    }

    /// The windows a streamed group may hold within `budget` (at least 1), or None when
    /// all fit.
    pub fn group_within(&self, budget: u64) -> Option<usize> {
        if self.with_group(self.windows).streamed_bytes() <= budget {
            return None;
        }
        let fits = |g: u64| self.with_group(g).streamed_bytes() <= budget;
        let g = (1..self.windows).rev().find(|&g| fits(g)).unwrap_or(1);
        Some(g as usize)
    }

    /// The same estimate, streamed `group` windows at a time.
    pub fn with_group(&self, group: u64) -> Self {
        let mut n = *self;
        n.pass.blocks = group.clamp(1, self.windows.max(1));
        n.pass.lanes = n.pass.lanes.min(n.pass.blocks);
        n
    }

    fn streamed_bytes(&self) -> u64 {
        let states = self.pass.blocks * self.pass.block_states;
        let layers = self.pass.layer
            + self.pass.embed_rows
            + states
            + self.pass.lanes * self.pass.block_working;
        layers.max(self.head + states + self.logits)
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
            "{}: one layer {}, embedding rows {}, hidden states of {} {}, working memory of {} at once {}; then the output head {} and one window's logits {}",
            s(self.streamed_bytes()),
            s(p.layer),
            s(p.embed_rows),
            windows(p.blocks),
            s(p.blocks * p.block_states),
            windows(p.lanes),
            s(p.lanes * p.block_working),
            s(self.head),
            s(self.logits),
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
