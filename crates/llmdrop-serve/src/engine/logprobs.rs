//! Log-probabilities of tokens: a log-softmax over the vocabulary per row of logits, in f64
//! as `llmdrop eval` sums them, with the most likely alternatives.

use super::TokenInfo;
use crate::model::Model;

/// Log-softmax of one row of logits, with the most likely ids.
pub(super) struct Row<'a> {
    row: &'a [f32],
    max: f64,
    lse: f64,
}

impl<'a> Row<'a> {
    pub(super) fn new(row: &'a [f32]) -> Self {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        Self {
            row,
            max,
            lse: sum.ln(),
        }
    }

    /// `log_softmax(row)[i]` in f64 (as `llmdrop eval` sums it).
    pub(super) fn logprob(&self, i: u32) -> f64 {
        self.row[i as usize] as f64 - self.max - self.lse
    }

    /// The `n` most likely ids, most likely first (lower id first on ties).
    pub(super) fn top(&self, n: usize) -> Vec<u32> {
        if n == 0 {
            return vec![];
        }
        let by = |a: &u32, b: &u32| {
            self.row[*b as usize]
                .total_cmp(&self.row[*a as usize])
                .then(a.cmp(b))
        };
        if n == 1 {
            return vec![argmax(self.row)];
        }
        let mut ids: Vec<u32> = (0..self.row.len() as u32).collect();
        let n = n.min(ids.len());
        if n < ids.len() {
            ids.select_nth_unstable_by(n - 1, by);
            ids.truncate(n);
        }
        ids.sort_by(by);
        ids
    }
}

pub(super) fn token_text(model: &Model, id: u32) -> String {
    model.tokenizer.decode(&[id], true).unwrap_or_default()
}

/// `id` as predicted by `row`, with `top` alternatives (None: no log-probabilities).
pub(super) fn info(model: &Model, row: &[f32], id: u32, top: Option<usize>) -> TokenInfo {
    let text = token_text(model, id);
    let Some(n) = top else {
        return TokenInfo {
            id,
            text,
            logprob: None,
            top: vec![],
        };
    };
    let r = Row::new(row);
    TokenInfo {
        id,
        text,
        logprob: Some(r.logprob(id)),
        top: r
            .top(n)
            .into_iter()
            .map(|t| (t, token_text(model, t), r.logprob(t)))
            .collect(),
    }
}

/// The infos of `targets[i]` as predicted by `rows[i]`, rows spread over rayon's pool (a
/// log-softmax over the vocabulary each).
pub(super) fn infos(
    model: &Model,
    rows: &[Vec<f32>],
    targets: &[u32],
    top: usize,
) -> Vec<TokenInfo> {
    use rayon::prelude::*;
    rows.par_iter()
        .zip(targets.par_iter())
        .map(|(row, &t)| info(model, row, t, Some(top)))
        .collect()
}

/// The first prompt token: nothing predicts it.
pub(super) fn first_info(model: &Model, id: u32) -> TokenInfo {
    TokenInfo {
        id,
        text: token_text(model, id),
        logprob: None,
        top: vec![],
    }
}

/// The index of the largest value (the first of equal maxima).
pub(super) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_and_logprob() {
        let row = [0.0f32, 2.0, 1.0, 2.0];
        let r = Row::new(&row);
        assert_eq!(r.top(3), vec![1, 3, 2]);
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((r.logprob(2) - (1.0 - z.ln())).abs() < 1e-12);
    }
}
