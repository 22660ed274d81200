//! What generation does per token: sampling, and the release of text around stop strings
//! (the sequences themselves advance together in [`super::batch`]).

use rand::rngs::StdRng;
use rand::Rng;

use super::logprobs::argmax;
use super::{Finish, Params, Sampling};
use crate::model::Model;

/// The generated text so far, released as it becomes final: a stop string ends it (and is
/// not part of it); text that may be the start of a stop string, or an incomplete
/// character, waits for the next token.
pub(super) struct TextState<'a> {
    model: &'a Model,
    params: Params,
    ids: Vec<u32>,
    /// Bytes of the text already released.
    sent: usize,
}

impl<'a> TextState<'a> {
    pub(super) fn new(model: &'a Model, params: &Params) -> Self {
        Self {
            model,
            params: params.clone(),
            ids: Vec::new(),
            sent: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.model
            .tokenizer
            .decode(ids, !self.params.skip_special)
            .unwrap_or_default()
    }

    fn release(&mut self, text: &str, end: usize) -> String {
        let piece = text.get(self.sent..end).unwrap_or("").to_string();
        if end > self.sent {
            self.sent = end;
        }
        piece
    }

    /// Adds `id`; returns the new text and, when generation ends here, why. `last`: no
    /// token follows (release everything).
    pub(super) fn push(&mut self, id: u32, last: bool) -> (String, Option<Finish>) {
        if self.params.stop_ids.contains(&id) {
            let text = self.decode(&self.ids);
            let end = text.len();
            self.ids.push(id);
            return (self.release(&text, end), Some(Finish::Stop));
        }
        self.ids.push(id);
        let text = self.decode(&self.ids);
        let hit = self
            .params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            return (self.release(&text, at), Some(Finish::Stop));
        }
        if last {
            let end = text.len();
            return (self.release(&text, end), None);
        }
        let base = text.trim_end_matches('\u{FFFD}').len();
        let mut end = base;
        for s in &self.params.stop {
            // the longest proper prefix of `s` that the text ends with
            let held = s
                .char_indices()
                .map(|(i, _)| i)
                .skip(1)
                .filter(|&k| text[..base].ends_with(&s[..k]))
                .max()
                .unwrap_or(0);
            end = end.min(base - held);
        }
        (self.release(&text, end), None)
    }
}

/// Picks the next token from `row` as `s` says.
pub(super) fn sample(row: &[f32], s: &Sampling, rng: &mut StdRng) -> u32 {
    if s.temperature <= 0.0 || row.is_empty() {
        return argmax(row);
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut cand: Vec<(u32, f64)> = row
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, ((x as f64 - max) / s.temperature).exp()))
        .collect();
    if s.top_k > 0 || s.top_p < 1.0 {
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if s.top_k > 0 {
            cand.truncate(s.top_k);
        }
        if s.top_p < 1.0 {
            let total: f64 = cand.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let mut keep = cand.len();
            for (j, c) in cand.iter().enumerate() {
                acc += c.1;
                if acc >= s.top_p * total {
                    keep = j + 1;
                    break;
                }
            }
            cand.truncate(keep);
        }
    }
    let total: f64 = cand.iter().map(|c| c.1).sum();
    let mut r = rng.random::<f64>() * total;
    for &(i, w) in &cand {
        if r < w {
            return i;
        }
        r -= w;
    }
    cand.last().map_or(0, |c| c.0)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn sampling_is_seeded_and_nucleus_narrows() {
        let row: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let s = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 7,
        };
        let draw = |s: &Sampling| {
            let mut rng = StdRng::seed_from_u64(s.seed);
            (0..20)
                .map(|_| sample(&row, s, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&s), draw(&s));
        let narrow = Sampling { top_p: 1e-9, ..s };
        assert!(draw(&narrow).iter().all(|&t| t == argmax(&row)));
        let k1 = Sampling { top_k: 1, ..s };
        assert!(draw(&k1).iter().all(|&t| t == argmax(&row)));
    }
}
