//! Prefill: a prompt run into its KV cache in chunks of [`PREFILL_CHUNK`] positions. The
//! chunks are the same whichever work runs between them (scoring's other passes, the
//! generation batch's decode steps), so the bits are too.

use llmdrop::{KvCache, Logits, NoProbe};

use super::logprobs::infos;
use super::{fail, ids_tensor, Step, TokenInfo};
use crate::model::Model;

/// Positions per forward pass of a long prompt (bounds the logits held at once, and the
/// prefill work a generation step does).
pub(super) const PREFILL_CHUNK: usize = 256;

/// What a prefill keeps of its logits.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Keep {
    /// Every token's info (log-probabilities with this many alternatives) and the last row.
    Infos(usize),
    /// Only the last row.
    Last,
    /// Nothing (the cache is what is wanted).
    Nothing,
}

/// A prompt's prefill under way: how many of its tokens are in the cache, and what it kept
/// of their logits so far.
pub(super) struct Prefill {
    keep: Keep,
    done: usize,
    infos: Vec<TokenInfo>,
    last: Vec<f32>,
}

impl Prefill {
    pub(super) fn new(keep: Keep) -> Self {
        Self {
            keep,
            done: 0,
            infos: Vec::new(),
            last: Vec::new(),
        }
    }

    /// How many tokens of `ids` the next chunk runs (0: the prefill is over).
    pub(super) fn next_len(&self, ids: &[u32]) -> usize {
        (ids.len() - self.done).min(PREFILL_CHUNK)
    }

    /// How many tokens are in the cache.
    #[cfg(test)]
    pub(super) fn done(&self) -> usize {
        self.done
    }

    /// Runs the next chunk of `ids` into `cache` (the same `ids` and cache every call).
    pub(super) fn chunk(&mut self, model: &Model, cache: &mut KvCache, ids: &[u32]) -> Step<()> {
        let dec = &model.decoder;
        let (start, end) = (self.done, self.done + self.next_len(ids));
        let is_last = end == ids.len();
        let which = match self.keep {
            Keep::Infos(_) => Logits::All,
            Keep::Last if is_last => Logits::Last,
            _ => Logits::None,
        };
        let t = ids_tensor(dec, vec![ids[start..end].to_vec()])?;
        let out = dec
            .forward(&t, Some(cache), &mut NoProbe, which)
            .or_else(fail)?;
        if let Some(out) = out {
            let rows = out
                .squeeze(0)
                .and_then(|o| o.to_vec2::<f32>())
                .or_else(fail)?;
            if let Keep::Infos(n) = self.keep {
                // row r predicts ids[start + r + 1]
                let targets = &ids[(start + 1).min(ids.len())..(end + 1).min(ids.len())];
                self.infos
                    .extend(infos(model, &rows[..targets.len()], targets, n));
            }
            if is_last {
                self.last = rows.into_iter().next_back().unwrap_or_default();
            }
        }
        self.done = end;
        Ok(())
    }

    /// The infos of `ids[1..]` (for [`Keep::Infos`]) and the last position's logits
    /// (unless [`Keep::Nothing`]).
    pub(super) fn finish(self) -> (Vec<TokenInfo>, Vec<f32>) {
        (self.infos, self.last)
    }
}
